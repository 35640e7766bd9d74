#include "layerstore/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace strata {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    u++;
  }
  char buf[32];
  snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return buf;
}

Progress::Mode Progress::detect(bool quiet) {
  if (quiet) return Mode::Quiet;
  return isatty(STDERR_FILENO) ? Mode::Bars : Mode::Lines;
}

void Progress::begin_layer(const std::string& label, uint64_t total) {
  std::lock_guard lk(mu_);
  label_ = label;
  total_ = total;
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (mode_ == Mode::Lines) fprintf(stderr, "%s: unpacking (%s)\n", label_.c_str(), human_bytes(total).c_str());
  if (mode_ == Mode::Bars) draw(0, false);
}

void Progress::update(uint64_t done) {
  if (mode_ != Mode::Bars) return;
  std::lock_guard lk(mu_);
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  draw(done, false);
}

void Progress::draw(uint64_t done, bool final) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = secs > 0 ? done / secs : 0;
  constexpr int width = 30;
  int fill = total_ ? static_cast<int>(width * static_cast<double>(done) / total_) : width;
  if (fill > width) fill = width;
  std::string bar(fill, '=');
  if (fill < width) bar += '>' + std::string(width - fill - 1, ' ');
  fprintf(stderr, "\r\033[K%s [%s] %s / %s  %s/s", label_.c_str(), bar.c_str(), human_bytes(done).c_str(),
          human_bytes(total_).c_str(), human_bytes(rate).c_str());
  if (final) fputc('\n', stderr);
  fflush(stderr);
}

void Progress::end_layer(const std::string& outcome) {
  std::lock_guard lk(mu_);
  if (mode_ == Mode::Bars) {
    fprintf(stderr, "\r\033[K%s %s\n", label_.c_str(), outcome.c_str());
  } else if (mode_ == Mode::Lines) {
    fprintf(stderr, "%s: %s\n", label_.c_str(), outcome.c_str());
  }
}

void Progress::message(const std::string& line) {
  std::lock_guard lk(mu_);
  if (mode_ != Mode::Quiet) fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace strata
