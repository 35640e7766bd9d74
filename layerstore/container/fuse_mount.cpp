#include "layerstore/container/fuse_mount.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "layerstore/archive/fs_util.hpp"
#include "layerstore/error.hpp"
#include "layerstore/store/lazy_layer.hpp"

namespace strata {

namespace {

bool is_executable(const std::string& p) { return access(p.c_str(), X_OK) == 0; }

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string exe(buf, n);
  return exe.substr(0, exe.rfind('/'));
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
      out += static_cast<char>(v);
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct Child {
  int status = 0;
  std::string err;
};

// Runs argv with `cwd`, stdin/stdout to /dev/null, stderr captured.
Child run_program(const std::vector<std::string>& argv, const std::string& cwd) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) throw_errno("pipe");
  pid_t pid = fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(pipefd[1], 2);
    // Nothing the caller had open reaches the program (strata-fs keeps running as a daemon).
    syscall(SYS_close_range, 3U, ~0U, 0U);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    dprintf(2, "cannot run %s: %s", a[0], strerror(errno));
    _exit(127);
  }
  close(pipefd[1]);
  Child c;
  char buf[4096];
  ssize_t n;
  // strata-fs detaches once mounted: its daemon keeps stderr open, so read only what the
  // foreground part wrote (it closes stderr on detach) and stop at EOF.
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) c.err.append(buf, n);
  close(pipefd[0]);
  while (waitpid(pid, &c.status, 0) < 0 && errno == EINTR) {
  }
  while (!c.err.empty() && (c.err.back() == '\n' || c.err.back() == ' ')) c.err.pop_back();
  return c;
}

}  // namespace

std::string find_strata_fs() {
  std::string dir = self_dir();
  for (const auto& p : {dir + "/strata-fs", dir + "/../fs/strata-fs"})
    if (!dir.empty() && is_executable(p)) return p;
  if (const char* e = std::getenv("STRATA_FS"); e && *e) {
    if (is_executable(e)) return e;
    throw Error(std::string("$STRATA_FS=") + e + " is not an executable");
  }
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string d; std::getline(ss, d, ':');)
    if (!d.empty() && is_executable(d + "/strata-fs")) return d + "/strata-fs";
  throw Error("strata-fs not found (looked next to strata, in ../fs/, $STRATA_FS and PATH)");
}

std::vector<std::string> strata_fs_argv(const std::string& exe, const OverlayMountSpec& s) {
  std::string lower;
  for (const auto& x : s.lowers) lower += (lower.empty() ? "" : ":") + x;
  std::string o = "lowerdir=" + lower;
  if (!s.upper.empty()) o += ",upperdir=" + s.upper + ",workdir=" + s.work;
  if (s.rootless) o += ",xattr_permissions=2";
  if (s.allow_other) o += ",allow_other";
  if (s.suid) o += ",suid";
  o += ",fsname=strata";
  std::vector<std::string> argv{exe};
  if (s.foreground) argv.push_back("-f");
  argv.insert(argv.end(), {"-o", o, s.target});
  return argv;
}

void mount_overlay(const StoreLayout& l, const OverlayMountSpec& s) { mount_overlay_in(l.overlay2(), s); }

void mount_overlay_in(const std::string& cwd, const OverlayMountSpec& s) {
  if (s.lowers.empty()) throw Error("no layers to mount");
  std::string exe = find_strata_fs();
  Child c = run_program(strata_fs_argv(exe, s), cwd);
  if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
    std::string why = c.err.empty() ? "exit status " + std::to_string(WEXITSTATUS(c.status)) : c.err;
    if (why.find("/dev/fuse") != std::string::npos && why.find("ermission denied") != std::string::npos)
      why += " (/dev/fuse is not accessible to this user: as root, `chmod 666 /dev/fuse`)";
    throw Error("strata-fs could not mount " + s.target + ": " + why);
  }
  if (mount_state(s.target) != MountState::Mounted)
    throw Error("strata-fs exited but " + s.target + " is not mounted");
}

