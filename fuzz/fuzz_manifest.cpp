// Fuzz target 2: the manifest, index and image config parsers a load runs on untrusted
// bytes (layerstore/sources/manifest.cpp, config_diff_ids). Input: manifest bytes, a NUL,
// then the bytes every blob the manifest names reads as (its config). Any strata::Error is a
// clean refusal; any other exception, crash or sanitizer report is a finding.
#include <sys/mman.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "layerstore/error.hpp"
#include "layerstore/sources/image_source.hpp"
#include "layerstore/store/image_db.hpp"

using namespace strata;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string all(reinterpret_cast<const char*>(data), size);
  size_t nul = all.find('\0');
  std::string manifest = all.substr(0, nul);
  std::string blob = nul == std::string::npos ? std::string() : all.substr(nul + 1);
  auto file = std::make_shared<UniqueFd>(memfd_create("blob", MFD_CLOEXEC));
  if (!*file || write(file->get(), blob.data(), blob.size()) != static_cast<ssize_t>(blob.size())) return 0;
  BlobByDigest blobs = [&](const std::string& digest) { return BlobRef{file, 0, blob.size(), digest}; };
  Platform platform;
  try {
    pick_from_index(manifest, "manifest", platform);
  } catch (const Error&) {
  }
  try {
    image_from_manifest(manifest, "manifest", blobs, platform);
  } catch (const Error&) {
  }
  try {
    config_diff_ids(blob);
  } catch (const Error&) {
  }
  try {
    parse_platform(manifest);
  } catch (const Error&) {
  }
  return 0;
}
