#pragma once
// Streaming gzip compression for layers a push rebuilds from the store: ISA-L's igzip at
// level 1 (several times zlib's deflate speed; any gzip reader inflates it).
#include <isa-l/igzip_lib.h>

#include <vector>

#include "layerstore/archive/decompress.hpp"

namespace strata {

class GzipCompressor {
 public:
  GzipCompressor();
  GzipCompressor(const GzipCompressor&) = delete;
  GzipCompressor& operator=(const GzipCompressor&) = delete;
  void feed(const uint8_t* p, size_t n, const ByteSink& sink);
  // Flushes the rest and the gzip trailer.
  void finish(const ByteSink& sink);

 private:
  void run(const ByteSink& sink);
  isal_zstream st_;
  std::vector<uint8_t> level_buf_, out_;
};

}  // namespace strata
