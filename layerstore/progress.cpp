#include "layerstore/progress.hpp"

#include <sys/ioctl.h>
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

namespace {

std::string eta(double secs) {
  auto s = static_cast<long long>(secs + 0.5);
  char buf[32];
  if (s >= 3600) snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  else if (s >= 60) snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else snprintf(buf, sizeof buf, "%llds", s);
  return buf;
}

// Columns of the terminal on stderr: a bar line must not wrap, or redrawing in place (which
// counts lines) would leave copies behind.
size_t terminal_columns() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace

// "LABEL [=====>    ] 12.0 MB / 40.0 MB  3.1 MB/s  ETA 9s", or without a known total
// "LABEL 12.0 MB  3.1 MB/s".
std::string Progress::bar_line(const Bar& b) const {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - b.start).count();
  double rate = secs > 0 ? b.done / secs : 0;
  std::string line = b.label + " ";
  if (b.total) {
    constexpr int width = 30;
    int fill = static_cast<int>(width * static_cast<double>(b.done) / b.total);
    if (fill > width) fill = width;
    std::string bar(fill, '=');
    if (fill < width) bar += '>' + std::string(width - fill - 1, ' ');
    line += "[" + bar + "] " + human_bytes(b.done) + " / " + human_bytes(b.total);
  } else {
    line += human_bytes(b.done);
  }
  line += "  " + human_bytes(rate) + "/s";
  if (b.total && b.done && b.done < b.total && rate > 0) line += "  ETA " + eta((b.total - b.done) / rate);
  size_t cols = terminal_columns();
  if (line.size() >= cols) line.resize(cols - 1);
  return line;
}

// Moves the cursor to the first bar line and clears from there down.
void Progress::erase_bars() {
  if (drawn_) fprintf(stderr, "\033[%dA", drawn_);
  fprintf(stderr, "\r\033[J");
  drawn_ = 0;
}

void Progress::draw_bars() {
  erase_bars();
  for (const auto& [id, b] : bars_) fprintf(stderr, "%s\n", bar_line(b).c_str());
  drawn_ = static_cast<int>(bars_.size());
  fflush(stderr);
  last_draw_ = std::chrono::steady_clock::now();
}

int Progress::begin_layer(const std::string& label, uint64_t total, const std::string& verb) {
  std::lock_guard lk(mu_);
  int id = next_id_++;
  bars_[id] = Bar{label, total, 0, std::chrono::steady_clock::now()};
  if (mode_ == Mode::Lines && total)
    fprintf(stderr, "%s: %s (%s)\n", label.c_str(), verb.c_str(), human_bytes(total).c_str());
  else if (mode_ == Mode::Lines)
    fprintf(stderr, "%s: %s\n", label.c_str(), verb.c_str());
  if (mode_ == Mode::Bars) draw_bars();
  return id;
}

void Progress::update(int id, uint64_t done) {
  if (mode_ != Mode::Bars) return;
  std::lock_guard lk(mu_);
  auto it = bars_.find(id);
  if (it == bars_.end()) return;
  it->second.done = done;
  if (std::chrono::steady_clock::now() - last_draw_ < std::chrono::milliseconds(100)) return;
  draw_bars();
}

void Progress::end_layer(int id, const std::string& outcome) {
  std::lock_guard lk(mu_);
  auto it = bars_.find(id);
  std::string label = it == bars_.end() ? "" : it->second.label;
  if (it != bars_.end()) bars_.erase(it);
  if (mode_ == Mode::Bars) {
    erase_bars();
    fprintf(stderr, "%s %s\n", label.c_str(), outcome.c_str());
    draw_bars();
  } else if (mode_ == Mode::Lines) {
    fprintf(stderr, "%s: %s\n", label.c_str(), outcome.c_str());
  }
}

void Progress::message(const std::string& line) {
  std::lock_guard lk(mu_);
  if (mode_ == Mode::Quiet) return;
  if (mode_ == Mode::Bars) erase_bars();
  fprintf(stderr, "%s\n", line.c_str());
  if (mode_ == Mode::Bars) draw_bars();
}

}  // namespace strata
