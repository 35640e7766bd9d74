#pragma once
// CPU time of each stage of a lazy layer's index pass, summed over its threads, printed to
// stderr at the end of each layer's pass when $STRATA_INDEX_TIMES is set: what the README's
// breakdown of a cold `mount --lazy` was measured with. Thread CPU clocks, so time a thread
// waits (for the disk, for the other side of the pipeline, for a core) counts nowhere.
#include <time.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace strata {

enum class IndexStage { Read, BlobHash, Inflate, Handoff, TarHash, TarParse, Count };

class IndexPassTimes {
 public:
  IndexPassTimes() : on_(std::getenv("STRATA_INDEX_TIMES") != nullptr) {}
  bool on() const { return on_; }
  static uint64_t now() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return uint64_t(t.tv_sec) * 1000000000u + uint64_t(t.tv_nsec);
  }
  void add(IndexStage s, uint64_t ns) { ns_[int(s)] += ns; }
  void print(const std::string& what, uint64_t wall_ns, size_t checkpoints) const {
    if (!on_) return;
    static const char* names[] = {"read", "blob sha256", "inflate", "handoff", "tar sha256", "tar parse+toc"};
    std::string line = "strata: index " + what + ": wall " + std::to_string(wall_ns / 1000000) + " ms, cpu";
    for (int i = 0; i < int(IndexStage::Count); i++) {
      uint64_t ns = ns_[i].load();
      if (IndexStage(i) == IndexStage::Inflate) ns -= ns_[int(IndexStage::Handoff)].load();  // timed inside it
      line += std::string(" ") + names[i] + " " + std::to_string(ns / 1000000) + " ms";
    }
    line += ", " + std::to_string(checkpoints) + " checkpoints\n";
    std::fputs(line.c_str(), stderr);
  }

 private:
  bool on_;
  std::atomic<uint64_t> ns_[int(IndexStage::Count)] = {};
};

// Adds the thread's CPU time from construction to destruction to a stage (nothing when off).
class StageTimer {
 public:
  StageTimer(IndexPassTimes& t, IndexStage s) : t_(t), s_(s), start_(t.on() ? IndexPassTimes::now() : 0) {}
  ~StageTimer() {
    if (t_.on()) t_.add(s_, IndexPassTimes::now() - start_);
  }
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;

 private:
  IndexPassTimes& t_;
  IndexStage s_;
  uint64_t start_;
};

}  // namespace strata
