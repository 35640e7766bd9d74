#pragma once
// What a rw layer changed relative to the layers below it, as `docker diff` shows it:
// A (added), C (changed: exists below; directories holding changes count too), D (deleted:
// a whiteout in any on-disk form, or a lower entry hidden by an opaque directory).
#include <string>
#include <vector>

namespace strata {

struct Change {
  char kind;         // 'A', 'C' or 'D'
  std::string path;  // "/etc/hosts"
};

// `lowers`: diff dirs or lazy layer descriptor files (read from their index), top-most
// first. Sorted by path.
std::vector<Change> layer_changes(const std::string& upper, const std::vector<std::string>& lowers);

// Marker forms a writer may have left in an upper dir.
bool is_whiteout_device(int dirfd, const std::string& name);
bool is_opaque_dir_at(int dirfd, const std::string& name);

}  // namespace strata
