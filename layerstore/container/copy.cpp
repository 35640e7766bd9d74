#include "layerstore/container/copy.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <optional>

#include "layerstore/archive/fs_util.hpp"
#include "layerstore/container/child_exit.hpp"
#include "layerstore/container/container_join.hpp"
#include "layerstore/container/fuse_mount.hpp"
#include "layerstore/container/run_user.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {

struct ReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using ReadArchive = std::unique_ptr<archive, ReadFree>;
using WriteArchive = std::unique_ptr<archive, WriteFree>;
using Entry = std::unique_ptr<archive_entry, EntryFree>;

std::string why(archive* a) {
  const char* s = archive_error_string(a);
  return s ? s : "unknown error";
}

std::string strip_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// "dir/." (or ".") names a directory's contents, as docker cp reads it.
bool names_contents(const std::string& p) { return p == "." || (p.size() >= 2 && p.compare(p.size() - 2, 2, "/.") == 0); }

// The name a copy of `p` gets: its last component; "." for "/" and "dir/." (the contents).
std::string top_name(const std::string& p) {
  if (names_contents(p)) return ".";
  std::string s = strip_trailing_slashes(p);
  if (s == "/") return ".";
  auto at = s.rfind('/');
  return at == std::string::npos ? s : s.substr(at + 1);
}

std::string parent_dir(const std::string& p) {
  std::string s = strip_trailing_slashes(p);
  auto at = s.rfind('/');
  if (at == std::string::npos) return ".";
  return at == 0 ? "/" : s.substr(0, at);
}

// `name` with its first component `from` replaced by `to` (names under other tops unchanged).
std::string rename_top(const std::string& name, const std::string& from, const std::string& to) {
  std::string n = name;
  while (n.size() > 1 && n.back() == '/') n.pop_back();
  if (n == from) return to;
  if (n.compare(0, from.size() + 1, from + "/") == 0) return to + n.substr(from.size());
  return name;
}

// A tar of `path` (a file, a link or a whole tree) on `w`, its entry names starting at `top`.
// Owners stay numeric: looking names up inside a container's root would load its NSS modules.
void write_tree(archive* w, const std::string& path, const std::string& top, bool follow) {
  ReadArchive disk(archive_read_disk_new());
  if (!disk) throw Error("out of memory");
  if (follow)
    archive_read_disk_set_symlink_hybrid(disk.get());  // follows SRC itself, no link below it
  else
    archive_read_disk_set_symlink_physical(disk.get());
  std::string base = names_contents(path) ? strip_trailing_slashes(path.substr(0, path.size() - 1)) : strip_trailing_slashes(path);
  if (base.empty()) base = ".";
  if (archive_read_disk_open(disk.get(), base.c_str()) != ARCHIVE_OK) throw Error(why(disk.get()));
  // Hardlinked files stay hardlinks: the second name becomes a link entry with no data.
  std::unique_ptr<archive_entry_linkresolver, void (*)(archive_entry_linkresolver*)> links(
      archive_entry_linkresolver_new(), archive_entry_linkresolver_free);
  if (!links) throw Error("out of memory");
  archive_entry_linkresolver_set_strategy(links.get(), archive_format(w));
  std::vector<char> buf(1 << 16);
  for (;;) {
    Entry e(archive_entry_new());
    int r = archive_read_next_header2(disk.get(), e.get());
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw Error(why(disk.get()));
    if (archive_entry_filetype(e.get()) == AE_IFDIR) archive_read_disk_descend(disk.get());
    std::string name = archive_entry_pathname(e.get());
    std::string rest = name.substr(std::min(name.size(), base.size()));
    if (!rest.empty() && rest[0] != '/') rest = "/" + rest;
    archive_entry_set_pathname(e.get(), (top + rest).c_str());
    archive_entry_set_uname(e.get(), nullptr);
    archive_entry_set_gname(e.get(), nullptr);
    archive_entry* entry = e.get();
    archive_entry* deferred = nullptr;  // only cpio formats defer; a tar writes each at once
    archive_entry_linkify(links.get(), &entry, &deferred);
    if (archive_write_header(w, entry) < ARCHIVE_WARN) throw Error(name + ": " + why(w));
    if (archive_entry_filetype(entry) != AE_IFREG || archive_entry_hardlink(entry)) continue;
    for (;;) {
      la_ssize_t n = archive_read_data(disk.get(), buf.data(), buf.size());
      if (n < 0) throw Error(name + ": " + why(disk.get()));
      if (n == 0) break;
      if (archive_write_data(w, buf.data(), n) != n) throw Error(name + ": " + why(w));
    }
  }
}

