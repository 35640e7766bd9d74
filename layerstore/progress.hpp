#pragma once
// Progress on stderr: on a terminal one bar per running layer (bytes, rate, done/total),
// redrawn in place as `docker pull` does, several at once when layers download in
// parallel; plain lines otherwise; nothing with --quiet. Safe to call from any thread.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace strata {

class Progress {
 public:
  enum class Mode { Quiet, Lines, Bars };
  explicit Progress(Mode mode) : mode_(mode) {}
  static Mode detect(bool quiet);

  // `verb` is what the plain-lines mode prints ("unpacking", "downloading").
  int begin_layer(const std::string& label, uint64_t total, const std::string& verb = "unpacking");
  void update(int id, uint64_t done);  // throttled
  void end_layer(int id, const std::string& outcome);
  void message(const std::string& line);

 private:
  struct Bar {
    std::string label;
    uint64_t total = 0, done = 0;
    std::chrono::steady_clock::time_point start;
  };
  void erase_bars();
  void draw_bars();
  std::string bar_line(const Bar& b) const;

  Mode mode_;
  std::mutex mu_;
  std::map<int, Bar> bars_;  // running, in start order
  int next_id_ = 0;
  int drawn_ = 0;            // bar lines currently on screen
  std::chrono::steady_clock::time_point last_draw_;
};

std::string human_bytes(double bytes);

}  // namespace strata
