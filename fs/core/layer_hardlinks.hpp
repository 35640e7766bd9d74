// Every name of each multiply-linked non-directory in a read-only layer, found by one walk of the
// layer the first time a hardlinked file of it is copied up. Copy-up then links every visible
// name to the one upper inode, so all names keep sharing their content, also after a remount
// and when kernel overlayfs reads the upper.
#pragma once

#include <sys/types.h>

#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "fs/core/layer_source.hpp"

namespace strata::fs {

class LayerHardlinks {
 public:
  // Paths (relative to the layer root) of the file with inode `ino`; empty if unknown.
  std::vector<std::string> names_of(const LayerSource& layer, dev_t dev, ino_t ino);

 private:
  std::mutex mutex_;
  std::optional<std::unordered_map<ino_t, std::vector<std::string>>> names_;
};

}  // namespace strata::fs
