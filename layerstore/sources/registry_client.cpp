#include "layerstore/sources/registry_client.hpp"

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"

namespace strata {

using nlohmann::json;

const char* const kManifestAccept =
    "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

RemoteRef parse_remote_ref(const std::string& s) {
  auto r = parse_reference(s);
  if (!r) throw Error("invalid reference \"" + s + "\" (want [registry/]name[:tag|@sha256:...])");
  RemoteRef out;
  out.local = *r;
  out.tag = r->tag;
  out.digest = r->digest;
  std::string name = r->name;
  size_t slash = name.find('/');
  std::string first = name.substr(0, slash);
  if (slash != std::string::npos &&
      (first.find('.') != std::string::npos || first.find(':') != std::string::npos || first == "localhost")) {
    out.registry = first;
    out.repo = name.substr(slash + 1);
  } else {
    out.registry = "docker.io";
    out.repo = slash == std::string::npos ? "library/" + name : name;
  }
  out.host = out.registry == "docker.io" ? "registry-1.docker.io" : out.registry;
  return out;
}

std::string registry_error(const HttpResponse& r) {
  std::string out = "HTTP " + std::to_string(r.status);
  auto j = json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    const auto& e = j["errors"][0];
    std::string msg = e.value("message", e.value("code", ""));
    if (!msg.empty()) out += ": " + msg;
    if (e.contains("detail") && e["detail"].is_string()) out += " (" + e["detail"].get<std::string>() + ")";
  }
  return out;
}

// System CAs plus DIR/*.crt: libcurl takes one bundle, so they are joined in memory.
static std::string load_ca_bundle(const std::string& dir) {
  std::string extra;
  if (DIR* d = opendir(dir.c_str())) {
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".crt") == 0) names.push_back(n);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) extra += read_file(dir + "/" + n) + "\n";
  }
  if (extra.empty()) return "";
  const char* system = "/etc/ssl/certs/ca-certificates.crt";
  return (path_exists(system) ? read_file(system) + "\n" : "") + extra;
}

RegistryClient::RegistryClient(const std::string& registry, RegistryOptions opts)
    : registry_(registry), host_(registry == "docker.io" ? "registry-1.docker.io" : registry), opts_(std::move(opts)) {
  tls_.verify = opts_.tls_verify;
  std::string dir = opts_.cert_dir;
  if (dir.empty())
    for (const char* base : {"/etc/containers/certs.d/", "/etc/docker/certs.d/"})
      if (path_exists(base + registry_)) {
        dir = base + registry_;
        break;
      }
  if (!dir.empty()) {
    if (!opts_.cert_dir.empty() && !path_exists(dir)) throw Error("--cert-dir " + dir + " does not exist");
    tls_.ca_pem = load_ca_bundle(dir);
  }
  creds_ = opts_.creds ? opts_.creds : find_credentials(registry_, opts_.authfile);
  base_ = "https://" + host_;
}

RegistryEndpoint RegistryClient::endpoint() const {
  return RegistryEndpoint{registry_, host_, url_scheme(base_), loopback_, opts_.tls_verify};
}

void RegistryClient::ping() {
  HttpRequest req;
  req.url = base_ + "/v2/";
  req.tls = &tls_;
  HttpResponse r;
  try {
    r = http_perform(req);
  } catch (const TransportError& e) {
    // Plain HTTP only by the address the name connected to, never by how the name looks:
    // "127.example.com" may resolve anywhere.
    bool loopback = is_loopback_address(e.peer_ip);
    bool insecure_ok = !opts_.tls_verify || loopback;
    if (!insecure_ok || e.certificate_problem() || !e.tls_handshake_problem()) {
      if (e.certificate_problem())
        throw Error(host_ + ": TLS certificate not trusted (" + std::string(e.what()) +
                    "); add its CA with --cert-dir or use --tls-verify=false");
      if (e.tls_handshake_problem())
        throw Error(host_ + ": cannot reach registry over HTTPS: " + e.what() + " (plain HTTP is tried only for " +
                    "loopback addresses, " + (e.peer_ip.empty() ? "this one" : e.peer_ip + " is not one") +
                    "; --tls-verify=false allows it)");
      throw Error(host_ + ": cannot reach registry: " + e.what());
    }
    base_ = "http://" + host_;
    req.url = base_ + "/v2/";
    // The fallback was allowed for this address: every plain request must go there again.
    req.loopback_peer_only = opts_.tls_verify;
    try {
      r = http_perform(req);
    } catch (const TransportError& e2) {
      throw Error(host_ + ": cannot reach registry: " + e2.what());
    }
  }
  loopback_ = is_loopback_address(r.peer_ip);
  if (r.status == 401) {
    auto c = parse_challenge(r.header("www-authenticate"));
    if (!c || (c->scheme != "basic" && c->scheme != "bearer"))
      throw Error(host_ + ": registry asks for an unsupported authentication (\"" + r.header("www-authenticate") + "\")");
    {
      std::lock_guard lk(mu_);
      challenge_ = c;
    }
    if (!creds_) return;  // anonymous tokens may still give pull access
    // Check the credentials now, so a wrong password is one clear error.
    if (c->scheme == "basic") {
      req.headers = {auth_header("")};
      HttpResponse r2 = http_perform(req);
      if (r2.status == 401) throw Error(host_ + ": authentication failed for user \"" + creds_->user + "\" (wrong username or password)");
      if (r2.status / 100 != 2) throw Error(host_ + ": /v2/: " + registry_error(r2));
    } else {
      fetch_token(*c, "");
    }
    return;
  }
  if (r.status / 100 != 2) throw Error(host_ + ": not a registry (GET /v2/: " + registry_error(r) + ")");
}

