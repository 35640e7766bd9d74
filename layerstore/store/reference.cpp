#include "layerstore/store/reference.hpp"

#include <regex>

#include "layerstore/archive/digest.hpp"

namespace strata {

namespace {

// Whether a name's first component would be read as a registry host (as Docker splits names).
bool starts_with_domain(const std::string& name) {
  size_t slash = name.find('/');
  if (slash == std::string::npos) return false;
  std::string first = name.substr(0, slash);
  return first.find_first_of(".:") != std::string::npos || first == "localhost";
}

}  // namespace

std::string familiar_name(const std::string& name) {
  for (const char* p : {"docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"}) {
    std::string pre = p;
    if (name.rfind(pre, 0) != 0 || name.size() <= pre.size()) continue;
    std::string rest = name.substr(pre.size());
    // docker.io/example.com/x must keep its host: without it, it would name example.com's x.
    if (starts_with_domain(rest)) return name;
    return rest;
  }
  return name;
}

std::optional<Reference> parse_reference(const std::string& s) {
  // distribution/reference grammar, simplified: optional domain[:port]/, path components.
  static const std::regex name_re(
      R"(^(?:((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?)/)?[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$)");
  static const std::regex tag_re(R"(^[\w][\w.-]{0,127}$)");
  if (s.empty() || s.size() > 1024) return std::nullopt;  // bounds the matching below
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
  // Docker's limit is on the name; with the tag and digest every accepted reference prints
  // back within the bound above.
  if (rest.size() > 255 || !std::regex_match(rest, name_re)) return std::nullopt;
  r.name = familiar_name(rest);
  if (r.digest.empty() && r.tag.empty()) r.tag = "latest";
  return r;
}

}  // namespace strata
