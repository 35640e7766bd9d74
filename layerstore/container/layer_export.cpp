#include "layerstore/container/layer_export.hpp"

#include "common/overlay_xattrs.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/archive/whiteout.hpp"
#include "layerstore/container/changes.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {

// Hashes the tar, gzips it (hashing that too) and writes the tar to the output fd.
struct Sink {
  int fd;
  Sha256 tar_hash, gz_hash;
  z_stream z{};
  uint64_t tar_bytes = 0, gz_bytes = 0;
  std::function<void(uint64_t)> progress;
  std::vector<unsigned char> zbuf = std::vector<unsigned char>(1 << 16);

  Sink(int out) : fd(out) {
    if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw Error("deflateInit2 failed");
  }
  ~Sink() { deflateEnd(&z); }
  void deflate_some(const void* p, size_t n, int flush) {
    z.next_in = static_cast<Bytef*>(const_cast<void*>(p));
    z.avail_in = static_cast<uInt>(n);
    do {
      z.next_out = zbuf.data();
      z.avail_out = static_cast<uInt>(zbuf.size());
      int r = deflate(&z, flush);
      if (r == Z_STREAM_ERROR) throw Error("deflate failed");
      size_t have = zbuf.size() - z.avail_out;
      gz_hash.update(zbuf.data(), have);
      gz_bytes += have;
    } while (z.avail_out == 0 || (flush == Z_FINISH && z.avail_in != 0));
  }
  void write(const void* p, size_t n) {
    tar_hash.update(p, n);
    tar_bytes += n;
    if (progress) progress(tar_bytes);
    deflate_some(p, n, Z_NO_FLUSH);
    const char* c = static_cast<const char*>(p);
    while (n) {
      ssize_t w = ::write(fd, c, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw_errno("write layer tar");
      }
      c += w;
      n -= w;
    }
  }
};

la_ssize_t write_cb(archive*, void* client, const void* buf, size_t n) {
  auto* s = static_cast<Sink*>(client);
  try {
    s->write(buf, n);
  } catch (const Error&) {
    return -1;
  }
  return static_cast<la_ssize_t>(n);
}

struct OverrideStat {
  bool valid = false;
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0;
  mode_t type = 0;
  dev_t rdev = 0;
};

OverrideStat read_override(const std::string& path) {
  OverrideStat o;
  char buf[128];
  ssize_t n = lgetxattr(path.c_str(), "user.containers.override_stat", buf, sizeof buf - 1);
  if (n <= 0) return o;
  buf[n] = 0;
  unsigned uid, gid, mode;
  char type[64] = "";
  int k = sscanf(buf, "%u:%u:%o:%63s", &uid, &gid, &mode, type);
  if (k < 3) return o;
  o.valid = true;
  o.uid = uid;
  o.gid = gid;
  o.mode = mode & 07777;
  unsigned ma, mi;
  if (sscanf(type, "char-%u-%u", &ma, &mi) == 2) o.type = S_IFCHR, o.rdev = makedev(ma, mi);
  else if (sscanf(type, "block-%u-%u", &ma, &mi) == 2) o.type = S_IFBLK, o.rdev = makedev(ma, mi);
  else if (!strcmp(type, "pipe")) o.type = S_IFIFO;
  return o;
}

bool exported_xattr(std::string_view n) { return !(strata::is_private_xattr(n) || n.starts_with("system.")); }

class Writer {
 public:
  Writer(archive* a, int root) : a_(a), root_(root) {}

