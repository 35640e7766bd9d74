#include "layerstore/container/save.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/container/fuse_mount.hpp"
#include "layerstore/error.hpp"
#include "layerstore/progress.hpp"
#include "layerstore/store/image_db.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/lazy_blob_stream.hpp"
#include "layerstore/store/lazy_layer.hpp"
#include "layerstore/store/short_names.hpp"
#include "layerstore/store/store_lock.hpp"

namespace strata {

using nlohmann::json;

namespace {

constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
constexpr const char* kOciLayer = "application/vnd.oci.image.layer.v1.tar";

// The size of the tar tar-split describes: raw segments plus file sizes.
uint64_t tar_split_size(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) throw Error(path + ": cannot open");
  std::string all;
  std::vector<char> buf(1 << 20);
  int n;
  while ((n = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()))) > 0) all.append(buf.data(), n);
  gzclose(gz);
  if (n < 0) throw Error(path + ": corrupt gzip");
  uint64_t total = 0;
  for (size_t pos = 0; pos < all.size();) {
    size_t nl = all.find('\n', pos);
    if (nl == std::string::npos) nl = all.size();
    std::string_view line(all.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    auto j = json::parse(line, nullptr, false);
    if (!j.is_object()) throw Error(path + ": malformed entry");
    if (j.value("type", 0) == 2) total += base64_decode(j.value("payload", std::string())).size();
    else total += j.value("size", uint64_t{0});
  }
  return total;
}

struct LayerOut {
  std::string diff_id, chain_id, tar_split, diff_dir;
  uint64_t size = 0;                  // of the uncompressed tar
  std::optional<LazyLayerPaths> lazy;  // a lazy layer: sent from its blob
  LazyBlobInfo blob;                   // lazy: the blob's digest and media type
  uint64_t blob_size = 0;
};

struct ImageOut {
  std::string id, config;
  std::vector<std::string> tags;  // "name:tag"
  std::vector<LayerOut> layers;
};

// Destination of bytes: an archive member or a plain file.
class Output {
 public:
  virtual ~Output() = default;
  virtual void begin(const std::string& name, uint64_t size) = 0;
  virtual void data(const void* p, size_t n) = 0;
  virtual void end() = 0;
  void whole(const std::string& name, const std::string& bytes) {
    begin(name, bytes.size());
    data(bytes.data(), bytes.size());
    end();
  }
  virtual bool has(const std::string& name) = 0;
  virtual void dir(const std::string& name) = 0;
  Progress* progress = nullptr;  // a bar per layer written, when given
};

class TarOutput : public Output {
 public:
  explicit TarOutput(const std::string& path) : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    archive_write_set_bytes_in_last_block(a_, 1);
    if (archive_write_open_filename(a_, path.c_str()) != ARCHIVE_OK)
      throw Error("create " + path + ": " + archive_error_string(a_));
  }
  ~TarOutput() override { archive_write_free(a_); }
  void begin(const std::string& name, uint64_t size) override {
    names_.insert(name);
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(size));
    archive_entry_set_mtime(e, 0, 0);
    int r = archive_write_header(a_, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK) throw Error("write " + name + ": " + archive_error_string(a_));
  }
  void data(const void* p, size_t n) override {
    if (archive_write_data(a_, p, n) != static_cast<la_ssize_t>(n)) throw Error(std::string("write: ") + archive_error_string(a_));
  }
  void end() override {}
  bool has(const std::string& name) override { return names_.count(name) > 0; }
  void dir(const std::string& name) override {
    if (!names_.insert(name + "/").second) return;
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, (name + "/").c_str());
    archive_entry_set_filetype(e, AE_IFDIR);
    archive_entry_set_perm(e, 0755);
    archive_entry_set_mtime(e, 0, 0);
    archive_write_header(a_, e);
    archive_entry_free(e);
  }
  void close() {
    if (archive_write_close(a_) != ARCHIVE_OK) throw Error(std::string("finish archive: ") + archive_error_string(a_));
  }

 private:
  archive* a_;
  std::set<std::string> names_;
};