WriteArchive tar_writer(int fd) {
  WriteArchive w(archive_write_new());
  if (!w || archive_write_set_format_pax_restricted(w.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(w.get(), 1) != ARCHIVE_OK || archive_write_open_fd(w.get(), fd) != ARCHIVE_OK)
    throw Error("tar writer: " + (w ? why(w.get()) : std::string("out of memory")));
  return w;
}

ReadArchive tar_reader(int fd) {
  ReadArchive r(archive_read_new());
  if (!r) throw Error("out of memory");
  archive_read_support_format_tar(r.get());
  archive_read_support_filter_gzip(r.get());
  archive_read_support_filter_zstd(r.get());
  archive_read_support_filter_none(r.get());
  if (archive_read_open_fd(r.get(), fd, 1 << 16) != ARCHIVE_OK) throw Error("tar: " + why(r.get()));
  return r;
}

// Where an incoming tree goes, from the first entry and what DEST is (docker cp's rules).
struct Placement {
  std::string dir;       // extract here (relative names)
  std::string from, to;  // rename the top component (from == to: as is)
};

Placement place(const std::string& dest, const std::string& first, bool first_is_dir, bool stream) {
  std::string top = first.substr(0, first.find('/'));
  if (top.empty()) top = ".";
  struct stat st {};
  bool exists = stat(dest.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) throw_errno(dest);
  if (exists && S_ISDIR(st.st_mode)) return {dest, top, top};
  if (stream) throw Error(dest + ": " + (exists ? "not a directory" : "no such directory"));
  if (exists) {
    if (first_is_dir) throw Error("cannot copy a directory to a file: " + dest);
    return {parent_dir(dest), top, top_name(dest)};
  }
  if (dest.back() == '/' && !first_is_dir) throw Error("destination directory " + dest + " does not exist");
  std::string parent = parent_dir(dest);
  if (stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw Error(parent + ": no such directory");
  return {parent, top, top_name(dest)};
}

// Who owns what a copy creates: the caller (the host side, as docker cp out), the ids the tar
// says (docker cp in), or one user (docker cp -a into a container with a User).
struct Owner {
  enum Kind { Caller, FromTar, Fixed } kind = Caller;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Extracts the tar on `r` to `dest` by docker cp's rules. `secure_symlinks`: refuse to write
// through any symlink below DEST (the host's side; the container's side is chrooted instead,
// where a link resolves within the container's root as docker cp resolves it).
void extract_to(archive* r, const std::string& dest, bool stream, Owner owner, bool secure_symlinks) {
  Entry first;
  archive_entry* e = nullptr;
  int rc = archive_read_next_header(r, &e);
  if (rc == ARCHIVE_EOF) return;
  if (rc < ARCHIVE_WARN) throw Error("tar: " + why(r));
  Placement p = place(dest, archive_entry_pathname(e), archive_entry_filetype(e) == AE_IFDIR, stream);
  if (chdir(p.dir.c_str()) != 0) throw_errno(p.dir);
  WriteArchive disk(archive_write_disk_new());
  int flags = ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
              ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
  if (owner.kind != Owner::Caller) flags |= ARCHIVE_EXTRACT_OWNER;
  if (secure_symlinks) flags |= ARCHIVE_EXTRACT_SECURE_SYMLINKS;
  archive_write_disk_set_options(disk.get(), flags);
  std::vector<char> buf(1 << 16);
  for (; rc != ARCHIVE_EOF; rc = archive_read_next_header(r, &e)) {
    if (rc < ARCHIVE_WARN) throw Error("tar: " + why(r));
    std::string name = rename_top(archive_entry_pathname(e), p.from, p.to);
    if (name == "." || name == "./") continue;  // DEST itself stays as it is
    archive_entry_set_pathname(e, name.c_str());
    if (const char* link = archive_entry_hardlink(e))
      archive_entry_set_hardlink(e, rename_top(link, p.from, p.to).c_str());
    if (owner.kind == Owner::Fixed) {
      archive_entry_set_uid(e, owner.uid);
      archive_entry_set_gid(e, owner.gid);
    }
    archive_entry_set_uname(e, nullptr);  // numeric ids only (no NSS lookup in a container root)
    archive_entry_set_gname(e, nullptr);
    if (archive_write_header(disk.get(), e) < ARCHIVE_WARN) throw Error(name + ": " + why(disk.get()));
    for (;;) {
      la_ssize_t n = archive_read_data(r, buf.data(), buf.size());
      if (n < 0) throw Error(name + ": " + why(r));
      if (n == 0) break;
      if (archive_write_data(disk.get(), buf.data(), n) < 0) throw Error(name + ": " + why(disk.get()));
    }
    if (archive_write_finish_entry(disk.get()) < ARCHIVE_WARN) throw Error(name + ": " + why(disk.get()));
  }
  if (archive_write_close(disk.get()) < ARCHIVE_WARN) throw Error(why(disk.get()));
}

void copy_fd(int in, int out) {
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read");
    if (n == 0) return;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(out, buf.data() + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) throw_errno("write");
      done += w;
    }
  }
}

// Runs `op` in the forked child once it is in the container's root. Never returns.
[[noreturn]] void run_op(const std::function<void()>& op) {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // nothing in the container may ptrace it
  try {
    op();
  } catch (const std::exception& e) {
    die(e.what());
  }
  _exit(0);
}

// A stopped container: its rw view (strata-fs, as run mounts it) in a mount namespace of our
// own and, rootless, in a user namespace mapped as a rootless run maps its own (the caller as
// root, its /etc/subuid range above: strata-fs keeps owners in xattrs, and the container's
// users are the same ids there). The caller maps it: `sync` is the pair of pipe ends to ask
// and to hear back. A view already mounted by `strata container mount` is used as it is. Then
// `op` runs chrooted there in a child; the view is unmounted after.
[[noreturn]] void enter_stopped(const StoreLayout& l, const Container& c, const std::function<void()>& op,
                                int sync_wr, int sync_rd) {
  std::string target = c.merged(l);
  bool mounted = mount_state(target) == MountState::Mounted;
  bool userns = sync_wr >= 0;
  if (userns) {
    if (unshare(CLONE_NEWUSER) != 0) die_errno("unshare user namespace");
    char b = 1;
    if (write(sync_wr, &b, 1) != 1 || read(sync_rd, &b, 1) != 1 || b != 1) die("cannot map the user namespace");
    if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) die_errno("become root in the user namespace");
  }
  if (unshare(CLONE_NEWNS) != 0) die_errno("unshare mount namespace");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die_errno("make / private");
  if (!mounted) {
    try {
      mkdirs(target, 0755);
      OverlayMountSpec s;
      s.lowers = container_lowers(l, c);
      s.upper = c.rw_dir(l) + "/diff";
      s.work = c.rw_dir(l) + "/work";
      s.target = target;
      s.rootless = userns;
      mount_overlay(l, s);
    } catch (const std::exception& e) {
      die(e.what());
    }
  }
  pid_t child = fork();
  if (child < 0) die_errno("fork");
  if (child == 0) {
    if (chroot(target.c_str()) != 0 || chdir("/") != 0) die_errno("enter the container's root");
    run_op(op);
  }
  int st = 0;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  if (!mounted) umount2(target.c_str(), MNT_DETACH);  // strata-fs then exits
  _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 125);
}

