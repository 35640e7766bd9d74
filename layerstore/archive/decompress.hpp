#pragma once
// Streaming decompression of layer blobs. The format is found from the first bytes
// (magic), never from a media type or a file name: registries and archives lie about both.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace strata {

enum class Compression { Plain, Gzip, Zstd };

const char* compression_name(Compression c);
// Needs at least 4 bytes to tell zstd from plain; fewer bytes are plain (and then not a tar).
Compression detect_compression(const uint8_t* p, size_t n);

using ByteSink = std::function<void(const uint8_t*, size_t)>;

class Decompressor {
 public:
  virtual ~Decompressor() = default;
  // Decompresses `len` bytes, handing every produced piece to `sink`. Throws strata::Error
  // ("corrupt gzip data: ...") on invalid input.
  virtual void feed(const uint8_t* in, size_t len, const ByteSink& sink) = 0;
  // Input is over: throws if the last stream/frame is incomplete (a truncated blob).
  virtual void finish() = 0;
};

std::unique_ptr<Decompressor> make_decompressor(Compression c);

}  // namespace strata
