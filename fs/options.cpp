// strata-fs command-line parsing: fuse-overlayfs's options plus the usual FUSE/mount options.
#include "fs/options.hpp"

#include "fs/core/lazy_layer_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string_view>
#include <utility>

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.1.0"
#endif

namespace strata::fs {
namespace {

// Splits OPTS on commas that are neither backslash-escaped nor inside double quotes. Tokens
// keep their escapes; a comma inside quotes is emitted as "\," so the token stays valid in
// libfuse's -o syntax. Empty tokens are dropped.
std::vector<std::string> split_option_string(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      cur += c;
      cur += s[++i];
    } else if (c == '"') {
      quoted = !quoted;
      cur += c;
    } else if (c == ',' && quoted) {
      cur += "\\,";
    } else if (c == ',') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// Decodes "\:", "\,", "\\"; any other backslash is kept literally.
std::string unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() &&
        (s[i + 1] == ':' || s[i + 1] == ',' || s[i + 1] == '\\')) {
      out += s[++i];
    } else {
      out += s[i];
    }
  }
  return out;
}

// Splits on ':' not escaped by a backslash; pieces keep their escapes.
std::vector<std::string> split_colons(std::string_view s) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      out.back() += s[i];
      out.back() += s[++i];
    } else if (s[i] == ':') {
      out.emplace_back();
    } else {
      out.back() += s[i];
    }
  }
  return out;
}

template <typename T>
bool parse_unsigned(std::string_view s, T& out) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string bad_value(std::string_view key, std::string_view value) {
  return "invalid value '" + std::string(value) + "' for option '" + std::string(key) + "'";
}

// One of a fixed set of words for an enum option.
template <class T>
bool parse_choice(std::string_view s, std::initializer_list<std::pair<std::string_view, T>> choices, T& out) {
  for (const auto& [word, v] : choices)
    if (s == word) return out = v, true;
  return false;
}

bool parse_bool01(std::string_view s, bool& out) {
  if (s == "0") out = false;
  else if (s == "1") out = true;
  else return false;
  return true;
}

// uidmapping=/gidmapping=: C:H:N[:C:H:N...]
bool parse_idmap(std::string_view key, std::string_view value, std::vector<IdMapRange>& out,
                 std::string& error) {
  std::vector<std::string> parts = split_colons(value);
  if (value.empty() || parts.size() % 3 != 0) {
    error = bad_value(key, value) + " (expected CONTAINER:HOST:COUNT[:CONTAINER:HOST:COUNT...])";
    return false;
  }
  std::vector<IdMapRange> ranges;
  for (size_t i = 0; i < parts.size(); i += 3) {
    IdMapRange r;
    if (!parse_unsigned(parts[i], r.container) || !parse_unsigned(parts[i + 1], r.host) ||
        !parse_unsigned(parts[i + 2], r.count)) {
      error = bad_value(key, value) + " (not a number in range " + std::to_string(i / 3 + 1) + ")";
      return false;
    }
    uint64_t limit = uint64_t{1} << 32;
    if (r.count == 0 || uint64_t{r.container} + r.count > limit ||
        uint64_t{r.host} + r.count > limit) {
      error = bad_value(key, value) + " (range " + std::to_string(i / 3 + 1) +
              " is empty or overflows 32 bits)";
      return false;
    }
    ranges.push_back(r);
  }
  out = std::move(ranges);
  return true;
}

bool parse_id(std::string_view key, std::string_view value, uint32_t& out, std::string& error) {
  if (!parse_unsigned(value, out) || out == std::numeric_limits<uint32_t>::max()) {
    error = bad_value(key, value);
    return false;
  }
  return true;
}

