#include "fs/core/layer_stack.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <sys/sysmacros.h>

#include <algorithm>
#include <cstring>

#include "fs/core/blob_layer_source.hpp"

namespace strata::fs {

namespace {

// A lazy layer (a descriptor file naming a blob and its index) has no device of its own:
// each gets a made-up one, so the (dev, ino) keys of its files never meet another layer's.
Result<Layer> open_lazy_layer(const std::string& path, size_t position, std::string& error) {
  Layer layer;
  layer.path = path;
  layer.root = UniqueFd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!layer.root) {
    int err = errno;
    error = "lowerdir " + path + ": " + std::strerror(err);
    return Errno{err};
  }
  layer.dev = makedev(0xfffff, unsigned(position));
  std::string why;
  layer.source = BlobLayerSource::open(path, layer.dev, why);
  if (!layer.source) {
    error = "lowerdir " + why;
    return Errno{EINVAL};
  }
  return layer;
}

Result<Layer> open_layer(const std::string& path, bool writable, std::string& error) {
  Layer layer;
  layer.path = path;
  layer.writable = writable;
  layer.root = UniqueFd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!layer.root) {
    int err = errno;
    error = (writable ? "upperdir " : "lowerdir ") + path + ": " + std::strerror(err);
    return Errno{err};
  }
  struct stat st {};
  if (::fstat(layer.root.get(), &st) != 0) {
    int err = errno;
    error = path + ": " + std::strerror(err);
    return Errno{err};
  }
  layer.dev = st.st_dev;
  UniqueFd own(::fcntl(layer.root.get(), F_DUPFD_CLOEXEC, 0));
  if (!own) {
    int err = errno;
    error = path + ": " + std::strerror(err);
    return Errno{err};
  }
  layer.source = std::make_unique<DirLayerSource>(std::move(own));
  return layer;
}

}  // namespace

Result<LayerStack> LayerStack::open(const std::vector<std::string>& lowers, const std::string& upper,
                                    std::string& error) {
  LayerStack stack;
  if (!upper.empty()) {
    auto layer = open_layer(upper, true, error);
    if (!layer) return Errno{layer.error()};
    stack.layers_.push_back(std::move(*layer));
    stack.has_upper_ = true;
  }
  for (const auto& lower : lowers) {
    auto layer = is_lazy_layer_file(lower) ? open_lazy_layer(lower, stack.layers_.size(), error)
                                           : open_layer(lower, false, error);
    if (!layer) return Errno{layer.error()};
    stack.layers_.push_back(std::move(*layer));
  }
  for (const auto& layer : stack.layers_) {
    if (std::find(stack.devices_.begin(), stack.devices_.end(), layer.dev) == stack.devices_.end())
      stack.devices_.push_back(layer.dev);
  }
  return stack;
}

uint64_t LayerStack::present_ino(dev_t dev, ino_t ino) const {
  if (devices_.size() <= 1 || dev == devices_[0]) return ino;
  for (size_t i = 1; i < devices_.size(); ++i) {
    if (devices_[i] == dev) return uint64_t(ino) ^ (uint64_t(i) << 56);
  }
  // A mount point inside a layer: rare; fold the device in so the number stays distinct.
  return uint64_t(ino) ^ (uint64_t(dev) << 40) ^ (uint64_t(0xff) << 56);
}

}  // namespace strata::fs
