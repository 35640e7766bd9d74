#include "layerstore/sources/push.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/gzip_compress.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/error.hpp"
#include "layerstore/store/image_db.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/lazy_blob_stream.hpp"
#include "layerstore/store/lazy_layer.hpp"
#include "layerstore/store/store_lock.hpp"

namespace strata {

using nlohmann::json;

namespace {

const char* kDockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
const char* kOciConfig = "application/vnd.oci.image.config.v1+json";

struct Blob {
  std::string digest;
  uint64_t size = 0;
  std::string media_type;  // a lazy layer's, as it was received; "" for a gzip strata made
};

// Compressed chunks from the rebuild thread to curl's read callback; bounded.
class ByteQueue {
 public:
  void push(std::vector<uint8_t> chunk) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return q_.size() < 16 || cancelled_; });
    if (cancelled_) throw Error("upload cancelled");
    q_.push_back(std::move(chunk));
    cv_.notify_all();
  }
  void close(std::exception_ptr err) {
    std::lock_guard lk(mu_);
    closed_ = true;
    error_ = err;
    cv_.notify_all();
  }
  void cancel() {
    std::lock_guard lk(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  // Fills buf; 0 at the end; rethrows the producer's error.
  size_t read(char* buf, size_t cap) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return 0;
    }
    auto& front = q_.front();
    size_t k = std::min(cap, front.size() - off_);
    std::copy_n(front.data() + off_, k, buf);
    off_ += k;
    if (off_ == front.size()) {
      q_.pop_front();
      off_ = 0;
      cv_.notify_all();
    }
    return k;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<uint8_t>> q_;
  size_t off_ = 0;
  bool closed_ = false, cancelled_ = false;
  std::exception_ptr error_;
};

struct Pusher {
  const StoreLayout& l;
  RegistryClient& client;
  const RemoteRef& dst;
  Progress& progress;
  std::string scope;
  std::mutex mu;
  PushSummary& sum;

  std::optional<uint64_t> head(const std::string& digest) {
    HttpRequest req;
    req.method = "HEAD";
    HttpResponse r = client.call(req, "/v2/" + dst.repo + "/blobs/" + digest, scope);
    if (r.status == 404) return std::nullopt;
    if (r.status != 200) throw Error("HEAD blob " + digest + ": " + registry_error(r));
    std::string len = r.header("content-length");
    return len.empty() ? 0 : std::stoull(len);
  }

  // POST .../uploads/ (optionally as a mount): the upload URL, or "" when mounted.
  std::string start_upload(const std::string& mount_digest, const std::string& from, const std::string& scope_used) {
    HttpRequest req;
    req.method = "POST";
    std::string path = "/v2/" + dst.repo + "/blobs/uploads/";
    if (!mount_digest.empty()) path += "?mount=" + url_escape(mount_digest) + "&from=" + url_escape(from);
    HttpResponse r = client.call(req, path, scope_used);
    if (r.status == 201 && !mount_digest.empty()) return "";
    if (r.status != 202) throw Error("start upload: " + registry_error(r));
    std::string loc = r.header("location");
    if (loc.empty()) throw Error("start upload: registry sent no Location");
    return loc;
  }

  void finish_upload(const std::string& location, const std::string& digest, const std::string& body) {
    HttpRequest req;
    req.method = "PUT";
    req.body = body;
    req.headers.push_back("Content-Type: application/octet-stream");
    std::string url = location + (location.find('?') == std::string::npos ? "?" : "&") + "digest=" + url_escape(digest);
    HttpResponse r = client.call(req, url, scope);
    if (r.status != 201) throw Error("blob " + digest + ": " + registry_error(r));
  }