// Options handed to libfuse/the kernel unchanged.
bool is_fuse_flag(std::string_view k) {
  static constexpr std::string_view kFlags[] = {
      "ro",        "rw",          "allow_other", "allow_root", "default_permissions",
      "suid",      "nosuid",      "dev",         "nodev",      "exec",
      "noexec",    "atime",       "noatime",     "relatime",   "norelatime",
      "strictatime", "nostrictatime", "diratime", "nodiratime", "sync",
      "async",     "dirsync",     "symfollow",   "nosymfollow"};
  for (auto f : kFlags)
    if (k == f) return true;
  return false;
}
bool is_fuse_keyval(std::string_view k) {
  return k == "fsname" || k == "subtype" || k == "context" || k == "fscontext" ||
         k == "defcontext" || k == "rootcontext";
}
// fstab/mount(8)-only options: accepted and dropped.
bool is_ignored(std::string_view k, bool has_value) {
  if (k.starts_with("x-") || k == "comment") return true;
  if (has_value) return false;
  return k == "auto" || k == "noauto" || k == "user" || k == "nouser" || k == "users" ||
         k == "defaults" || k == "_netdev" || k == "nofail";
}

// Applies one -o token (escapes intact). Paths are stored unescaped, made absolute later.
bool apply_option(const std::string& token, Options& o, bool& upper_given, bool& work_given,
                  bool& lower_given, std::string& error) {
  size_t eq = token.find('=');
  bool has_value = eq != std::string::npos;
  std::string key = unescape(std::string_view(token).substr(0, eq));
  std::string_view raw_value = has_value ? std::string_view(token).substr(eq + 1) : "";
  std::string value = unescape(raw_value);
  auto need_value = [&]() {
    if (!has_value) error = "option '" + key + "' needs a value";
    return has_value;
  };
  auto no_value = [&]() {
    if (has_value) error = "option '" + key + "' takes no value";
    return !has_value;
  };

  if (key == "lowerdir") {
    if (!need_value()) return false;
    std::vector<std::string> dirs;
    for (const auto& piece : split_colons(raw_value)) {
      if (piece.empty()) {
        error = "empty path in lowerdir='" + value + "'";
        return false;
      }
      dirs.push_back(unescape(piece));
    }
    o.lowerdirs = std::move(dirs);
    lower_given = true;
  } else if (key == "upperdir" || key == "workdir") {
    if (!need_value()) return false;
    if (value.empty()) {
      error = "empty path in option '" + key + "'";
      return false;
    }
    (key == "upperdir" ? o.upperdir : o.workdir) = value;
    (key == "upperdir" ? upper_given : work_given) = true;
  } else if (key == "uidmapping" || key == "gidmapping") {
    if (!need_value()) return false;
    return parse_idmap(key, value, key == "uidmapping" ? o.uid_mappings : o.gid_mappings, error);
  } else if (key == "squash_to_root") {
    if (!no_value()) return false;
    o.squash_to_uid = 0;
    o.squash_to_gid = 0;
  } else if (key == "squash_to_uid" || key == "squash_to_gid") {
    if (!need_value()) return false;
    uint32_t id = 0;
    if (!parse_id(key, value, id, error)) return false;
    if (key == "squash_to_uid") o.squash_to_uid = static_cast<uid_t>(id);
    else o.squash_to_gid = static_cast<gid_t>(id);
  } else if (key == "static_nlink") {
    if (!no_value()) return false;
    o.static_nlink = true;
  } else if (key == "noacl") {
    if (!no_value()) return false;
    o.noacl = true;
  } else if (key == "noxattrs") {
    if (!has_value) o.noxattrs = true;
    else if (!parse_bool01(value, o.noxattrs)) return error = bad_value(key, value), false;
  } else if (key == "xattr_permissions") {
    if (!need_value()) return false;
    if (!parse_choice<XattrPermissions>(
            value, {{"0", XattrPermissions::Off}, {"1", XattrPermissions::Privileged}, {"2", XattrPermissions::User}},
            o.xattr_permissions))
      return error = bad_value(key, value) + " (expected 0, 1 or 2)", false;
  } else if (key == "fsync") {
    if (!need_value()) return false;
    if (!parse_bool01(value, o.fsync)) return error = bad_value(key, value) + " (expected 0 or 1)", false;
  } else if (key == "volatile") {
    if (!no_value()) return false;
    o.fsync = false;
  } else if (key == "copyup_sync") {
    if (!need_value()) return false;
    if (!parse_choice<CopyupSync>(
            value, {{"full", CopyupSync::Full}, {"ordered", CopyupSync::Ordered}, {"off", CopyupSync::Off}},
            o.copyup_sync))
      return error = bad_value(key, value) + " (expected full, ordered or off)", false;
  } else if (key == "writeback") {
    if (!need_value()) return false;
    if (!parse_bool01(value, o.writeback))
      return error = bad_value(key, value) + " (expected 0 or 1)", false;
    o.writeback_given = true;
  } else if (key == "passthrough") {
    if (!need_value()) return false;
    if (!parse_choice<bool>(value, {{"auto", true}, {"on", true}, {"1", true}, {"off", false}, {"0", false}},
                            o.passthrough))
      return error = bad_value(key, value) + " (expected auto or off)", false;
  } else if (key == "uring") {
    if (!need_value()) return false;
    if (!parse_choice<bool>(value, {{"auto", true}, {"on", true}, {"1", true}, {"off", false}, {"0", false}},
                            o.uring))
      return error = bad_value(key, value) + " (expected auto or off)", false;
  } else if (key == "readdirplus") {
    if (!need_value()) return false;
    if (!parse_choice<bool>(value, {{"always", false}, {"auto", true}}, o.readdirplus_auto))
      return error = bad_value(key, value) + " (expected always or auto)", false;
  } else if (key == "threaded") {
    if (!need_value()) return false;
    if (!parse_unsigned(value, o.threads)) return error = bad_value(key, value), false;
  } else if (key == "timeout") {
    if (!need_value()) return false;
    double t = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), t);
    if (value.empty() || ec != std::errc() || p != value.data() + value.size() ||
        !std::isfinite(t) || t < 0)
      return error = bad_value(key, value) + " (expected seconds >= 0)", false;
    o.timeout = t;
  } else if (key == "redirect_dir") {
    if (!need_value()) return false;
    if (value == "on" || value == "follow") o.redirect_dir = true;
    else if (value == "off" || value == "nofollow") o.redirect_dir = false;
    else return error = bad_value(key, value) + " (expected on, off, follow or nofollow)", false;
  } else if (key == "ino32_t") {
    if (!no_value()) return false;
    o.ino32 = true;
  } else if (key == "debug") {
    if (!no_value()) return false;
    o.debug = true;
    o.foreground = true;
  } else if (key == "clone_fd") {
    if (!no_value()) return false;
    o.clone_fd = true;
  } else if (key == "plugins") {
    // fuse-overlayfs's plugin list: accepted, no effect.
  } else if (is_ignored(key, has_value)) {
    // fstab-only.
  } else if (is_fuse_flag(key)) {
    if (!no_value()) return false;
    if (key == "ro") o.read_only = true;
    if (key == "rw") o.read_only = false;
    if (key == "allow_other") o.allow_other = true;
    if (key == "default_permissions") o.default_permissions = true;
    o.fuse_options.push_back(token);
  } else if (is_fuse_keyval(key)) {
    if (!need_value()) return false;
    o.fuse_options.push_back(token);
  } else if (key == "max_read") {
    if (!need_value()) return false;
    uint32_t n = 0;
    if (!parse_unsigned(value, n)) return error = bad_value(key, value), false;
    o.fuse_options.push_back(token);
  } else {
    error = "unknown option '" + key + "'";
    return false;
  }
  return true;
}

