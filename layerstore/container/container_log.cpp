#include "layerstore/container/container_log.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "layerstore/error.hpp"
#include "layerstore/timestamp.hpp"

namespace strata {

namespace {

constexpr std::size_t kMaxEntry = 16 * 1024;  // Docker's split of a long line

void write_all(int fd, const std::string& s) {
  const char* p = s.data();
  std::size_t n = s.size();
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;  // a full disk loses output, never the container
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

struct Stream {
  int fd;
  const char* name;
  std::string pending;  // bytes after the last newline

  void entry(int log_fd, const std::string& text) {
    nlohmann::json j = {{"log", text}, {"stream", name}, {"time", rfc3339_now()}};
    // Invalid UTF-8 is replaced (U+FFFD), as Go's encoder does for Docker.
    write_all(log_fd, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  }
  // Writes every complete line (and pieces of kMaxEntry bytes); at eof the rest too.
  void flush(int log_fd, bool eof) {
    std::size_t start = 0;
    for (;;) {
      std::size_t nl = pending.find('\n', start);
      if (nl == std::string::npos || nl - start >= kMaxEntry) {
        if (pending.size() - start >= kMaxEntry) {
          entry(log_fd, pending.substr(start, kMaxEntry));
          start += kMaxEntry;
          continue;
        }
        break;
      }
      entry(log_fd, pending.substr(start, nl + 1 - start));
      start = nl + 1;
    }
    pending.erase(0, start);
    if (eof && !pending.empty()) {
      entry(log_fd, pending);
      pending.clear();
    }
  }
};

void print_entry(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object() || !j.contains("log") || !j["log"].is_string()) return;  // a torn last line
  std::string text = j["log"].get<std::string>();
  FILE* to = j.value("stream", std::string()) == "stderr" ? stderr : stdout;
  std::fwrite(text.data(), 1, text.size(), to);
  std::fflush(to);
}

}  // namespace

std::string container_log_path(const StoreLayout& l, const Container& c) { return c.dir(l) + "/" + c.id + "-json.log"; }

void copy_to_json_log(int out, int err, int log_fd) {
  Stream s[2] = {{out, "stdout", {}}, {err, "stderr", {}}};
  char buf[65536];
  int open_streams = 2;
  while (open_streams > 0) {
    struct pollfd p[2] = {{s[0].fd, POLLIN, 0}, {s[1].fd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (s[i].fd < 0 || !p[i].revents) continue;
      ssize_t n = read(s[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        s[i].flush(log_fd, true);
        close(s[i].fd);
        s[i].fd = -1;
        --open_streams;
        continue;
      }
      s[i].pending.append(buf, static_cast<std::size_t>(n));
      s[i].flush(log_fd, false);
    }
  }
}

void print_json_log(const std::string& path, std::optional<std::size_t> tail, bool follow,
                    const std::function<bool()>& running) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "re"), &std::fclose);
  FILE* f = file.get();
  if (!f) {
    if (errno == ENOENT) return;  // never started detached: no output kept
    throw_errno("open " + path);
  }
  std::string partial;
  auto read_lines = [&](const std::function<void(const std::string&)>& each) {
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
      partial.append(buf, n);
      std::size_t start = 0, nl;
      while ((nl = partial.find('\n', start)) != std::string::npos) {
        each(partial.substr(start, nl - start));
        start = nl + 1;
      }
      partial.erase(0, start);
    }
    std::clearerr(f);
  };
  if (tail) {
    std::deque<std::string> last;
    read_lines([&](const std::string& line) {
      last.push_back(line);
      if (last.size() > *tail) last.pop_front();
    });
    for (const auto& line : last) print_entry(line);
  } else {
    read_lines(print_entry);
  }
  while (follow) {
    bool was_running = running();  // read before the file: what it wrote until now is there
    read_lines(print_entry);
    if (!was_running) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace strata
