#include "layerstore/archive/gzip_compress.hpp"

#include "layerstore/error.hpp"

namespace strata {

GzipCompressor::GzipCompressor() : level_buf_(ISAL_DEF_LVL1_DEFAULT), out_(1 << 20) {
  isal_deflate_init(&st_);
  st_.gzip_flag = IGZIP_GZIP;
  st_.level = 1;
  st_.level_buf = level_buf_.data();
  st_.level_buf_size = static_cast<uint32_t>(level_buf_.size());
  st_.flush = NO_FLUSH;
  st_.end_of_stream = 0;
}

void GzipCompressor::run(const ByteSink& sink) {
  for (;;) {
    st_.next_out = out_.data();
    st_.avail_out = static_cast<uint32_t>(out_.size());
    int ret = isal_deflate(&st_);
    if (ret != COMP_OK) throw Error("gzip compression failed (" + std::to_string(ret) + ")");
    size_t got = out_.size() - st_.avail_out;
    if (got) sink(out_.data(), got);
    if (st_.end_of_stream ? st_.internal_state.state == ZSTATE_END : (st_.avail_in == 0 && st_.avail_out != 0)) return;
  }
}

void GzipCompressor::feed(const uint8_t* p, size_t n, const ByteSink& sink) {
  while (n) {
    uint32_t k = static_cast<uint32_t>(std::min<size_t>(n, 1u << 30));
    st_.next_in = const_cast<uint8_t*>(p);
    st_.avail_in = k;
    run(sink);
    p += k;
    n -= k;
  }
}

void GzipCompressor::finish(const ByteSink& sink) {
  st_.next_in = nullptr;
  st_.avail_in = 0;
  st_.end_of_stream = 1;
  run(sink);
}

}  // namespace strata