std::string errno_text(int err) { return std::strerror(err); }

std::string real_or_self(const std::string& p) {
  char* r = ::realpath(p.c_str(), nullptr);
  if (!r) return p;
  std::string s(r);
  std::free(r);
  return s;
}

bool is_inside_or_same(const std::string& inner, const std::string& outer) {
  if (inner == outer) return true;
  std::string prefix = outer == "/" ? "/" : outer + "/";
  return inner.starts_with(prefix);
}

// "" when `path` is an existing directory (writable when asked); else the error.
std::string check_dir(std::string_view what, const std::string& path, bool writable,
                      struct stat* st_out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return std::string(what) + " " + path + ": " + errno_text(errno);
  if (!S_ISDIR(st.st_mode)) return std::string(what) + " " + path + " is not a directory";
  if (writable && ::access(path.c_str(), W_OK | X_OK) != 0)
    return std::string(what) + " " + path + " is not writable: " + errno_text(errno);
  if (st_out) *st_out = st;
  return "";
}

}  // namespace

std::string make_absolute(const std::string& path) {
  if (path.empty()) return path;
  char* r = ::realpath(path.c_str(), nullptr);
  if (r) {
    std::string s(r);
    std::free(r);
    return s;
  }
  std::filesystem::path p(path);
  if (p.is_relative()) {
    std::error_code ec;
    auto cwd = std::filesystem::current_path(ec);
    if (!ec) p = cwd / p;
  }
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::vector<std::string> mountinfo_mount_points(std::string_view mountinfo) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < mountinfo.size()) {
    size_t nl = mountinfo.find('\n', pos);
    std::string_view line =
        mountinfo.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? mountinfo.size() : nl + 1;
    // Fields: id parent major:minor root mount_point ...
    size_t start = 0;
    std::string_view field;
    bool found = false;
    for (int i = 0; i < 5; ++i) {
      while (start < line.size() && line[start] == ' ') ++start;
      if (start >= line.size()) break;
      size_t end = line.find(' ', start);
      if (end == std::string_view::npos) end = line.size();
      field = line.substr(start, end - start);
      start = end;
      if (i == 4) found = true;
    }
    if (!found) continue;
    std::string decoded;
    for (size_t i = 0; i < field.size(); ++i) {
      if (field[i] == '\\' && i + 3 < field.size() && field[i + 1] >= '0' &&
          field[i + 1] <= '3' && field[i + 2] >= '0' && field[i + 2] <= '7' &&
          field[i + 3] >= '0' && field[i + 3] <= '7') {
        decoded += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                     (field[i + 3] - '0'));
        i += 3;
      } else {
        decoded += field[i];
      }
    }
    out.push_back(std::move(decoded));
  }
  return out;
}

