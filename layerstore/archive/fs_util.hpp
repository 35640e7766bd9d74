#pragma once
// Small filesystem helpers shared by extraction and the store.
#include <string>

#include "layerstore/archive/unique_fd.hpp"

namespace strata {

// Removes `name` under dirfd, recursively, never following symlinks. `what` names it in errors.
void remove_tree_at(int dirfd, const std::string& name, const std::string& what);
// Same for an absolute or cwd-relative path; missing is fine.
void remove_tree(const std::string& path);

UniqueFd open_dir(const std::string& path);
void mkdirs(const std::string& path, int mode = 0755);
bool path_exists(const std::string& path);
std::string read_file(const std::string& path);
// Writes via "<path>.tmp-<pid>" + fsync + rename, so readers see the old or the new bytes.
void write_file_atomic(const std::string& path, const std::string& bytes, int mode = 0644);
// Plain write, for files inside a not-yet-published staging dir.
void write_file_at(int dirfd, const std::string& name, const std::string& bytes, int mode = 0644);
void fsync_dir(const std::string& path);

}  // namespace strata