std::string RegistryClient::fetch_token(const Challenge& c, const std::string& scope) {
  std::string realm = c.params.count("realm") ? c.params.at("realm") : "";
  if (realm.empty()) throw Error(host_ + ": Bearer challenge without realm");
  std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
  if (c.params.count("service")) url += "service=" + url_escape(c.params.at("service")) + "&";
  if (!scope.empty()) url += "scope=" + url_escape(scope);
  HttpRequest req;
  req.url = url;
  req.tls = &tls_;
  req.max_body = kMaxTokenAnswerBytes;
  RealmCredentials policy = realm_credentials(endpoint(), realm);
  bool send_creds = creds_ && policy != RealmCredentials::withhold;
  if (creds_ && !send_creds) withheld_from_realm_ = realm;
  if (send_creds) {
    req.headers.push_back("Authorization: Basic " + base64_std(creds_->user + ":" + creds_->password));
    req.loopback_peer_only = policy == RealmCredentials::send_if_loopback;
  }
  HttpResponse r;
  try {
    r = http_perform(req);
  } catch (const TransportError& e) {
    throw Error(host_ + ": token server: " + e.what());
  } catch (const BodyTooLarge& e) {
    throw Error(host_ + ": token server " + realm + ": " + e.what());
  }
  if ((r.status == 401 || r.status == 403) && creds_ && !send_creds)
    throw Error(host_ + ": token realm " + realm + " refused an anonymous token (HTTP " + std::to_string(r.status) +
                "); the credentials were not sent to it: a token realm gets them only on the registry's own host, over "
                "HTTPS unless the registry is on a loopback address");
  if (r.status == 401 || r.status == 403)
    throw Error(host_ + ": authentication failed" + (creds_ ? " for user \"" + creds_->user + "\" (wrong username or password)" : " (no credentials; use strata login or --creds)"));
  if (r.status / 100 != 2) throw Error(host_ + ": token server: " + registry_error(r));
  auto j = json::parse(r.body, nullptr, false);
  std::string tok;
  if (j.is_object()) tok = j.value("token", j.value("access_token", ""));
  if (tok.empty()) throw Error(host_ + ": token server sent no token");
  return tok;
}

std::string RegistryClient::auth_header(const std::string& scope) {
  std::lock_guard lk(mu_);
  if (!challenge_) return "";
  if (challenge_->scheme == "basic")
    return creds_ ? "Authorization: Basic " + base64_std(creds_->user + ":" + creds_->password) : "";
  auto it = tokens_.find(scope);
  if (it != tokens_.end()) return "Authorization: Bearer " + it->second;
  std::string tok = fetch_token(*challenge_, scope);
  tokens_[scope] = tok;
  return "Authorization: Bearer " + tok;
}

void RegistryClient::authenticate(const HttpResponse& r, const std::string& scope) {
  auto c = parse_challenge(r.header("www-authenticate"));
  std::lock_guard lk(mu_);
  if (c) challenge_ = c;
  tokens_.erase(scope);
}

std::string RegistryClient::url(const std::string& target) const {
  return target.rfind("http", 0) == 0 ? target : resolve_url(base_ + "/v2/", target);
}