std::string fuse_mount_options(const Options& opts, bool as_root) {
  bool chose_suid = false, chose_atime = false, chose_other = false, has_fsname = false;
  bool last_ro = false;  // the last of ro/rw given was ro
  for (const auto& o : opts.fuse_options) {
    if (o == "suid" || o == "nosuid") chose_suid = true;
    else if (o == "atime" || o == "noatime" || o == "relatime" || o == "norelatime" ||
             o == "strictatime" || o == "nostrictatime")
      chose_atime = true;
    else if (o == "allow_other" || o == "allow_root") chose_other = true;
    else if (o == "ro" || o == "rw") last_ro = o == "ro";
    else if (o.starts_with("fsname=")) has_fsname = true;
  }
  std::string out = "default_permissions,subtype=strata-fs";
  if (as_root && !chose_other) out += ",allow_other";
  if (as_root && !chose_suid) out += ",suid";
  if (!chose_atime) out += ",noatime";
  for (const auto& o : opts.fuse_options) {
    if (o == "default_permissions") continue;
    // libfuse 3.14 knows only atime/noatime of the atime family: these three mean the kernel's
    // default (relatime), which `atime` (no MS_NOATIME) gives.
    if (o == "relatime" || o == "norelatime" || o == "nostrictatime") {
      out += ",atime";
      continue;
    }
    if (o == "diratime" || o == "symfollow") continue;  // the kernel's defaults
    out += "," + o;
  }
  if (!has_fsname) out += ",fsname=" + (opts.source.empty() ? std::string("strata-fs") : opts.source);
  if (opts.read_only && !last_ro) out += ",ro";
  return out;
}

