// Test fixture for the overlay engine: builds lower/upper/work directories under a fresh
// mkdtemp dir, opens a strata::fs::Overlay on them (no mount), and removes everything after.
// Layer indices in the engine: with an upper, 0 is the upper and lower(i) is index i + 1.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "fs/core/overlay.hpp"
#include "fs/core/whiteout.hpp"

namespace strata::fs::test {

namespace stdfs = std::filesystem;

inline bool is_root() { return ::geteuid() == 0; }

class LayerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-ovl-test-XXXXXX";
    char* dir = ::mkdtemp(tmpl);
    ASSERT_NE(dir, nullptr) << "mkdtemp: " << std::strerror(errno);
    base_ = dir;
    for (const char* d : {"upper", "work", "l0", "l1", "l2"}) ASSERT_EQ(::mkdir((base_ + "/" + d).c_str(), 0755), 0);
  }
  void TearDown() override {
    ov_.reset();
    std::error_code ec;
    if (!base_.empty()) stdfs::remove_all(base_, ec);
  }


 public:
  // Directory roots.
  std::string upper() const { return base_ + "/upper"; }
  std::string work() const { return base_ + "/work"; }
  std::string lower(int i) const { return base_ + "/l" + std::to_string(i); }
  // Path of `rel` inside a layer root.
  static std::string in(const std::string& root, const std::string& rel) { return root + "/" + rel; }
  std::string up(const std::string& rel) const { return in(upper(), rel); }
  std::string lo(int i, const std::string& rel) const { return in(lower(i), rel); }

  // Opens the overlay over `nlowers` lowers (l0 top-most) and the upper unless !with_upper.
  Overlay& mount(int nlowers = 1, bool with_upper = true, EngineConfig opts = {}) {
    opts.lowerdirs.clear();
    for (int i = 0; i < nlowers; ++i) opts.lowerdirs.push_back(lower(i));
    if (with_upper) {
      opts.upperdir = upper();
      opts.workdir = work();
    }
    opts.fsync = false;
    std::string error;
    auto r = Overlay::create(opts, error);
    EXPECT_TRUE(r.ok()) << "Overlay::create: " << error << " errno " << r.error();
    if (!r.ok()) throw std::runtime_error("Overlay::create failed: " + error);
    ov_ = std::move(*r);
    return *ov_;
  }
  Overlay& ov() { return *ov_; }

  // ---- Building layers on disk. ----
  static void write_file(const std::string& path, const std::string& content, mode_t mode = 0644) {
    make_parents(path);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    ASSERT_EQ(::write(fd, content.data(), content.size()), ssize_t(content.size()));
    ::fchmod(fd, mode);
    ::close(fd);
  }
  static void make_dir(const std::string& path, mode_t mode = 0755) {
    make_parents(path);
    ASSERT_EQ(::mkdir(path.c_str(), mode), 0) << path << ": " << std::strerror(errno);
    ::chmod(path.c_str(), mode);
  }
  static void make_symlink(const std::string& target, const std::string& path) {
    make_parents(path);
    ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0) << path;
  }
  // char 0/0; needs root (caller checks).
  static void make_whiteout_device(const std::string& path) {
    make_parents(path);
    ASSERT_EQ(::mknod(path.c_str(), S_IFCHR | 0000, makedev(0, 0)), 0) << path << ": " << std::strerror(errno);
  }
  // ".wh.NAME" next to where NAME would be.
  static void make_whiteout_file(const std::string& dir, const std::string& name) {
    write_file(dir + "/.wh." + name, "", 0000);
  }
  static void set_xattr(const std::string& path, const std::string& name, const std::string& value) {
    ASSERT_EQ(::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0), 0)
        << path << " " << name << ": " << std::strerror(errno);
  }
  static void make_parents(const std::string& path) {
    std::error_code ec;
    stdfs::create_directories(stdfs::path(path).parent_path(), ec);
  }

  // ---- Inspecting the disk. ----
  static bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
  }
  static struct stat lstat_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
    return st;
  }
  static std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  static std::optional<std::string> get_xattr(const std::string& path, const std::string& name) {
    char buf[4096];
    ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof buf);
    if (n < 0) return std::nullopt;
    return std::string(buf, size_t(n));
  }
  // Either whiteout form for `name` in the upper directory `dir` (relative to the upper).
  bool upper_whiteout(const std::string& rel) const {
    struct stat st {};
    if (::lstat(up(rel).c_str(), &st) == 0 && is_whiteout_device(st)) return true;
    auto slash = rel.rfind('/');
    std::string dir = slash == std::string::npos ? "" : rel.substr(0, slash + 1);
    std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    return exists(up(dir + ".wh." + name));
  }
  // Any opaque form on the upper directory `rel`.
  bool upper_opaque(const std::string& rel) const {
    std::string p = up(rel);
    for (const char* x : {"trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque"}) {
      auto v = get_xattr(p, x);
      if (v && *v == "y") return true;
    }
    return exists(p + "/.wh..wh..opq");
  }
  // Names in an on-disk directory (no . and ..), sorted.
  static std::vector<std::string> disk_names(const std::string& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& e : stdfs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  // ---- Driving the overlay. ----
  // Looks up a slash-separated path from the root; nullptr (and the errno in *err) on failure.
  Inode* node(const std::string& path, int* err = nullptr) {
    Inode* n = ov_->root();
    if (path.empty() || path == ".") return n;
    size_t start = 0;
    for (;;) {
      size_t slash = path.find('/', start);
      std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      auto e = ov_->lookup(n, part);
      if (!e.ok()) {
        if (err) *err = e.error();
        return nullptr;
      }
      n = e->node;
      if (slash == std::string::npos) return n;
      start = slash + 1;
    }
  }
  // The errno of looking up `path` (0 when found).
  int lookup_errno(const std::string& path) {
    int err = 0;
    node(path, &err);
    return err;
  }
  struct stat attr(const std::string& path) {
    Inode* n = node(path);
    EXPECT_NE(n, nullptr) << path;
    if (!n) return {};
    auto st = ov_->getattr(n);
    EXPECT_TRUE(st.ok()) << path << ": errno " << st.error();
    if (!st.ok()) return {};
    return *st;
  }
  // Merged listing of a directory: names (with . and ..), sorted.
  std::vector<std::string> names(const std::string& dir) {
    Inode* n = node(dir);
    EXPECT_NE(n, nullptr) << dir;
    if (!n) return {};
    auto entries = ov_->list_dir(n);
    EXPECT_TRUE(entries.ok()) << dir << ": errno " << entries.error();
    std::vector<std::string> out;
    if (entries.ok())
      for (auto& e : *entries) out.push_back(e.name);
    std::sort(out.begin(), out.end());
    return out;
  }
  // Reads a file through the overlay as the FUSE read handler does: from the layer source when
  // the file is a lazy lower's (streamed), else from io_fd.
  std::string ov_read(const std::string& path) {
    Inode* n = node(path);
    EXPECT_NE(n, nullptr) << path;
    if (!n) return {};
    auto f = ov_->open(n, O_RDONLY);
    EXPECT_TRUE(f.ok()) << path << ": errno " << f.error();
    if (!f.ok()) return {};
    if (const LayerFileData* data = ov_->streamed(**f)) {
      std::string out;
      char buf[4096];
      for (ssize_t k; (k = data->read_at(buf, sizeof buf, off_t(out.size()))) > 0;) out.append(buf, size_t(k));
      return out;
    }
    return read_fd(ov_->io_fd(**f));
  }
  static std::string read_fd(int fd) {
    std::string out;
    char buf[4096];
    off_t off = 0;
    for (;;) {
      ssize_t n = ::pread(fd, buf, sizeof buf, off);
      if (n <= 0) break;
      out.append(buf, size_t(n));
      off += n;
    }
    return out;
  }

  static Caller caller(uid_t uid = 0, gid_t gid = 0) { return Caller{uid, gid, 0}; }

  std::string base_;
  std::unique_ptr<Overlay> ov_;
};

// Sorted vector helper for expectations.
inline std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace strata::fs::test
