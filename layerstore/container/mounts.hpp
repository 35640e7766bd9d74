#pragma once
// Host-side mounts through strata-fs: an image read-only (its layers' short links as
// lowers) and a container's rw view (upper = rw layer's diff, lowers = init then image).
// A mount whose daemon died (ENOTCONN) is never reused: it is detached and mounted again.
#include <functional>
#include <string>
#include <vector>

#include "layerstore/container/container.hpp"

namespace strata {

using NoteFn = std::function<void(const std::string&)>;

// Mount point used when `dir` is empty: <root>/mnt/<image-id hex>.
std::string image_mount_dir(const StoreLayout& l, const std::string& image_id);
std::string mount_image(const StoreLayout& l, const std::string& image, const std::string& dir, const NoteFn& note);
// DIR, or IMAGE (its default mount point). Removes a default mount point afterwards.
std::string umount_image(const StoreLayout& l, const std::string& dir_or_image);

// Where `strata mount` of this image is mounted now: the mount points of this store's
// strata-fs daemons that have the image's top layer as their top lower and no upper.
std::vector<std::string> image_mounts(const StoreLayout& l, const std::string& image_id);
// For rmi: throws unless `force`; with it, unmounts the image's mounts.
void release_image_mounts(const StoreLayout& l, const std::string& image_id, const std::string& name, bool force);

std::string mount_container(const StoreLayout& l, const Container& c, const NoteFn& note);
void umount_container(const StoreLayout& l, const Container& c);

}  // namespace strata
