// The ordered set of trees merged by the overlay: the writable upper (if any) first, then
// the read-only lowers top-most first. Every layer is reached through one O_PATH fd on its
// root, so the number of open fds stays fixed however many files the mount sees.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <memory>

#include "fs/core/layer_source.hpp"
#include "fs/core/result.hpp"
#include "fs/core/unique_fd.hpp"

namespace strata::fs {

struct Layer {
  std::string path;  // absolute path of the layer root
  UniqueFd root;     // O_PATH | O_DIRECTORY
  std::unique_ptr<LayerSource> source;  // how the engine reads it
  dev_t dev = 0;
  bool writable = false;
};

class LayerStack {
 public:
  // Opens each root. upper may be empty (read-only mount). On failure returns the errno
  // and sets `error` to a message naming the directory.
  static Result<LayerStack> open(const std::vector<std::string>& lowers, const std::string& upper,
                                 std::string& error);

  size_t size() const { return layers_.size(); }
  const Layer& operator[](size_t i) const { return layers_[i]; }
  bool has_upper() const { return has_upper_; }
  // Index of the first read-only layer (1 with an upper, else 0).
  int first_lower() const { return has_upper_ ? 1 : 0; }
  int upper_fd() const { return layers_[0].root.get(); }

  // The st_ino presented for a file with real (dev, ino): kept as is on the first device
  // seen, tagged with a per-device number in the top bits otherwise, so that files of
  // layers on different filesystems never share an inode number.
  uint64_t present_ino(dev_t dev, ino_t ino) const;

 private:
  std::vector<Layer> layers_;
  std::vector<dev_t> devices_;  // distinct devices, in layer order
  bool has_upper_ = false;
};

}  // namespace strata::fs