struct Pipe {
  UniqueFd rd, wr;
  Pipe() {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe");
    rd = UniqueFd(p[0]);
    wr = UniqueFd(p[1]);
  }
};

// The container's side of a copy: a child in the container's root running `op` (which reads or
// writes its end of the data pipe). Its one-line error comes back on a pipe; finish() throws it.
class ContainerSide {
 public:
  // `parent_fd` is this process's end of the data pipe: the child closes its copy, so each end
  // sees the other's close.
  ContainerSide(const StoreLayout& l, const Container& c, const std::function<void()>& op, int parent_fd) {
    std::optional<ContainerNamespaces> ns;
    if (c.status() == "Up") ns = open_container_namespaces(c);
    std::optional<Pipe> ask, answer;  // a stopped container's user namespace, mapped from here
    if (!ns && geteuid() != 0) ask.emplace(), answer.emplace();
    int errp[2];
    if (pipe2(errp, O_CLOEXEC) != 0) throw_errno("pipe");
    err_ = UniqueFd(errp[0]);
    child_command_name() = "cp";
    pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) {
      close(errp[1]);
      throw_errno("fork");
    }
    if (pid_ == 0) {
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(125);
      if (dup2(errp[1], 2) != 2) _exit(125);
      close(parent_fd);
      if (ns) {
        join_container_namespaces(*ns, false);
        run_op(op);
      }
      enter_stopped(l, c, op, ask ? ask->wr.get() : -1, answer ? answer->rd.get() : -1);
    }
    close(errp[1]);
    if (ask) {
      ask->wr.reset();
      answer->rd.reset();
      char b = 0;
      if (read(ask->rd.get(), &b, 1) == 1) {
        try {
          map_user_namespace(pid_);
          b = 1;
        } catch (const Error&) {
          b = 0;  // the child says it could not be mapped; finish() reports that
        }
        (void)!write(answer->wr.get(), &b, 1);
      }
    }
  }

  // Waits for the child; throws its error line (or `host_error` when it has none).
  void finish(const std::string& host_error) {
    std::string msg;
    char buf[4096];
    for (ssize_t n; (n = read(err_.get(), buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      msg.append(buf, n);
    }
    int st = 0;
    while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    if (auto nl = msg.rfind('\n'); nl != std::string::npos) msg = msg.substr(nl + 1);  // the last line says why
    const std::string prefix = "strata: cp: ";
    if (msg.compare(0, prefix.size(), prefix) == 0) msg = msg.substr(prefix.size());
    if (!ok) throw Error(msg.empty() ? (host_error.empty() ? "the copy in the container failed" : host_error) : msg);
    if (!host_error.empty()) throw Error(host_error);
  }

 private:
  pid_t pid_ = -1;
  UniqueFd err_;
};


// SIGPIPE ignored while the other side may go away early: its own error says why.
struct IgnorePipe {
  struct sigaction old {};
  IgnorePipe() {
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old);
  }
  ~IgnorePipe() { sigaction(SIGPIPE, &old, nullptr); }
};

}  // namespace