  // Rebuilds the layer tar, compresses it and streams it up; returns the compressed blob.
  Blob upload_layer(const LayerRecord& rec, const std::string& label, std::string location) {
    LayerDb db(l);
    ByteQueue q;
    Sha256 zdigest, tar_digest;
    uint64_t zsize = 0, tar_bytes = 0;
    auto lazy = lazy_layer(l, rec.cache_id);
    // A lazy layer's bar counts the blob it sends, another its tar's content.
    uint64_t total = lazy ? lazy_blob_size(*lazy) : rec.size;
    int bar = progress.begin_layer(label, total, "uploading");
    std::thread producer([&] {
      try {
        auto out = [&](const uint8_t* p, size_t n) {
          zdigest.update(p, n);
          zsize += n;
          q.push(std::vector<uint8_t>(p, p + n));
        };
        if (lazy) {
          // The blob as received: the registry gets the digest the image was pulled or loaded with.
          stream_lazy_blob(*lazy, read_lazy_blob_info(*lazy).digest, [&](const uint8_t* p, size_t n) {
            out(p, n);
            progress.update(bar, std::min<uint64_t>(zsize, total));
          });
          q.close(nullptr);
          return;
        }
        UniqueFd diff = open_dir(db.diff_dir(rec.cache_id));
        GzipCompressor gz;
        assemble_tar_split(db.tar_split_path(rec.chain_id), diff.get(), [&](const uint8_t* p, size_t n) {
          tar_digest.update(p, n);
          tar_bytes += n;
          gz.feed(p, n, out);
          progress.update(bar, std::min<uint64_t>(tar_bytes, rec.size));
        });
        gz.finish(out);
        q.close(nullptr);
      } catch (...) {
        q.close(std::current_exception());
      }
    });
    HttpRequest req;
    req.method = "PATCH";
    req.headers.push_back("Content-Type: application/octet-stream");
    req.reader = [&](char* buf, size_t cap) { return q.read(buf, cap); };
    HttpResponse r;
    try {
      r = client.call(req, location, scope);
    } catch (...) {
      q.cancel();
      producer.join();
      progress.end_layer(bar, "failed");
      throw;
    }
    q.cancel();
    producer.join();
    if (r.status != 202) {
      progress.end_layer(bar, "failed");
      throw Error("upload: " + registry_error(r));
    }
    std::string got = tar_digest.finish();
    if (!lazy && got != rec.diff_id) {
      progress.end_layer(bar, "failed");
      throw Error("the store's copy differs from its diff_id (want " + rec.diff_id + ", got " + got + "); run strata verify");
    }
    Blob b{zdigest.finish(), zsize, lazy ? read_lazy_blob_info(*lazy).media_type : ""};
    // The PATCH answer names where the upload continues (its state changed).
    if (!r.header("location").empty()) location = resolve_url(client.url(location), r.header("location"));
    finish_upload(location, b.digest, "");
    progress.end_layer(bar, "pushed: " + human_bytes(static_cast<double>(zsize)) + " " + b.digest.substr(0, 19));
    return b;
  }

  // A lazy layer's media type when `digest` is its blob's ("" otherwise: a gzip of the tar).
  std::string lazy_media_type(const LayerRecord& rec, const std::string& digest) {
    auto lazy = lazy_layer(l, rec.cache_id);
    if (!lazy) return "";
    LazyBlobInfo info = read_lazy_blob_info(*lazy);
    return info.digest == digest ? info.media_type : "";
  }

  Blob push_layer(const LayerRecord& rec, const std::string& label) {
    ImageDb idb(l);
    if (auto lazy = lazy_layer(l, rec.cache_id)) {
      // A lazy layer is sent as the blob it is, so its own digest is the one to look for.
      LazyBlobInfo info = read_lazy_blob_info(*lazy);
      if (auto size = head(info.digest)) {
        std::lock_guard lk(mu);
        sum.existing++;
        progress.message(label + ": already in " + dst.repo + " (" + info.digest.substr(0, 19) + ")");
        return {info.digest, *size, info.media_type};
      }
    }
    // What this diff_id was pulled as: a blob the registry may have, here or in another repo.
    std::string meta = l.v2metadata_by_diffid() + "/" + digest_hex(rec.diff_id);
    std::vector<std::pair<std::string, std::string>> known;  // digest, repo on this registry
    if (path_exists(meta)) {
      auto arr = json::parse(read_file(meta), nullptr, false);
      if (arr.is_array())
        for (const auto& e : arr) {
          std::string d = e.value("Digest", ""), src = e.value("SourceRepository", "");
          if (!is_valid_digest(d) || src.empty()) continue;
          try {
            RemoteRef s = parse_remote_ref(src);
            if (s.registry == dst.registry) known.emplace_back(d, s.repo);
          } catch (const Error&) {
          }
        }
    }
    for (const auto& [d, repo] : known) {
      if (auto size = head(d)) {
        std::lock_guard lk(mu);
        sum.existing++;
        progress.message(label + ": already in " + dst.repo + " (" + d.substr(0, 19) + ")");
        return {d, *size, lazy_media_type(rec, d)};
      }
    }
    std::string location;
    for (const auto& [d, repo] : known) {
      if (repo == dst.repo) continue;
      location = start_upload(d, repo, scope + " repository:" + repo + ":pull");
      if (location.empty()) {
        auto size = head(d);
        std::lock_guard lk(mu);
        sum.mounted++;
        progress.message(label + ": mounted from " + repo + " (" + d.substr(0, 19) + ")");
        return {d, size.value_or(0), lazy_media_type(rec, d)};
      }
      break;  // not mountable: the registry opened an upload instead; use it
    }
    if (location.empty()) location = start_upload("", "", scope);
    Blob b = upload_layer(rec, label, location);
    idb.record_distribution(b.digest, rec.diff_id, dst.local.name);
    std::lock_guard lk(mu);
    sum.uploaded++;
    sum.bytes_uploaded += b.size;
    return b;
  }
};

}  // namespace