HttpResponse RegistryClient::call(HttpRequest req, const std::string& target, const std::string& scope) {
  std::string url = this->url(target);
  bool reauthed = false;
  // Once a hop leaves the registry (another host:port, or HTTPS to HTTP), no later hop
  // carries credentials, even one that comes back.
  bool send_auth = registry_auth_may_go_to(endpoint(), url);
  std::vector<std::string> base_headers = req.headers;
  for (int hop = 0; hop < 8; hop++) {
    HttpRequest r = req;
    r.url = url;
    r.tls = &tls_;
    r.headers = base_headers;
    if (send_auth) {
      if (std::string h = auth_header(scope); !h.empty()) r.headers.push_back(h);
      // A registry spoken to over plain HTTP because it is on loopback: still there?
      r.loopback_peer_only = url_scheme(url) == "http" && opts_.tls_verify;
    }
    HttpResponse resp = http_perform(r);
    if (resp.status == 401 && send_auth && !reauthed && !req.reader) {
      reauthed = true;
      authenticate(resp, scope);
      std::lock_guard lk(mu_);
      if (!challenge_ || (challenge_->scheme == "basic" && !creds_)) return resp;
      continue;
    }
    bool redirect = resp.status == 301 || resp.status == 302 || resp.status == 303 || resp.status == 307 || resp.status == 308;
    if (redirect && (req.method == "GET" || req.method == "HEAD") && !resp.header("location").empty()) {
      std::string next = resolve_url(url, resp.header("location"));
      // Blob storage on another host (a CDN) must never see the registry's credentials.
      send_auth = send_auth && registry_auth_may_go_to(endpoint(), next);
      url = next;
      continue;
    }
    if (resp.status == 401 && send_auth) {
      std::lock_guard lk(mu_);
      if (!withheld_from_realm_.empty())
        throw Error(host_ + ": access denied (HTTP 401) with an anonymous token: the credentials were not sent to "
                    "the token realm " + withheld_from_realm_ + ", which is not on the registry's own host");
    }
    return resp;
  }
  throw Error(target + ": too many redirects");
}

void RegistryClient::fetch_blob(const std::string& repo, const std::string& digest, int64_t size,
                                const BlobWriter& sink) {
  uint64_t pos = 0;
  std::string scope = "repository:" + repo + ":pull";
  for (int attempt = 0;; attempt++) {
    HttpRequest req;
    if (pos) {
      req.headers.push_back("Range: bytes=" + std::to_string(pos) + "-");
      req.skip_if_full = pos;
    }
    req.sink = [&](const uint8_t* p, size_t n) {
      // Checked before a byte of it moves on: a registry cannot make us store (or read) more.
      if (size >= 0 && pos + n > static_cast<uint64_t>(size))
        throw Error("blob " + digest + ": the registry sent more than the " + std::to_string(size) +
                    " bytes its descriptor gives; stopped there");
      sink(p, n);
      pos += n;
    };
    try {
      HttpResponse r = call(req, "/v2/" + repo + "/blobs/" + digest, scope);
      if (r.status == 200 || r.status == 206) return;
      if (r.status == 416 && pos) throw Error("blob " + digest + ": registry refused to resume at byte " + std::to_string(pos));
      throw Error("blob " + digest + ": " + registry_error(r));
    } catch (const TransportError& e) {
      if (attempt >= 5) throw Error("blob " + digest + ": " + e.what() + " (gave up after 5 retries)");
      std::this_thread::sleep_for(std::chrono::milliseconds(250 << attempt));
    }
  }
}

RegistryClient::Manifest RegistryClient::get_manifest(const std::string& repo, const std::string& ref) {
  HttpRequest req;
  req.headers.push_back(kManifestAccept);
  req.max_body = kMaxManifestBytes;
  std::string what = "manifest " + repo + (ref.rfind("sha256:", 0) == 0 ? "@" : ":") + ref;
  HttpResponse r;
  for (int attempt = 0;; attempt++) {
    try {
      r = call(req, "/v2/" + repo + "/manifests/" + ref, "repository:" + repo + ":pull");
      break;
    } catch (const TransportError& e) {
      if (attempt >= 3) throw Error(std::string(e.what()));
      std::this_thread::sleep_for(std::chrono::milliseconds(250 << attempt));
    } catch (const BodyTooLarge&) {
      throw Error(what + " on " + host_ + ": larger than " + std::to_string(kMaxManifestBytes) +
                  " bytes (4 MiB, the distribution spec's manifest limit)");
    }
  }
  if (r.status == 404) throw Error(what + " not found on " + host_ + " (" + registry_error(r) + ")");
  if (r.status == 401 || r.status == 403)
    throw Error(what + ": access denied on " + host_ + " (" + registry_error(r) + ")");
  if (r.status != 200) throw Error(what + ": " + registry_error(r));
  Manifest m;
  m.bytes = r.body;
  m.media_type = r.header("content-type");
  m.digest = sha256_digest(m.bytes);
  if (is_valid_digest(ref) && m.digest != ref)
    throw Error(what + ": digest mismatch (want " + ref + ", got " + m.digest + ")");
  std::string sent = r.header("docker-content-digest");
  if (!sent.empty() && sent != m.digest)
    throw Error(what + ": digest mismatch (registry says " + sent + ", got " + m.digest + ")");
  return m;
}

}  // namespace strata
