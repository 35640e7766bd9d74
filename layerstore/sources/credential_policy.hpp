#pragma once
// Where a registry's credentials may go. They belong to one registry (host:port, as the auth
// file keys them) and to the scheme it was reached with:
// - the registry's Authorization (Basic or its Bearer token) goes only to that host:port,
//   and never over plain HTTP once the registry was reached over HTTPS: an upload Location,
//   a blob redirect (a CDN) or any other host gets no Authorization at all;
// - a Bearer challenge's token realm gets the Basic credentials only when it is on the
//   registry's own host name over HTTPS (Docker Hub: auth.docker.io for docker.io), or on
//   the registry's own host name when the registry is spoken to over plain HTTP (a loopback
//   address, checked per connection, or --tls-verify=false); any other realm is asked for
//   an anonymous token.
#include <string>

namespace strata {

struct RegistryEndpoint {
  std::string registry;     // as named: "docker.io", "127.0.0.1:5000"
  std::string host;         // API host:port: "registry-1.docker.io", "127.0.0.1:5000"
  std::string scheme;       // "https", or "http" once the registry answered over plain HTTP
  bool loopback = false;    // the registry's connection went to a loopback address
  bool tls_verify = true;   // false: the user allowed plain HTTP and unverified TLS
};

// May a request to `url` carry the registry's Authorization?
bool registry_auth_may_go_to(const RegistryEndpoint& r, const std::string& url);

enum class RealmCredentials {
  send,                // Basic credentials go to the realm
  send_if_loopback,    // only if the realm's connection is to a loopback address
  withhold,            // anonymous token request
};
RealmCredentials realm_credentials(const RegistryEndpoint& r, const std::string& realm_url);

}  // namespace strata
