#pragma once
// Progress on stderr: on a terminal one bar per running layer (bytes, rate, ETA, done/total),
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

// One bar for a scope, on an optional Progress: ended as "failed" unless done() was called
// (an exception leaves no bar drawn under the error line).
class LayerBar {
 public:
  LayerBar(Progress* p, const std::string& label, uint64_t total, const std::string& verb)
      : p_(p), id_(p ? p->begin_layer(label, total, verb) : -1) {}
  ~LayerBar() {
    if (p_) p_->end_layer(id_, "failed");
  }
  LayerBar(const LayerBar&) = delete;
  LayerBar& operator=(const LayerBar&) = delete;
  void update(uint64_t done) {
    if (p_) p_->update(id_, done);
  }
  void done(const std::string& outcome) {
    if (p_) p_->end_layer(id_, outcome);
    p_ = nullptr;
  }

 private:
  Progress* p_;
  int id_;
};

}  // namespace strata
