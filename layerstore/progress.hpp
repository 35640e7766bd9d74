#pragma once
// Load progress on stderr: a bar per layer (bytes, rate) on a terminal, plain lines
// otherwise, nothing with --quiet.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace strata {

class Progress {
 public:
  enum class Mode { Quiet, Lines, Bars };
  explicit Progress(Mode mode) : mode_(mode) {}
  static Mode detect(bool quiet);

  void begin_layer(const std::string& label, uint64_t total);
  void update(uint64_t done);  // any thread; throttled
  void end_layer(const std::string& outcome);
  void message(const std::string& line);

 private:
  void draw(uint64_t done, bool final);
  Mode mode_;
  std::mutex mu_;
  std::string label_;
  uint64_t total_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string human_bytes(double bytes);

}  // namespace strata