std::string usage_text(std::string_view program) {
  std::string p(program);
  return "usage: " + p +
         " [-f] [-d] [-o OPTIONS]... [SOURCE] MOUNTPOINT\n"
         "       " + p + " -h|--help | -V|--version\n"
         "\n"
         "A FUSE overlay filesystem accepting fuse-overlayfs's options. SOURCE (e.g. \"overlay\",\n"
         "as mount.fuse3 passes) is ignored. -o may repeat and may follow MOUNTPOINT.\n"
         "\n"
         "flags:\n"
         "  -f                     stay in the foreground\n"
         "  -d, --debug            debug output (implies -f)\n"
         "  -o OPTS, -oOPTS        comma-separated options (below); '\\,' '\\:' '\\\\' escape\n"
         "  -h, --help             print this help and exit\n"
         "  -V, --version          print the version and exit\n"
         "\n"
         "overlay options:\n"
         "  lowerdir=L1[:L2...]    read-only layers, top-most first (required)\n"
         "  upperdir=DIR           writable layer; without it the mount is read-only\n"
         "  workdir=DIR            scratch dir on upperdir's filesystem (required with upperdir)\n"
         "  uidmapping=U:M:N[:U:M:N...]  files stored with uids [U,U+N) show as [M,M+N),\n"
         "                         and the other way round for new owners (fuse-overlayfs)\n"
         "  gidmapping=G:M:N[:G:M:N...]  same for gids\n"
         "  squash_to_root         report every file as owned by 0:0\n"
         "  squash_to_uid=N        report every file as owned by uid N\n"
         "  squash_to_gid=N        report every file as owned by gid N\n"
         "  static_nlink           report nlink 1 for directories\n"
         "  noacl                  disable POSIX ACLs\n"
         "  noxattrs[=0|1]         disable extended attributes\n"
         "  xattr_permissions=0|1|2  store permissions in xattrs: off, privileged, user\n"
         "  fsync=0|1              honour fsync (default 1)\n"
         "  volatile               same as fsync=0\n"
         "  copyup_sync=full|ordered|off  how copied-up data reaches the disk before it\n"
         "                         shows: fsync, written out first (default), not at all\n"
         "  threaded=N             at most N worker threads (0 or 1: one per core, at least 2)\n"
         "  timeout=SECONDS        kernel entry/attr cache timeout (default 1.0)\n"
         "  writeback=0|1          writeback caching (default: 1 rootless, 0 as root)\n"
         "  passthrough=auto|off   the kernel reads and writes open upper files directly\n"
         "                         (root, kernel 6.9+; default auto)\n"
         "  uring=auto|off         FUSE over io_uring, one queue per CPU, when the kernel\n"
         "                         offers it (6.14+, its enable_uring switch on; default auto)\n"
         "  readdirplus=always|auto  attributes in every directory listing reply (default)\n"
         "                         or only where the kernel expects stats (auto)\n"
         "  redirect_dir=on|off|follow|nofollow  accepted; renaming a lower directory always\n"
         "                         works (its merged tree is copied up, no redirect xattrs)\n"
         "  ino32_t                report 32-bit inode numbers\n"
         "  debug                  same as -d\n"
         "  clone_fd               one /dev/fuse fd per worker thread\n"
         "  plugins=LIST           accepted for fuse-overlayfs compatibility; no effect\n"
         "\n"
         "mount options passed to FUSE/the kernel:\n"
         "  ro, rw, allow_other, allow_root, default_permissions, suid, nosuid, dev, nodev,\n"
         "  exec, noexec, atime, noatime, relatime, norelatime, strictatime, nostrictatime,\n"
         "  diratime, nodiratime, sync, async, dirsync, symfollow, nosymfollow, fsname=NAME,\n"
         "  subtype=NAME, max_read=N, context=CTX, fscontext=CTX, defcontext=CTX,\n"
         "  rootcontext=CTX\n"
         "  default: default_permissions,noatime; as root (real uid 0) also allow_other,suid\n"
         "  (as fuse-overlayfs). nosuid, allow_root or an atime option given here wins.\n"
         "\n"
         "accepted and ignored (fstab/mount only):\n"
         "  auto, noauto, user, nouser, users, defaults, _netdev, nofail, comment=..., x-*\n";
}

std::string version_text() { return std::string("strata-fs version ") + STRATA_VERSION + "\n"; }

