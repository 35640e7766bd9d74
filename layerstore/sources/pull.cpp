#include "layerstore/sources/pull.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "layerstore/archive/digest.hpp"
#include "layerstore/error.hpp"

namespace strata {

using nlohmann::json;

namespace {

// A small blob held in memory, as a BlobRef the manifest checks can read.
BlobRef memory_blob(const std::string& bytes, const std::string& name) {
  int fd = memfd_create("strata-blob", MFD_CLOEXEC);
  if (fd < 0) throw_errno("memfd_create");
  auto file = std::make_shared<UniqueFd>(fd);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) throw_errno("write memfd");
    done += n;
  }
  return BlobRef{file, 0, bytes.size(), name};
}

constexpr int64_t kMaxConfigBytes = 16 << 20;

std::string fetch_config(RegistryClient& client, const std::string& repo, const std::string& digest, int64_t size) {
  if (size > kMaxConfigBytes)
    throw Error("config " + digest + ": descriptor says " + std::to_string(size) + " bytes, more than a config may have (" +
                std::to_string(kMaxConfigBytes) + ")");
  std::string out;
  client.fetch_blob(repo, digest, size >= 0 ? size : kMaxConfigBytes, [&](const uint8_t* p, size_t n) {
    out.append(reinterpret_cast<const char*>(p), n);
  });
  std::string got = sha256_digest(out);
  if (got != digest) throw Error("config " + digest + ": digest mismatch (got " + got + ")");
  return out;
}

}  // namespace

PullSummary pull_image(const StoreLayout& layout, const PullOptions& opts, Progress& progress) {
  auto start = std::chrono::steady_clock::now();
  RemoteRef ref = parse_remote_ref(opts.ref);
  RegistryClient client(ref.registry, opts.registry);
  client.ping();

  RegistryClient::Manifest top = client.get_manifest(ref.repo, ref.manifest_ref());
  std::string mname = "manifest " + ref.str();
  std::string bytes = top.bytes;
  if (auto child = pick_from_index(top.bytes, mname, opts.platform)) {
    RegistryClient::Manifest m = client.get_manifest(ref.repo, *child);
    progress.message("platform " + opts.platform.os + "/" + opts.platform.arch + ": manifest " + *child);
    bytes = m.bytes;
    mname = "manifest " + ref.local.name + "@" + *child;
  }
  auto mj = json::parse(bytes, nullptr, false);
  std::string config_digest;
  int64_t config_size = -1;
  if (mj.is_object() && mj.contains("config") && mj["config"].is_object()) {
    config_digest = mj["config"].value("digest", "");
    if (mj["config"].contains("size") && mj["config"]["size"].is_number_integer())
      config_size = mj["config"]["size"].get<int64_t>();
  }
  BlobByDigest blobs = [&](const std::string& d) {
    if (d == config_digest) return memory_blob(fetch_config(client, ref.repo, d, config_size), "config " + d);
    return BlobRef{nullptr, 0, 0, d.substr(0, 19)};  // a layer: streamed later
  };
  ImageToLoad img = image_from_manifest(bytes, mname, blobs, opts.platform);
  for (auto& layer : img.layers) {
    std::string digest = layer.digest;
    layer.fetch = [&client, repo = ref.repo, digest, size = layer.size](const BlobWriter& write) {
      client.fetch_blob(repo, digest, size, write);
    };
  }
  if (ref.digest.empty()) img.tags.push_back(ref.local);
  img.tags.push_back(Reference{ref.local.name, "", top.digest});
  img.manifest_digest = top.digest;
  img.source_repo = ref.local.name;

  PullSummary sum;
  sum.local_ref = ref.str();
  sum.manifest_digest = top.digest;
  sum.image_id = img.image_id;
  store_image(layout, img, progress, sum.load, opts.jobs, opts.max_expansion, opts.lazy);
  sum.load.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return sum;
}

}  // namespace strata
