#include "layerstore/store/store_layout.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "layerstore/archive/fs_util.hpp"
#include "layerstore/error.hpp"

namespace strata {

void StoreLayout::ensure_skeleton() const {
  for (const auto& d : {links(), overlay_staging(), layerdb(), layerdb_tmp(), imagedb_content(),
                        imagedb_metadata(), diffid_by_digest(), v2metadata_by_diffid()})
    mkdirs(d, 0700);
  int fd = ::open(lock_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw_errno("create " + lock_file());
  ::close(fd);
}

bool store_exists(const StoreLayout& l) {
  return path_exists(l.lock_file()) || (path_exists(l.image_root()) && path_exists(l.overlay2()));
}

std::string default_store_root() {
  if (const char* r = std::getenv("STRATA_ROOT"); r && *r) return r;
  if (geteuid() == 0) return "/var/lib/strata";
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/strata";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/tmp") + "/.local/share/strata";
}

}  // namespace strata
