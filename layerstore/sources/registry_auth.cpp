#include "layerstore/sources/registry_auth.hpp"

#include <openssl/evp.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "layerstore/archive/fs_util.hpp"
#include "layerstore/error.hpp"
#include "layerstore/sources/private_file.hpp"

namespace strata {

using nlohmann::json;

std::string base64_std(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(n);
  return out;
}

std::string base64_std_decode(const std::string& text) {
  std::string t = text;
  while (t.size() % 4) t += '=';
  std::string out(3 * t.size() / 4 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(t.data()),
                          static_cast<int>(t.size()));
  if (n < 0) throw Error("invalid base64");
  size_t pad = 0;
  for (size_t i = t.size(); i > 0 && t[i - 1] == '='; i--) pad++;
  out.resize(n - std::min<size_t>(pad, n));
  return out;
}

Credentials parse_creds(const std::string& s, const std::string& what) {
  size_t c = s.find(':');
  if (c == std::string::npos || c == 0) throw Error(what + ": want USER:PASSWORD");
  return {s.substr(0, c), s.substr(c + 1)};
}

static std::string env(const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

std::string default_auth_file() {
  if (!env("REGISTRY_AUTH_FILE").empty()) return env("REGISTRY_AUTH_FILE");
  if (!env("XDG_RUNTIME_DIR").empty()) return env("XDG_RUNTIME_DIR") + "/containers/auth.json";
  return env("HOME") + "/.docker/config.json";
}

// Docker Hub's credentials live under its v1 index URL.
static std::vector<std::string> host_keys(const std::string& host) {
  std::vector<std::string> keys{host, "https://" + host, "http://" + host, "https://" + host + "/v1/",
                                "https://" + host + "/v2/"};
  if (host == "docker.io" || host == "registry-1.docker.io" || host == "index.docker.io")
    keys.insert(keys.begin(), {"https://index.docker.io/v1/", "docker.io", "index.docker.io"});
  return keys;
}

static json parse_auth_json(const std::string& path, const std::string& bytes) {
  auto j = json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(path + ": malformed JSON");
  return j;
}

static json read_auth_json(const std::string& path) { return parse_auth_json(path, read_file(path)); }

// For login/logout, which rewrite the file: neither the file nor its temp name is ever
// followed through a symlink (see private_file.hpp).
static std::optional<json> read_auth_json_nofollow(const std::string& path) {
  auto bytes = read_private_file(path);
  if (!bytes) return std::nullopt;
  return parse_auth_json(path, *bytes);
}

static std::optional<Credentials> lookup_in(const std::string& path, const std::string& host) {
  json j = read_auth_json(path);
  if (!j.contains("auths") || !j["auths"].is_object()) return std::nullopt;
  for (const auto& key : host_keys(host)) {
    if (!j["auths"].contains(key)) continue;
    const auto& e = j["auths"][key];
    if (!e.is_object() || !e.contains("auth") || !e["auth"].is_string()) continue;
    std::string decoded;
    try {
      decoded = base64_std_decode(e["auth"].get<std::string>());
    } catch (const Error&) {
      throw Error(path + ": auth for " + key + " is not valid base64");
    }
    return parse_creds(decoded, path + ": auth for " + key);
  }
  return std::nullopt;
}

std::optional<Credentials> find_credentials(const std::string& host, const std::string& authfile) {
  if (!authfile.empty()) {
    if (!path_exists(authfile)) throw Error("auth file " + authfile + " does not exist");
    return lookup_in(authfile, host);
  }
  std::vector<std::string> chain;
  if (!env("REGISTRY_AUTH_FILE").empty()) chain.push_back(env("REGISTRY_AUTH_FILE"));
  if (!env("XDG_RUNTIME_DIR").empty()) chain.push_back(env("XDG_RUNTIME_DIR") + "/containers/auth.json");
  if (!env("HOME").empty()) chain.push_back(env("HOME") + "/.docker/config.json");
  for (const auto& p : chain)
    if (path_exists(p))
      if (auto c = lookup_in(p, host)) return c;
  return std::nullopt;
}

static void write_auth_json(const std::string& path, const json& j) {
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) mkdirs(path.substr(0, slash), 0700);
  replace_private_file(path, j.dump(1, '\t') + "\n");
}

void store_credentials(const std::string& path, const std::string& host, const Credentials& c) {
  json j = read_auth_json_nofollow(path).value_or(json::object());
  if (!j.contains("auths") || !j["auths"].is_object()) j["auths"] = json::object();
  for (const auto& key : host_keys(host)) j["auths"].erase(key);
  std::string key = host == "docker.io" ? "https://index.docker.io/v1/" : host;
  j["auths"][key] = {{"auth", base64_std(c.user + ":" + c.password)}};
  write_auth_json(path, j);
}

bool remove_credentials(const std::string& path, const std::string& host) {
  auto existing = read_auth_json_nofollow(path);
  if (!existing) return false;
  json& j = *existing;
  if (!j.contains("auths") || !j["auths"].is_object()) return false;
  bool found = false;
  for (const auto& key : host_keys(host)) found |= j["auths"].erase(key) > 0;
  if (found) write_auth_json(path, j);
  return found;
}

std::optional<Challenge> parse_challenge(const std::string& h) {
  size_t sp = h.find(' ');
  Challenge c;
  c.scheme = h.substr(0, sp);
  for (auto& ch : c.scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (c.scheme.empty()) return std::nullopt;
  size_t i = sp == std::string::npos ? h.size() : sp + 1;
  while (i < h.size()) {
    while (i < h.size() && (h[i] == ' ' || h[i] == ',')) i++;
    size_t eq = h.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = h.substr(i, eq - i);
    for (auto& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    i = eq + 1;
    std::string val;
    if (i < h.size() && h[i] == '"') {
      for (i++; i < h.size() && h[i] != '"'; i++) {
        if (h[i] == '\\' && i + 1 < h.size()) i++;
        val += h[i];
      }
      i++;
    } else {
      size_t e = h.find(',', i);
      val = h.substr(i, e == std::string::npos ? std::string::npos : e - i);
      i = e == std::string::npos ? h.size() : e;
    }
    c.params[key] = val;
  }
  return c;
}

}  // namespace strata
