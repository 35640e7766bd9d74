#include "fs/core/override_stat.hpp"

#include <sys/sysmacros.h>

#include <charconv>
#include <cstdio>
#include <vector>

namespace strata::fs {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

template <typename T>
bool parse_num(std::string_view s, T& out, int base) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<OverrideStat> parse_override_stat(std::string_view value) {
  while (!value.empty() && (value.back() == '\0' || value.back() == '\n')) value.remove_suffix(1);
  auto f = split(value, ':');
  if (f.size() < 3) return std::nullopt;
  OverrideStat o;
  unsigned long mode = 0;
  if (!parse_num(f[0], o.uid, 10) || !parse_num(f[1], o.gid, 10) || !parse_num(f[2], mode, 8))
    return std::nullopt;
  o.mode = mode_t(mode & 07777);
  if (f.size() >= 4) {
    std::string_view t = f[3];
    if (t == "file") o.type = S_IFREG;
    else if (t == "dir") o.type = S_IFDIR;
    else if (t == "symlink") o.type = S_IFLNK;
    else if (t == "pipe") o.type = S_IFIFO;
    else if (t == "socket") o.type = S_IFSOCK;
    else if (t.substr(0, 5) == "char-" || t.substr(0, 6) == "block-") {
      bool is_char = t[0] == 'c';
      auto dev = split(t.substr(is_char ? 5 : 6), '-');
      unsigned maj = 0, min = 0;
      if (dev.size() != 2 || !parse_num(dev[0], maj, 10) || !parse_num(dev[1], min, 10))
        return std::nullopt;
      o.type = is_char ? S_IFCHR : S_IFBLK;
      o.rdev = makedev(maj, min);
    }
  }
  return o;
}

std::string format_override_stat(const OverrideStat& o) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%u:%u:0%o", unsigned(o.uid), unsigned(o.gid), unsigned(o.mode & 07777));
  std::string out = buf;
  if (o.type) {
    switch (*o.type) {
      case S_IFREG: out += ":file"; break;
      case S_IFDIR: out += ":dir"; break;
      case S_IFLNK: out += ":symlink"; break;
      case S_IFIFO: out += ":pipe"; break;
      case S_IFSOCK: out += ":socket"; break;
      case S_IFCHR: out += ":char-" + std::to_string(major(o.rdev)) + "-" + std::to_string(minor(o.rdev)); break;
      case S_IFBLK: out += ":block-" + std::to_string(major(o.rdev)) + "-" + std::to_string(minor(o.rdev)); break;
    }
  }
  return out;
}

}  // namespace strata::fs