void copy_from_container(const StoreLayout& l, const Container& c, const std::string& src, const std::string& dest,
                         const CopyOptions& o) {
  if (src.empty()) throw Error("empty path in the container");
  std::string path = src.front() == '/' ? src : "/" + src;  // relative to the container's root
  IgnorePipe ignore;
  Pipe data;
  int wr = data.wr.get();
  ContainerSide side(
      l, c,
      [&] {
        struct stat st {};
        std::string plain = names_contents(path) ? path.substr(0, path.size() - 1) : path;
        if ((o.follow_link ? stat(plain.c_str(), &st) : lstat(strip_trailing_slashes(plain).c_str(), &st)) != 0)
          throw SysError(src, errno);
        if (names_contents(path) && !S_ISDIR(st.st_mode)) throw Error(src + ": not a directory");
        WriteArchive w = tar_writer(wr);
        write_tree(w.get(), path, top_name(path), o.follow_link);
        if (archive_write_close(w.get()) != ARCHIVE_OK) throw Error(why(w.get()));
      },
      data.rd.get());
  data.wr.reset();
  std::string host_error;
  try {
    if (dest == "-") {
      copy_fd(data.rd.get(), 1);
    } else {
      ReadArchive r = tar_reader(data.rd.get());
      char cwd[4096];
      if (!getcwd(cwd, sizeof cwd)) throw_errno("getcwd");
      try {
        extract_to(r.get(), dest, false, Owner{}, true);
      } catch (...) {
        (void)!chdir(cwd);
        throw;
      }
      (void)!chdir(cwd);
    }
  } catch (const std::exception& e) {
    host_error = e.what();
  }
  data.rd.reset();
  side.finish(host_error);
}

void copy_into_container(const StoreLayout& l, const Container& c, const std::string& src, const std::string& dest,
                         const CopyOptions& o) {
  if (dest.empty()) throw Error("empty path in the container");
  std::string path = dest.front() == '/' ? dest : "/" + dest;
  bool stream = src == "-";
  if (!stream) {
    struct stat st {};
    std::string plain = names_contents(src) ? src.substr(0, src.size() - 1) : src;
    if ((o.follow_link ? stat(plain.c_str(), &st) : lstat(strip_trailing_slashes(plain).c_str(), &st)) != 0)
      throw SysError(src, errno);
    if (names_contents(src) && !S_ISDIR(st.st_mode)) throw Error(src + ": not a directory");
  }
  IgnorePipe ignore;
  Pipe data;
  int rd = data.rd.get();
  // As dockerd 20.10 (not as its documentation says): the tar's ids are kept; -a gives
  // everything to the container's User when it has one.
  std::string user = c.cfg.contains("Config") ? c.cfg["Config"].value("User", std::string()) : "";
  bool to_user = o.archive && !user.empty();
  ContainerSide side(
      l, c,
      [&] {
        Owner owner{Owner::FromTar};
        if (to_user) {
          ExecUser u = resolve_exec_user(user, "/etc/passwd", "/etc/group");  // the container's files
          owner = Owner{Owner::Fixed, u.uid, u.gid};
        }
        ReadArchive r = tar_reader(rd);
        extract_to(r.get(), path, stream, owner, false);
      },
      data.wr.get());
  data.rd.reset();
  std::string host_error;
  try {
    if (stream) {
      copy_fd(0, data.wr.get());
    } else {
      WriteArchive w = tar_writer(data.wr.get());
      write_tree(w.get(), src, top_name(src), o.follow_link);
      if (archive_write_close(w.get()) != ARCHIVE_OK) throw Error(why(w.get()));
    }
  } catch (const std::exception& e) {
    host_error = e.what();
  }
  data.wr.reset();
  side.finish(host_error);
}

}  // namespace strata