  void dir(const std::string& rel) {
    UniqueFd d(openat(root_, rel.empty() ? "." : rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!d) throw_errno("open /" + rel);
    std::vector<std::string> names;
    {
      DIR* dp = fdopendir(dup(d.get()));
      if (!dp) throw_errno("read /" + rel);
      while (auto* e = readdir(dp)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      closedir(dp);
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string p = rel.empty() ? n : rel + "/" + n;
      WhiteoutName w = classify_whiteout(n);
      if (w.kind == WhiteoutKind::Opaque || w.kind == WhiteoutKind::AufsMeta) continue;
      if (w.kind == WhiteoutKind::Whiteout) {
        whiteout_entry(p, d.get(), n);
        continue;
      }
      if (is_whiteout_device(d.get(), n)) {
        whiteout_entry(rel.empty() ? std::string(kWhiteoutPrefix) + n : rel + "/" + std::string(kWhiteoutPrefix) + n,
                       d.get(), n);
        continue;
      }
      struct stat st;
      if (fstatat(d.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("stat /" + p);
      entry(p, d.get(), n, st);
      if (S_ISDIR(st.st_mode)) {
        if (is_opaque_dir_at(d.get(), n)) opaque_entry(p, st, d.get(), n);
        dir(p);
      }
    }
  }

 private:
  std::string abs(int dirfd, const std::string& n) { return "/proc/self/fd/" + std::to_string(dirfd) + "/" + n; }

  void owner(archive_entry* e, const struct stat& st, const OverrideStat& o) {
    uid_t uid = st.st_uid;
    gid_t gid = st.st_gid;
    // Rootless: our own files are root's inside the container.
    if (geteuid() != 0 && uid == geteuid()) uid = 0;
    if (geteuid() != 0 && gid == getegid()) gid = 0;
    if (o.valid) uid = o.uid, gid = o.gid;
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, gid);
  }

  void whiteout_entry(const std::string& name, int dirfd, const std::string& n) {
    struct stat st;
    fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW);
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0600);
    archive_entry_set_size(e.get(), 0);
    archive_entry_set_mtime(e.get(), st.st_mtime, 0);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    header(e.get(), name);
  }

  void opaque_entry(const std::string& dir, const struct stat& st, int dirfd, const std::string& n) {
    OverrideStat o = read_override(abs(dirfd, n));
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    std::string name = dir + "/" + std::string(kOpaqueMarker);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), o.valid ? o.mode : st.st_mode & 07777);
    archive_entry_set_size(e.get(), 0);
    archive_entry_set_mtime(e.get(), st.st_mtime, 0);
    owner(e.get(), st, o);
    header(e.get(), name);
  }

  void header(archive_entry* e, const std::string& name) {
    if (archive_write_header(a_, e) != ARCHIVE_OK) throw Error("write tar header " + name + ": " + archive_error_string(a_));
  }

  void entry(const std::string& p, int dirfd, const std::string& n, const struct stat& st) {
    std::string path = abs(dirfd, n);
    OverrideStat o = read_override(path);
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), p.c_str());
    mode_t type = st.st_mode & S_IFMT;
    if (o.valid && o.type && S_ISREG(st.st_mode) && st.st_size == 0) type = o.type;  // a device kept as a file
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), o.valid ? o.mode : st.st_mode & 07777);
    archive_entry_set_mtime(e.get(), st.st_mtime, 0);
    owner(e.get(), st, o);
    if (type == S_IFCHR || type == S_IFBLK) archive_entry_set_rdev(e.get(), o.valid && o.type ? o.rdev : st.st_rdev);
    bool data = false;
    if (type == S_IFLNK) {
      std::string target(st.st_size + 1, '\0');
      ssize_t k = readlinkat(dirfd, n.c_str(), target.data(), target.size());
      if (k < 0) throw_errno("readlink /" + p);
      target.resize(k);
      archive_entry_set_symlink(e.get(), target.c_str());
    } else if (type == S_IFREG) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto it = st.st_nlink > 1 ? links_.find(key) : links_.end();
      if (it != links_.end()) {
        archive_entry_set_hardlink(e.get(), it->second.c_str());
        archive_entry_set_size(e.get(), 0);
      } else {
        if (st.st_nlink > 1) links_[key] = p;
        archive_entry_set_size(e.get(), st.st_size);
        data = st.st_size > 0;
      }
    }
    if (type != S_IFLNK) add_xattrs(e.get(), path);
    header(e.get(), p);
    if (data) copy_data(dirfd, n, p, st.st_size);
  }

  void add_xattrs(archive_entry* e, const std::string& path) {
    char names[4096];
    ssize_t len = llistxattr(path.c_str(), names, sizeof names);
    for (ssize_t off = 0; len > 0 && off < len;) {
      const char* name = names + off;
      off += strlen(name) + 1;
      if (!exported_xattr(name)) continue;
      std::vector<char> v(65536);
      ssize_t k = lgetxattr(path.c_str(), name, v.data(), v.size());
      if (k >= 0) archive_entry_xattr_add_entry(e, name, v.data(), k);
    }
  }

  void copy_data(int dirfd, const std::string& n, const std::string& p, off_t size) {
    UniqueFd f(openat(dirfd, n.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!f) throw_errno("open /" + p);
    std::vector<char> buf(1 << 20);
    off_t left = size;
    while (left > 0) {
      ssize_t k = read(f.get(), buf.data(), std::min<off_t>(left, buf.size()));
      if (k < 0) throw_errno("read /" + p);
      if (k == 0) throw Error("/" + p + " shrank while it was being committed");
      if (archive_write_data(a_, buf.data(), k) != k) throw Error("write /" + p + ": " + archive_error_string(a_));
      left -= k;
    }
  }

  archive* a_;
  int root_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

}  // namespace

uint64_t estimate_tar_bytes(const std::string& diff_dir) {
  static thread_local uint64_t total;
  total = 0;
  nftw(
      diff_dir.c_str(),
      [](const char*, const struct stat* st, int type, struct FTW*) {
        total += 512 + (type == FTW_F && S_ISREG(st->st_mode) ? (st->st_size + 511) / 512 * 512 : 0);
        return 0;
      },
      64, FTW_PHYS);
  return total + 1024;
}

ExportResult export_layer_tar(const std::string& diff_dir, int out_fd, const std::function<void(uint64_t)>& progress) {
  UniqueFd root(open(diff_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("open " + diff_dir);
  Sink sink(out_fd);
  sink.progress = progress;
  archive* a = archive_write_new();
  std::unique_ptr<archive, decltype(&archive_write_free)> guard(a, archive_write_free);
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_per_block(a, 512);
  archive_write_set_bytes_in_last_block(a, 1);
  if (archive_write_open(a, &sink, nullptr, write_cb, nullptr) != ARCHIVE_OK)
    throw Error(std::string("tar writer: ") + archive_error_string(a));
  Writer w(a, root.get());
  w.dir("");
  if (archive_write_close(a) != ARCHIVE_OK) throw Error(std::string("tar writer: ") + archive_error_string(a));
  sink.deflate_some(nullptr, 0, Z_FINISH);
  ExportResult r;
  r.diff_id = sink.tar_hash.finish();
  r.gzip_digest = sink.gz_hash.finish();
  r.tar_bytes = sink.tar_bytes;
  r.gzip_bytes = sink.gz_bytes;
  return r;
}

}  // namespace strata
