#pragma once
// A small file only its owner may read (the registry auth file), read and replaced without
// following a symlink anyone planted at its name or at the temp name: the new content is
// written to a fresh random name created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, in the
// same directory, then renamed over the old name (a symlink there is replaced, not followed).
#include <optional>
#include <string>

namespace strata {

// The file's bytes; nullopt when it does not exist. Throws strata::Error when `path` is a
// symbolic link or not a regular file.
std::optional<std::string> read_private_file(const std::string& path);

// Atomically replaces (or creates) `path` with `bytes`, mode 0600, fsynced.
void replace_private_file(const std::string& path, const std::string& bytes);

}  // namespace strata
