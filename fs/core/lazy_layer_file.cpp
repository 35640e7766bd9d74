#include "fs/core/lazy_layer_file.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>

namespace strata::fs {

bool is_lazy_layer_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::ifstream in(path);
  std::string first;
  return std::getline(in, first) && first == kLazyLayerHeader;
}

std::optional<LazyLayerDescriptor> read_lazy_layer_file(const std::string& path, std::string& error) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line) || line != kLazyLayerHeader) {
    error = path + ": not a lazy layer descriptor";
    return std::nullopt;
  }
  LazyLayerDescriptor d;
  bool has_offset = false;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    size_t eq = line.find('=');
    std::string key = line.substr(0, eq), value = eq == std::string::npos ? "" : line.substr(eq + 1);
    if (key == "index") {
      d.index = value;
    } else if (key == "blob") {
      d.blob = value;
    } else if (key == "offset") {
      char* end = nullptr;
      errno = 0;
      d.offset = std::strtoull(value.c_str(), &end, 10);
      has_offset = !value.empty() && *end == '\0' && errno == 0;
    } else if (key == "verified") {
      d.verified = lazy::BlobFileIdentity::parse(value);
      if (!d.verified) {
        error = path + ": verified= is not DEV:INO:SIZE:MTIME_NS:CTIME_NS";
        return std::nullopt;
      }
    } else {
      error = path + ": unknown key \"" + key + "\"";
      return std::nullopt;
    }
  }
  if (d.index.empty() || d.blob.empty() || !has_offset) {
    error = path + ": a lazy layer descriptor needs index=, blob= and offset=";
    return std::nullopt;
  }
  // A relative name is beside the descriptor: a store's lazy layers keep working when the
  // store is moved or copied (as its l/ links, relative too).
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);  // "" for "/x": "/" + name
  for (std::string* name : {&d.index, &d.blob})
    if ((*name)[0] != '/') *name = dir + "/" + *name;
  return d;
}

}  // namespace strata::fs
