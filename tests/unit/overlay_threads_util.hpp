// Shared by the engine thread tests (overlay_threads_*_test.cpp): the OverlayThreads fixture,
// failure collection across threads, and the iteration scale.
//
// The engine under threads, no mount: the races of the engine-v2 issue, each driven from
// several threads straight into the engine, with Overlay::check_invariants() after the steps.
// The same tests run in strata_unit_tests_tsan (built with -fsanitize=thread, ctest label
// `tsan`), which fails on any ThreadSanitizer report.
//
// Iteration counts scale with STRATA_THREAD_TEST_SCALE (a factor, default 1; the TSan build
// defaults to STRATA_THREAD_TEST_SCALE_DEFAULT, smaller, to keep its run to a minute or two).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fs/core/tree_remove.hpp"
#include "tests/unit/layer_fixture.hpp"

#ifndef STRATA_THREAD_TEST_SCALE_DEFAULT
#define STRATA_THREAD_TEST_SCALE_DEFAULT 1.0
#endif

namespace strata::fs::test {

inline double thread_test_scale() {
  if (const char* e = std::getenv("STRATA_THREAD_TEST_SCALE")) {
    double v = std::strtod(e, nullptr);
    if (v > 0) return v;
  }
  return STRATA_THREAD_TEST_SCALE_DEFAULT;
}

// `n` scaled, at least `min`.
inline int scaled(int n, int min = 1) { return std::max(min, int(double(n) * thread_test_scale())); }

inline std::string err_text(int e) { return std::string(std::strerror(e)) + " (" + std::to_string(e) + ")"; }

// Failures seen by worker threads: a race that fails 100,000 times should print a few lines.
class Failures {
 public:
  void add(const std::string& what) {
    count_.fetch_add(1);
    std::lock_guard lock(mutex_);
    if (first_.size() < 8) first_.push_back(what);
  }
  int count() const { return count_.load(); }
  std::string summary() const {
    std::lock_guard lock(mutex_);
    std::string out = std::to_string(count_.load()) + " failure(s); first:";
    for (const auto& f : first_) out += "\n  " + f;
    return out;
  }

 private:
  std::atomic<int> count_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> first_;
};

inline int count_open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  while (struct dirent* de = ::readdir(d))
    if (de->d_name[0] != '.') n++;
  ::closedir(d);
  return n - 1;  // the listing's own fd
}

inline void atomic_max(std::atomic<uint64_t>& a, uint64_t v) {
  uint64_t cur = a.load();
  while (cur < v && !a.compare_exchange_weak(cur, v)) {
  }
}

class OverlayThreads : public LayerFixture {
 public:
  // Looks up every component of `path` from the root, keeping each lookup; empty on failure
  // (what was looked up is forgotten then), the errno in *err.
  std::vector<Entry> lookup_path(const std::string& path, int* err = nullptr) {
    std::vector<Entry> out;
    Inode* cur = ov().root();
    size_t start = 0;
    for (;;) {
      size_t slash = path.find('/', start);
      std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      auto e = ov().lookup(cur, part);
      if (!e) {
        if (err) *err = e.error();
        forget_all(out);
        return {};
      }
      out.push_back(*e);
      cur = e->node;
      if (slash == std::string::npos) return out;
      start = slash + 1;
    }
  }
  void forget_all(std::vector<Entry>& entries) {
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) ov().forget(it->node, 1);
    entries.clear();
  }
  static std::set<std::string> listed_names(const std::vector<DirEntry>& entries) {
    std::set<std::string> out;
    for (const auto& e : entries)
      if (e.name != "." && e.name != "..") out.insert(e.name);
    return out;
  }
  static std::string joined(const std::set<std::string>& s) {
    std::string out;
    for (const auto& n : s) out += (out.empty() ? "" : " ") + n;
    return "{" + out + "}";
  }
  std::string read_through(Inode* n) {
    auto f = ov().open(n, O_RDONLY);
    if (!f) return "<open: " + err_text(f.error()) + ">";
    return read_fd(ov().io_fd(**f));
  }
};

}  // namespace strata::fs::test
