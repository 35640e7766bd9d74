#include "fs/core/hidden_links.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "fs/core/dir_stream.hpp"

namespace strata::fs {

Status HiddenLinks::open(const std::string& workdir) {
  std::string path = workdir + "/strata-index";
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return errno;
  dir_ = UniqueFd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir_) return errno;
  // Entries are "INO.N". A file all of whose links are here has no name in the upper left.
  std::map<ino_t, std::vector<std::string>> by_ino;
  std::map<ino_t, nlink_t> nlink;
  DirStream list(dir_.get(), ".");
  while (struct dirent* de = list.ok() ? list.next() : nullptr) {
    struct stat st {};
    if (de->d_name[0] == '.' || ::fstatat(dir_.get(), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    by_ino[st.st_ino].emplace_back(de->d_name);
    nlink[st.st_ino] = st.st_nlink;
  }
  for (auto& [ino, names] : by_ino)
    if (nlink[ino] <= names.size())
      for (const auto& n : names) ::unlinkat(dir_.get(), n.c_str(), 0);
  return 0;
}

void HiddenLinks::add(int dir_fd, const std::string& name, ino_t ino, unsigned count) {
  if (!dir_) return;
  for (unsigned i = 0, made = 0; made < count && i < count + 64; ++i) {
    std::string link = std::to_string(ino) + "." + std::to_string(i);
    if (::linkat(dir_fd, name.c_str(), dir_.get(), link.c_str(), 0) == 0) ++made;
    else if (errno != EEXIST) return;
  }
}

}  // namespace strata::fs