std::optional<Options> parse_options(int argc, char** argv, std::string& error) {
  Options o;
  error.clear();

  // -h/-V win over everything else, whatever else is on the line.
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") break;
    if (a == "-o") {
      ++i;
      continue;
    }
    if (a == "-h" || a == "--help") {
      o.show_help = true;
      return o;
    }
    if (a == "-V" || a == "--version") {
      o.show_version = true;
      return o;
    }
  }

  std::vector<std::string> positionals;
  std::vector<std::string> tokens;
  bool flags_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (flags_done || a.empty() || a[0] != '-' || a == "-") {
      positionals.emplace_back(a);
      continue;
    }
    if (a == "--") {
      flags_done = true;
    } else if (a == "--debug") {
      o.debug = o.foreground = true;
    } else if (a.starts_with("--")) {
      error = "unknown option '" + std::string(a) + "'";
      return std::nullopt;
    } else {
      // Short flags, possibly grouped (-fd, -fo OPTS, -foOPTS).
      for (size_t j = 1; j < a.size(); ++j) {
        char c = a[j];
        if (c == 'f') {
          o.foreground = true;
        } else if (c == 'd') {
          o.debug = o.foreground = true;
        } else if (c == 'o') {
          std::string_view opts;
          if (j + 1 < a.size()) {
            opts = a.substr(j + 1);
          } else if (i + 1 < argc) {
            opts = argv[++i];
          } else {
            error = "option '-o' needs an argument";
            return std::nullopt;
          }
          for (auto& t : split_option_string(opts)) tokens.push_back(std::move(t));
          break;
        } else {
          error = "unknown option '-" + std::string(1, c) + "'";
          return std::nullopt;
        }
      }
    }
  }

  bool upper_given = false, work_given = false, lower_given = false;
  for (const auto& t : tokens)
    if (!apply_option(t, o, upper_given, work_given, lower_given, error)) return std::nullopt;

  if (positionals.empty()) {
    error = "missing mountpoint";
    return std::nullopt;
  }
  if (positionals.size() > 2) {
    error = "unexpected argument '" + positionals[2] + "' (usage: [SOURCE] MOUNTPOINT)";
    return std::nullopt;
  }
  if (positionals.size() == 2) o.source = positionals[0];
  o.mountpoint = positionals.back();

  if (!lower_given) {
    error = "missing lowerdir= option";
    return std::nullopt;
  }
  if (upper_given && !work_given) {
    error = "upperdir requires workdir";
    return std::nullopt;
  }
  if (work_given && !upper_given) {
    error = "workdir requires upperdir";
    return std::nullopt;
  }
  if (!upper_given) o.read_only = true;

  for (auto& d : o.lowerdirs) d = make_absolute(d);
  o.upperdir = make_absolute(o.upperdir);
  o.workdir = make_absolute(o.workdir);
  o.mountpoint = make_absolute(o.mountpoint);
  return o;
}

std::string validate_options(const Options& opts) {
  if (opts.lowerdirs.empty()) return "no lowerdir given";
  for (const auto& d : opts.lowerdirs) {
    if (is_lazy_layer_file(d)) continue;  // a layer served from its blob (lazy_layer_file.hpp)
    if (auto e = check_dir("lowerdir", d, false, nullptr); !e.empty()) return e;
  }

  if (opts.upperdir.empty() != opts.workdir.empty())
    return opts.upperdir.empty() ? "workdir requires upperdir" : "upperdir requires workdir";
  if (!opts.upperdir.empty()) {
    bool writable = !opts.read_only;
    struct stat up {}, work {};
    if (auto e = check_dir("upperdir", opts.upperdir, writable, &up); !e.empty()) return e;
    if (auto e = check_dir("workdir", opts.workdir, writable, &work); !e.empty()) return e;
    if (up.st_dev != work.st_dev)
      return "workdir " + opts.workdir + " is not on the same filesystem as upperdir " +
             opts.upperdir;
    std::string ru = real_or_self(opts.upperdir), rw = real_or_self(opts.workdir);
    if (ru == rw)
      return "workdir " + opts.workdir + " and upperdir " + opts.upperdir +
             " are the same directory";
    if (is_inside_or_same(rw, ru))
      return "workdir " + opts.workdir + " is inside upperdir " + opts.upperdir;
    if (is_inside_or_same(ru, rw))
      return "upperdir " + opts.upperdir + " is inside workdir " + opts.workdir;
  }

  if (opts.mountpoint.empty()) return "no mountpoint given";
  if (auto e = check_dir("mountpoint", opts.mountpoint, false, nullptr); !e.empty()) return e;
  std::ifstream in("/proc/self/mountinfo");
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    std::string real = real_or_self(opts.mountpoint);
    for (const auto& mp : mountinfo_mount_points(ss.str()))
      if (mp == real)
        return "mountpoint " + opts.mountpoint + " is busy (already a mount point)";
  }
  return "";
}

}  // namespace strata::fs
