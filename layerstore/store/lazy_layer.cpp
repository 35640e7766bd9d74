#include "layerstore/store/lazy_layer.hpp"

#include <sys/stat.h>

#include "common/lazy/blob_index.hpp"
#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/error.hpp"

namespace strata {

LazyLayerPaths lazy_layer_paths_in(const std::string& dir) {
  return LazyLayerPaths{dir, dir + "/" + kLazyDescriptorName, dir + "/" + kLazyBlobName, dir + "/" + kLazyIndexName,
                        dir + "/" + kLazyDigestName};
}

std::optional<LazyLayerPaths> lazy_layer(const StoreLayout& l, const std::string& cache_id) {
  if (cache_id.empty() || cache_id.find('/') != std::string::npos) return std::nullopt;
  LazyLayerPaths p = lazy_layer_paths_in(l.overlay2() + "/" + cache_id);
  struct stat st;
  if (lstat(p.descriptor.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  if (lstat((p.dir + "/diff").c_str(), &st) == 0) return std::nullopt;  // unpacked (or being unpacked)
  return p;
}

std::string lowerdir_entry(const StoreLayout& l, const std::string& cache_id) {
  if (auto p = lazy_layer(l, cache_id)) return p->descriptor;
  return l.overlay2() + "/" + cache_id + "/diff";
}

LazyBlobInfo read_lazy_blob_info(const LazyLayerPaths& p) {
  std::string line = read_file(p.digest);
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  size_t sp = line.find(' ');
  LazyBlobInfo info{line.substr(0, sp), sp == std::string::npos ? "" : line.substr(sp + 1)};
  if (!is_valid_digest(info.digest) || info.media_type.empty() || info.media_type.find(' ') != std::string::npos)
    throw Error(p.digest + ": not \"<digest> <media type>\"");
  return info;
}

std::string lazy_media_type_for(uint32_t compression) {
  switch (static_cast<lazy::BlobCompression>(compression)) {
    case lazy::BlobCompression::Gzip: return "application/vnd.oci.image.layer.v1.tar+gzip";
    case lazy::BlobCompression::Zstd: return "application/vnd.oci.image.layer.v1.tar+zstd";
    default: return "application/vnd.oci.image.layer.v1.tar";
  }
}

std::string lazy_descriptor_text() {
  return std::string("strata-lazy-layer 1\nindex=") + kLazyIndexName + "\nblob=" + kLazyBlobName + "\noffset=0\n";
}

void write_lazy_layer_files(const std::string& dir, const LazyBlobInfo& info) {
  UniqueFd fd = open_dir(dir);
  write_file_at(fd.get(), kLazyDigestName, info.digest + " " + info.media_type + "\n", 0644);
  write_file_at(fd.get(), kLazyDescriptorName, lazy_descriptor_text(), 0644);
}

}  // namespace strata