PushSummary push_image(const StoreLayout& l, const PushOptions& opts, Progress& progress) {
  auto start = std::chrono::steady_clock::now();
  RemoteRef dst = parse_remote_ref(opts.ref);
  if (!dst.digest.empty()) throw Error("cannot push to a digest reference; give a tag");
  l.ensure_skeleton();
  RangeLock store = lock_store(l.lock_file(), false);  // no rmi/prune while layers are read
  ImageDb idb(l);
  LayerDb db(l);
  std::string id = idb.resolve(opts.image, Repositories::load(l));
  std::string config = idb.config(id);
  std::vector<std::string> diff_ids = config_diff_ids(config);
  std::vector<std::string> chains = chain_ids(diff_ids);
  std::vector<LayerRecord> recs;
  for (const auto& c : chains) {
    auto rec = db.get(c);
    if (!rec) throw Error("layer " + c + " of image " + id + " is missing from the store");
    recs.push_back(*rec);
  }

  RegistryClient client(dst.registry, opts.registry);
  client.ping();
  PushSummary sum;
  Pusher p{l, client, dst, progress, "repository:" + dst.repo + ":pull,push", {}, sum};
  std::vector<Blob> blobs(recs.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr first_error;
  std::mutex err_mu;
  auto worker = [&] {
    for (size_t i; !stop && (i = next++) < recs.size();) {
      try {
        std::string label = "layer " + std::to_string(i + 1) + "/" + std::to_string(recs.size());
        try {
          blobs[i] = p.push_layer(recs[i], label);
        } catch (const TransportError& e) {
          progress.message(label + ": " + e.what() + "; retrying once");
          blobs[i] = p.push_layer(recs[i], label);
        }
      } catch (const std::exception& e) {
        std::lock_guard lk(err_mu);
        if (!first_error) first_error = std::make_exception_ptr(Error("layer " + std::to_string(i + 1) + ": " + e.what()));
        stop = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, std::min<int>(opts.jobs, static_cast<int>(recs.size()))); t++) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (first_error) std::rethrow_exception(first_error);

  if (!p.head(id)) p.finish_upload(p.start_upload("", "", p.scope), id, config);

  // Docker's schema 2 manifest, unless a lazy layer's blob has a type only OCI names (zstd).
  bool oci = false;
  for (const auto& b : blobs)
    if (!b.media_type.empty() && docker_layer_media_type(b.media_type).empty()) oci = true;
  std::string manifest_type = oci ? kOciManifest : "application/vnd.docker.distribution.manifest.v2+json";
  json m = json::object();
  m["schemaVersion"] = 2;
  m["mediaType"] = manifest_type;
  m["config"] = {{"mediaType", oci ? kOciConfig : "application/vnd.docker.container.image.v1+json"},
                 {"size", config.size()},
                 {"digest", id}};
  m["layers"] = json::array();
  for (const auto& b : blobs) {
    std::string type = b.media_type.empty() ? kDockerLayer : b.media_type;
    type = oci ? oci_layer_media_type(type) : docker_layer_media_type(type);
    m["layers"].push_back({{"mediaType", type}, {"size", b.size}, {"digest", b.digest}});
  }
  std::string manifest = m.dump(3);
  HttpRequest req;
  req.method = "PUT";
  req.body = manifest;
  req.headers.push_back("Content-Type: " + manifest_type);
  HttpResponse r = client.call(req, "/v2/" + dst.repo + "/manifests/" + dst.tag, p.scope);
  if (r.status != 201) throw Error("manifest: " + registry_error(r));
  sum.manifest_digest = sha256_digest(manifest);
  sum.manifest_size = manifest.size();
  std::string sent = r.header("docker-content-digest");
  if (!sent.empty() && sent != sum.manifest_digest)
    throw Error("manifest: registry stored " + sent + " but we sent " + sum.manifest_digest);
  {
    RangeLock index = lock_index(l.lock_file());
    Repositories repos = Repositories::load(l);
    repos.set(Reference{dst.local.name, "", sum.manifest_digest}, id);
    repos.save(l);
  }
  sum.remote_ref = dst.str();
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return sum;
}

}  // namespace strata