namespace {

// The mounts at `path` in /proc/self/mountinfo, bottom first: (filesystem type, source).
std::vector<std::pair<std::string, std::string>> mounts_at(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string id, parent, dev, root, mnt;
    ls >> id >> parent >> dev >> root >> mnt;
    if (unescape_mountinfo(mnt) != path) continue;
    // Optional fields end at " - "; then the filesystem type and the source.
    std::string type, source;
    if (auto sep = line.find(" - "); sep != std::string::npos) {
      std::istringstream tail(line.substr(sep + 3));
      tail >> type >> source;
    }
    out.emplace_back(type, unescape_mountinfo(source));
  }
  return out;
}

}  // namespace

MountState mount_state(const std::string& path) {
  if (mounts_at(path).empty()) return MountState::NotMounted;
  struct stat st;
  if (stat(path.c_str(), &st) != 0 && errno == ENOTCONN) return MountState::Stale;
  return MountState::Mounted;
}

bool is_strata_mount(const std::string& path) {
  auto mounts = mounts_at(path);
  return !mounts.empty() && mounts.back() == std::pair<std::string, std::string>{"fuse.strata-fs", "strata"};
}

void unmount_path(const std::string& path, bool lazy) {
  if (geteuid() == 0) {
    if (umount2(path.c_str(), lazy ? MNT_DETACH : 0) == 0) return;
    if (errno == EINVAL && mount_state(path) == MountState::NotMounted) return;
    throw_errno("unmount " + path);
  }
  std::vector<std::string> argv{"fusermount3", "-u"};
  if (lazy) argv.push_back("-z");
  argv.push_back(path);
  Child c = run_program(argv, "");
  if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
    if (mount_state(path) == MountState::NotMounted) return;
    throw Error("unmount " + path + ": " + c.err);
  }
}

std::vector<std::string> layer_lowers(const StoreLayout& l, const std::string& cache_id) {
  std::string dir = l.overlay2() + "/" + cache_id;
  std::vector<std::string> out{"l/" + read_file(dir + "/link")};
  if (path_exists(dir + "/lower")) {
    std::stringstream ss(read_file(dir + "/lower"));
    for (std::string x; std::getline(ss, x, ':');)
      if (!x.empty()) out.push_back(x);
  }
  return out;
}

std::vector<std::string> mount_lowers(const StoreLayout& l, const std::vector<std::string>& lowers) {
  std::vector<std::string> out;
  for (const auto& x : lowers) {
    // "l/LINKID" -> "../<cache-id>/diff": the cache id names the layer's overlay2 dir.
    char buf[PATH_MAX];
    ssize_t n = readlink((l.overlay2() + "/" + x).c_str(), buf, sizeof buf - 1);
    std::string target = n > 0 ? std::string(buf, n) : "";
    std::string cache_id;
    if (target.rfind("../", 0) == 0 && target.size() > 8 && target.compare(target.size() - 5, 5, "/diff") == 0)
      cache_id = target.substr(3, target.size() - 8);
    // A lazy layer's descriptor, named relative to overlay2 as the l/ links are (strata-fs
    // runs there): l.overlay2() is relative when --root is.
    auto lazy = lazy_layer(l, cache_id);
    out.push_back(lazy ? cache_id + "/" + kLazyDescriptorName : x);
  }
  return out;
}

static void make_removable(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
  if ((st.st_mode & 0700) != 0700) chmod(path.c_str(), st.st_mode | 0700);
  DIR* d = opendir(path.c_str());
  if (!d) return;
  std::vector<std::string> subdirs;
  while (auto* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && e->d_type == DT_DIR) subdirs.push_back(path + "/" + n);
  }
  closedir(d);
  for (const auto& s : subdirs) make_removable(s);
}

void remove_tree_forced(const std::string& path) {
  try {
    remove_tree(path);
  } catch (const Error&) {
    if (geteuid() == 0) throw;
    make_removable(path);
    remove_tree(path);
  }
}

}  // namespace strata
