#pragma once
// The registry HTTP API v2 as a client sees it: where a reference points (host, repository),
// which scheme the registry speaks (HTTPS, or plain HTTP when allowed: --tls-verify=false,
// or a registry whose connection goes to a loopback address), authentication (anonymous,
// Basic, Bearer tokens cached per scope; where credentials may go is credential_policy.hpp),
// registry error bodies turned into one-line reasons, and blob downloads that stop at the
// descriptor's size and resume with Range after a cut connection.
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "layerstore/sources/credential_policy.hpp"
#include "layerstore/sources/http.hpp"
#include "layerstore/sources/registry_auth.hpp"
#include "layerstore/store/reference.hpp"

namespace strata {

struct RegistryOptions {
  bool tls_verify = true;            // false: no certificate check, plain HTTP allowed
  std::string cert_dir;              // extra CAs: DIR/*.crt (default /etc/containers/certs.d/HOST)
  std::optional<Credentials> creds;  // --creds
  std::string authfile;              // --authfile
};

// `[registry/]name[:tag|@sha256:...]` with Docker's defaults (docker.io, library/, latest).
struct RemoteRef {
  std::string registry;  // as named: "docker.io", "127.0.0.1:5000"
  std::string host;      // API endpoint: "registry-1.docker.io" for docker.io
  std::string repo;      // "library/busybox", "team/app"
  std::string tag, digest;
  Reference local;       // how the store names it: "busybox:latest", "127.0.0.1:5000/team/app:1.0"

  std::string str() const { return local.str(); }
  std::string manifest_ref() const { return digest.empty() ? tag : digest; }
};
RemoteRef parse_remote_ref(const std::string& s);  // throws strata::Error

// The distribution spec's limit for a manifest or index a registry must accept.
constexpr uint64_t kMaxManifestBytes = 4 << 20;
constexpr uint64_t kMaxTokenAnswerBytes = 2 << 20;

class RegistryClient {
 public:
  RegistryClient(const std::string& registry, RegistryOptions opts);

  // GET /v2/: picks the scheme, learns the auth scheme and checks the credentials.
  void ping();
  const std::string& host() const { return host_; }
  // Absolute URL of a path ("/v2/...") or of an absolute or relative Location.
  std::string url(const std::string& target) const;

  // `target` is a path ("/v2/...") or an absolute URL (an upload Location). Adds the
  // Authorization for `scope` ("repository:team/app:pull"), follows redirects of GET and
  // HEAD, and fetches a new token once on a 401.
  HttpResponse call(HttpRequest req, const std::string& target, const std::string& scope);

  // Downloads a blob into `sink`; a cut connection resumes at the byte it stopped with a
  // Range request, up to 5 retries with backoff. Throws on a registry error, and as soon as
  // the registry sends more than `size` bytes (the descriptor's; -1: no descriptor).
  void fetch_blob(const std::string& repo, const std::string& digest, int64_t size, const BlobWriter& sink);

  struct Manifest {
    std::string bytes, media_type, digest;
  };
  // GET a manifest or index by tag or digest (at most kMaxManifestBytes), verified: by digest
  // against it, by tag against the Docker-Content-Digest the registry sent (if any).
  Manifest get_manifest(const std::string& repo, const std::string& ref);

 private:
  std::string auth_header(const std::string& scope);
  void authenticate(const HttpResponse& unauthorized, const std::string& scope);
  std::string fetch_token(const Challenge& c, const std::string& scope);
  RegistryEndpoint endpoint() const;

  std::string registry_, host_, base_;
  bool loopback_ = false;  // the registry's connection went to a loopback address
  RegistryOptions opts_;
  TlsOptions tls_;
  std::optional<Credentials> creds_;
  std::mutex mu_;
  std::optional<Challenge> challenge_;
  std::map<std::string, std::string> tokens_;  // scope -> bearer token
  std::string withheld_from_realm_;  // a token realm the credentials were kept from
};

// "HTTP 404: manifest unknown (...)" from a registry's {"errors":[...]} body.
std::string registry_error(const HttpResponse& r);

// Media types a pull accepts, in preference order (the Accept header).
extern const char* const kManifestAccept;

}  // namespace strata