class DirOutput : public Output {
 public:
  explicit DirOutput(std::string root) : root_(std::move(root)) {}
  void begin(const std::string& name, uint64_t) override {
    path_ = root_ + "/" + name;
    fd_.reset(open((path_ + ".tmp").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd_) throw_errno("create " + path_);
  }
  void data(const void* p, size_t n) override {
    const char* c = static_cast<const char*>(p);
    while (n) {
      ssize_t w = write(fd_.get(), c, n);
      if (w < 0) throw_errno("write " + path_);
      c += w;
      n -= w;
    }
  }
  void end() override {
    fd_.reset();
    if (rename((path_ + ".tmp").c_str(), path_.c_str()) != 0) throw_errno("rename " + path_);
  }
  bool has(const std::string& name) override { return path_exists(root_ + "/" + name); }
  void dir(const std::string& name) override { mkdirs(root_ + "/" + name, 0755); }

 private:
  std::string root_, path_;
  UniqueFd fd_;
};

// The layer as an uncompressed tar.
void write_layer(Output& out, const std::string& name, const LayerOut& layer) {
  out.begin(name, layer.size);
  Sha256 h;
  uint64_t n = 0;
  LayerBar bar(out.progress, layer.diff_id.substr(0, 19), layer.size, "writing");
  auto sink = [&](const uint8_t* p, size_t len) {
    h.update(p, len);
    n += len;
    out.data(p, len);
    bar.update(n);
  };
  if (layer.lazy) {
    stream_lazy_tar(*layer.lazy, layer.diff_id, sink);
  } else {
    UniqueFd diff = open_dir(layer.diff_dir);
    assemble_tar_split(layer.tar_split, diff.get(), sink);
  }
  bar.done("written: " + human_bytes(static_cast<double>(n)));
  std::string got = h.finish();
  if (got != layer.diff_id || n != layer.size)
    throw Error("layer " + layer.diff_id + " rebuilds as " + got + " (" + std::to_string(n) + " bytes): run `strata verify`");
  out.end();
}

// A lazy layer's blob as it was received (no recompression: its digest stays).
void write_lazy_blob(Output& out, const std::string& name, const LayerOut& layer) {
  out.begin(name, layer.blob_size);
  uint64_t n = 0;
  LayerBar bar(out.progress, layer.blob.digest.substr(0, 19), layer.blob_size, "writing");
  stream_lazy_blob(*layer.lazy, layer.blob.digest, [&](const uint8_t* p, size_t len) {
    n += len;
    out.data(p, len);
    bar.update(n);
  });
  bar.done("written: " + human_bytes(static_cast<double>(n)));
  if (n != layer.blob_size) throw Error("lazy layer blob " + layer.lazy->blob + " changed size while written");
  out.end();
}

void write_docker_archive(Output& out, const std::vector<ImageOut>& images, SaveResult& res) {
  json manifest = json::array();
  json repositories = json::object();
  for (const auto& img : images) {
    std::string cfg_name = digest_hex(img.id) + ".json";
    if (!out.has(cfg_name)) out.whole(cfg_name, img.config);
    json layers = json::array();
    std::string parent;
    for (const auto& layer : img.layers) {
      // v1 layer dirs named by chain-id: equal stacks share dirs, equal diffs at other
      // positions do not.
      std::string v1 = digest_hex(layer.chain_id);
      layers.push_back(v1 + "/layer.tar");
      if (!out.has(v1 + "/layer.tar")) {
        out.dir(v1);
        out.whole(v1 + "/VERSION", "1.0");
        json j = {{"id", v1}, {"created", "1970-01-01T00:00:00Z"}, {"container_config", {{"Cmd", nullptr}}}};
        if (!parent.empty()) j["parent"] = parent;
        out.whole(v1 + "/json", j.dump());
        write_layer(out, v1 + "/layer.tar", layer);
        res.layers++;
        res.bytes += layer.size;
      }
      parent = v1;
    }
    manifest.push_back({{"Config", cfg_name}, {"RepoTags", img.tags.empty() ? json(nullptr) : json(img.tags)}, {"Layers", layers}});
    for (const auto& t : img.tags) {
      auto colon = t.rfind(':');
      repositories[t.substr(0, colon)][t.substr(colon + 1)] = parent;
    }
  }
  if (!repositories.empty()) out.whole("repositories", repositories.dump());
  out.whole("manifest.json", manifest.dump());
}

void write_oci_layout(Output& out, const std::vector<ImageOut>& images, SaveResult& res) {
  out.whole("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  out.dir("blobs");
  out.dir("blobs/sha256");
  json index = {{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.index.v1+json"}, {"manifests", json::array()}};
  for (const auto& img : images) {
    json layers = json::array();
    for (const auto& layer : img.layers) {
      if (layer.lazy) {
        std::string name = "blobs/sha256/" + digest_hex(layer.blob.digest);
        if (!out.has(name)) {
          write_lazy_blob(out, name, layer);
          res.layers++;
          res.bytes += layer.blob_size;
        }
        layers.push_back({{"mediaType", oci_layer_media_type(layer.blob.media_type)},
                          {"digest", layer.blob.digest},
                          {"size", layer.blob_size}});
        continue;
      }
      std::string name = "blobs/sha256/" + digest_hex(layer.diff_id);
      if (!out.has(name)) {
        write_layer(out, name, layer);
        res.layers++;
        res.bytes += layer.size;
      }
      layers.push_back({{"mediaType", kOciLayer}, {"digest", layer.diff_id}, {"size", layer.size}});
    }
    std::string cfg_name = "blobs/sha256/" + digest_hex(img.id);
    if (!out.has(cfg_name)) out.whole(cfg_name, img.config);
    json m = {{"schemaVersion", 2},
              {"mediaType", kOciManifest},
              {"config", {{"mediaType", kOciConfig}, {"digest", img.id}, {"size", img.config.size()}}},
              {"layers", layers}};
    std::string mbytes = m.dump();
    std::string mdigest = sha256_digest(mbytes);
    if (!out.has("blobs/sha256/" + digest_hex(mdigest))) out.whole("blobs/sha256/" + digest_hex(mdigest), mbytes);
    json desc = {{"mediaType", kOciManifest}, {"digest", mdigest}, {"size", mbytes.size()}};
    if (img.tags.empty()) index["manifests"].push_back(desc);
    for (const auto& t : img.tags) {
      json d = desc;
      d["annotations"] = {{"io.containerd.image.name", t}, {"org.opencontainers.image.ref.name", t.substr(t.rfind(':') + 1)}};
      index["manifests"].push_back(d);
    }
  }
  out.whole("index.json", index.dump());
}

}  // namespace

SaveFormat parse_save_format(const std::string& s) {
  if (s == "docker-archive" || s.empty()) return SaveFormat::DockerArchive;
  if (s == "oci-archive") return SaveFormat::OciArchive;
  if (s == "oci-dir") return SaveFormat::OciDir;
  throw Error("unknown --format \"" + s + "\" (docker-archive, oci-archive or oci-dir)");
}

SaveResult save_images(const StoreLayout& l, const std::vector<std::string>& names, const std::string& output,
                       SaveFormat format, Progress* progress) {
  if (!store_exists(l)) throw Error("no such image: " + names.at(0));
  RangeLock store = read_lock_store(l);
  ImageDb idb(l);
  LayerDb db(l);
  Repositories repos = Repositories::load(l);
  std::vector<ImageOut> images;
  for (const auto& name : names) {
    ImageOut img;
    img.id = idb.resolve(name, repos);
    img.config = idb.config(img.id);
    auto ref = stored_reference(name, repos);  // "debian:12" may name localhost/debian:12
    if (ref && ref->digest.empty() && repos.lookup(*ref) == img.id) img.tags.push_back(ref->str());
    else
      for (const auto& r : repos.refs_of(img.id))
        if (r.find('@') == std::string::npos) img.tags.push_back(r);
    auto diffs = config_diff_ids(img.config);
    auto chains = chain_ids(diffs);
    for (size_t i = 0; i < diffs.size(); i++) {
      auto rec = db.get(chains[i]);
      if (!rec) throw Error(name + ": layer " + chains[i] + " is missing from the store");
      LayerOut lo{diffs[i], chains[i], db.tar_split_path(chains[i]), db.diff_dir(rec->cache_id), 0, {}, {}, 0};
      lo.lazy = lazy_layer(l, rec->cache_id);
      if (lo.lazy) {
        lo.blob = read_lazy_blob_info(*lo.lazy);
        lo.blob_size = lazy_blob_size(*lo.lazy);
        lo.size = lazy_tar_size(*lo.lazy);
      } else {
        lo.size = tar_split_size(lo.tar_split);
      }
      img.layers.push_back(lo);
    }
    images.push_back(std::move(img));
  }
  SaveResult res;
  res.images = static_cast<int>(images.size());
  std::string tmp = output + ".tmp-" + std::to_string(getpid());
  try {
    if (format == SaveFormat::OciDir) {
      if (path_exists(output + "/index.json") || (path_exists(output) && rmdir(output.c_str()) != 0))
        throw Error(output + " exists and is not empty");
      mkdirs(tmp, 0755);
      DirOutput out(tmp);
      out.progress = progress;
      write_oci_layout(out, images, res);
    } else {
      TarOutput out(tmp);
      out.progress = progress;
      if (format == SaveFormat::DockerArchive) write_docker_archive(out, images, res);
      else write_oci_layout(out, images, res);
      out.close();
    }
    if (rename(tmp.c_str(), output.c_str()) != 0) throw_errno("rename " + tmp + " -> " + output);
  } catch (...) {
    remove_tree_forced(tmp);
    throw;
  }
  return res;
}

}  // namespace strata
