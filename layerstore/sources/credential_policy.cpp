#include "layerstore/sources/credential_policy.hpp"

#include "layerstore/sources/http.hpp"

namespace strata {

bool registry_auth_may_go_to(const RegistryEndpoint& r, const std::string& url) {
  std::string scheme = url_scheme(url);
  if (scheme != "https" && scheme != "http") return false;
  if (url_host(url) != r.host) return false;
  return scheme == "https" || r.scheme == "http";
}

RealmCredentials realm_credentials(const RegistryEndpoint& r, const std::string& realm_url) {
  std::string scheme = url_scheme(realm_url);
  std::string realm_host = host_name(url_host(realm_url));
  // Docker Hub's registry and token service are two names of one operator.
  if (r.registry == "docker.io" && scheme == "https" && realm_host == "auth.docker.io") return RealmCredentials::send;
  if (realm_host != host_name(r.host)) return RealmCredentials::withhold;
  if (scheme == "https") return RealmCredentials::send;
  if (scheme != "http") return RealmCredentials::withhold;
  if (r.loopback) return RealmCredentials::send_if_loopback;
  if (!r.tls_verify) return RealmCredentials::send;
  return RealmCredentials::withhold;
}

}  // namespace strata
