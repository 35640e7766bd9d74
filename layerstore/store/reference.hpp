#pragma once
// Image references as Docker parses them: "name[:tag]" or "name@sha256:<hex>", names in
// familiar form ("busybox", not "docker.io/library/busybox"), default tag "latest".
#include <optional>
#include <string>

namespace strata {

struct Reference {
  std::string name;    // familiar repository name
  std::string tag;     // empty when digest is set
  std::string digest;  // "sha256:..." for name@digest

  // "busybox:latest" or "busybox@sha256:..."
  std::string str() const { return digest.empty() ? name + ":" + tag : name + "@" + digest; }
};

// nullopt when `s` is not a valid reference.
std::optional<Reference> parse_reference(const std::string& s);
std::string familiar_name(const std::string& name);

}  // namespace strata
