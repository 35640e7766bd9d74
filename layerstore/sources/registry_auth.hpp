#pragma once
// Registry credentials and authentication challenges. Credentials come from --creds, then
// the first auth file that exists: --authfile, $REGISTRY_AUTH_FILE,
// ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.docker/config.json; all use Docker's
// {"auths":{"<host>":{"auth":"<base64 user:pass>"}}} format. `strata login` writes it.
#include <map>
#include <optional>
#include <string>

namespace strata {

struct Credentials {
  std::string user, password;
};

// "user:pass" -> Credentials; throws on a missing colon.
Credentials parse_creds(const std::string& s, const std::string& what);

// The auth file `strata login` writes and the lookup reads first (after --authfile).
std::string default_auth_file();
// Looks up `host` in `authfile` (if given) or the default chain; nullopt when none has it.
std::optional<Credentials> find_credentials(const std::string& host, const std::string& authfile);
// Adds or replaces `host` in the file (created 0600, parent dirs made), atomically.
void store_credentials(const std::string& authfile, const std::string& host, const Credentials& c);
// Removes `host`; false when it was not there.
bool remove_credentials(const std::string& authfile, const std::string& host);

// WWW-Authenticate: `Bearer realm="..",service="..",scope=".."` or `Basic realm=".."`.
struct Challenge {
  std::string scheme;  // lower-case: "bearer", "basic"
  std::map<std::string, std::string> params;
};
std::optional<Challenge> parse_challenge(const std::string& header);

std::string base64_std(const std::string& bytes);
std::string base64_std_decode(const std::string& text);  // throws strata::Error

}  // namespace strata
