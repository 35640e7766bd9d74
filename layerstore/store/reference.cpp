#include "layerstore/store/reference.hpp"

#include <regex>

#include "layerstore/archive/digest.hpp"

namespace strata {

std::string familiar_name(const std::string& name) {
  for (const char* p : {"docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"}) {
    std::string pre = p;
    if (name.rfind(pre, 0) == 0 && name.size() > pre.size()) return name.substr(pre.size());
  }
  return name;
}

std::optional<Reference> parse_reference(const std::string& s) {
  // distribution/reference grammar, simplified: optional domain[:port]/, path components.
  static const std::regex name_re(
      R"(^(?:((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?)/)?[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*)*$)");
  static const std::regex tag_re(R"(^[\w][\w.-]{0,127}$)");
  if (s.empty() || s.size() > 255 + 128 + 72) return std::nullopt;
  Reference r;
  std::string rest = s;
  size_t at = rest.find('@');
  if (at != std::string::npos) {
    r.digest = rest.substr(at + 1);
    if (!is_valid_digest(r.digest)) return std::nullopt;
    rest = rest.substr(0, at);
  }
  size_t colon = rest.rfind(':');
  size_t slash = rest.rfind('/');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    std::string tag = rest.substr(colon + 1);
    if (!std::regex_match(tag, tag_re)) return std::nullopt;
    if (r.digest.empty()) r.tag = tag;  // name:tag@digest: the digest wins, as in Docker
    rest = rest.substr(0, colon);
  }
  if (!std::regex_match(rest, name_re)) return std::nullopt;
  r.name = familiar_name(rest);
  if (r.digest.empty() && r.tag.empty()) r.tag = "latest";
  return r;
}

}  // namespace strata
