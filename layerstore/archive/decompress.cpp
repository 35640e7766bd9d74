#include "layerstore/archive/decompress.hpp"

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <vector>

#include "layerstore/error.hpp"

namespace strata {
namespace {

constexpr size_t kOutChunk = 256 * 1024;

class PlainCopy : public Decompressor {
 public:
  void feed(const uint8_t* in, size_t len, const ByteSink& sink) override {
    if (len) sink(in, len);
  }
  void finish() override {}
};

// gzip via ISA-L's igzip (several times zlib's inflate speed). Concatenated members are
// one stream, as in Go's gzip reader that Docker uses; ISA-L checks each member's CRC32.
class IgzipInflate : public Decompressor {
 public:
  IgzipInflate() : out_(kOutChunk) { isal_inflate_init(&st_); st_.crc_flag = ISAL_GZIP; }

  void feed(const uint8_t* in, size_t len, const ByteSink& sink) override {
    st_.next_in = const_cast<uint8_t*>(in);
    st_.avail_in = static_cast<uint32_t>(len);
    for (;;) {
      if (member_done_) {
        if (st_.avail_in == 0) return;
        // Another gzip member follows: a fresh state, same remaining input.
        uint8_t* next = st_.next_in;
        uint32_t avail = st_.avail_in;
        isal_inflate_init(&st_);
        st_.crc_flag = ISAL_GZIP;
        st_.next_in = next;
        st_.avail_in = avail;
        member_done_ = false;
      }
      st_.next_out = out_.data();
      st_.avail_out = static_cast<uint32_t>(out_.size());
      int ret = isal_inflate(&st_);
      if (ret != ISAL_DECOMP_OK) throw Error(std::string("corrupt gzip data (") + describe(ret) + ")");
      in_member_ = true;
      size_t got = out_.size() - st_.avail_out;
      if (got) sink(out_.data(), got);
      if (st_.block_state == ISAL_BLOCK_FINISH) {
        member_done_ = true;
        in_member_ = false;
        finished_once_ = true;
        continue;
      }
      if (st_.avail_out != 0 && st_.avail_in == 0) return;  // needs more input
    }
  }

  void finish() override {
    if (in_member_ || !finished_once_) throw Error("truncated gzip data (unexpected end of stream)");
  }

 private:
  static const char* describe(int ret) {
    switch (ret) {
      case ISAL_INVALID_BLOCK: return "invalid deflate block";
      case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
      case ISAL_INVALID_LOOKBACK: return "invalid lookback distance";
      case ISAL_INVALID_WRAPPER: return "invalid gzip header";
      case ISAL_UNSUPPORTED_METHOD: return "unsupported compression method";
      case ISAL_INCORRECT_CHECKSUM: return "CRC32 mismatch";
      default: return "inflate error";
    }
  }

  inflate_state st_{};
  std::vector<uint8_t> out_;
  bool member_done_ = false;
  bool in_member_ = false;
  bool finished_once_ = false;
};

class ZstdDecompress : public Decompressor {
 public:
  ZstdDecompress() : ds_(ZSTD_createDStream()), out_(ZSTD_DStreamOutSize()) {
    if (!ds_) throw Error("zstd: out of memory");
    ZSTD_initDStream(ds_);
  }
  ~ZstdDecompress() override { ZSTD_freeDStream(ds_); }

  void feed(const uint8_t* in, size_t len, const ByteSink& sink) override {
    ZSTD_inBuffer ib{in, len, 0};
    while (ib.pos < ib.size || last_ != 0) {
      ZSTD_outBuffer ob{out_.data(), out_.size(), 0};
      size_t ret = ZSTD_decompressStream(ds_, &ob, &ib);
      if (ZSTD_isError(ret)) throw Error(std::string("corrupt zstd data (") + ZSTD_getErrorName(ret) + ")");
      last_ = ret;
      any_ = true;
      if (ob.pos) sink(out_.data(), ob.pos);
      // Output buffer not full and no input left: the decoder needs more input.
      if (ob.pos < ob.size && ib.pos == ib.size) break;
    }
  }

  void finish() override {
    if (!any_ || last_ != 0) throw Error("truncated zstd data (unexpected end of stream)");
  }

 private:
  ZSTD_DStream* ds_;
  std::vector<uint8_t> out_;
  size_t last_ = 0;
  bool any_ = false;
};

}  // namespace

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::Gzip: return "gzip";
    case Compression::Zstd: return "zstd";
    default: return "plain";
  }
}

Compression detect_compression(const uint8_t* p, size_t n) {
  if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) return Compression::Gzip;
  if (n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) return Compression::Zstd;
  // A zstd stream may start with a skippable frame (magic 0x184D2A50..5F, e.g. metadata a
  // tool put first); libzstd and Docker's decoder step over it, and so do we.
  if (n >= 4 && (p[0] & 0xf0) == 0x50 && p[1] == 0x2a && p[2] == 0x4d && p[3] == 0x18) return Compression::Zstd;
  return Compression::Plain;
}

std::unique_ptr<Decompressor> make_decompressor(Compression c) {
  switch (c) {
    case Compression::Gzip: return std::make_unique<IgzipInflate>();
    case Compression::Zstd: return std::make_unique<ZstdDecompress>();
    default: return std::make_unique<PlainCopy>();
  }
}

}  // namespace strata
