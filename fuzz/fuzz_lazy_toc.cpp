// Fuzz target 6: a lazy layer's table of contents against extraction. The same tar is indexed
// (build_blob_index, the pass of load --lazy and mount --lazy) and extracted into a scratch
// dir by the extractor `load` uses (unpack_layer). The oracle: no crash or sanitizer report,
// and when both accept the tar, the TOC is the extracted tree: the same names in every
// directory; for each the same type, permissions, owner; for files the same size, link count
// and bytes (sparse regions and holes included); for symlinks the same target; whiteouts as
// char 0/0 and opaque directories marked on both sides. Parents through symlinks, hardlinks
// through them and the order entries replace each other are what it exercises most. Needs root
// (the extractor's whiteouts and owners); without it each input is only indexed.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "common/lazy/blob_index.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/layer_index_build.hpp"
#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/error.hpp"

using namespace strata;

namespace {

std::string scratch_base() {
  static std::string base = [] {
    char t[] = "/tmp/strata-fuzz-toc-XXXXXX";
    if (!mkdtemp(t)) std::abort();
    return std::string(t);
  }();
  return base;
}

[[noreturn]] void differ(const std::string& path, const std::string& why) {
  std::fprintf(stderr, "lazy TOC differs from extraction at \"%s\": %s\n", path.c_str(), why.c_str());
  std::abort();
}

// The bytes of TOC file `ino`: a plain tar's data sits at its offsets in the input.
std::string toc_bytes(const lazy::BlobIndex& ix, const lazy::TocInode& ino, const uint8_t* tar) {
  if (!ino.sparse) return std::string(reinterpret_cast<const char*>(tar) + ino.offset, ino.size);
  std::string out(ino.size, '\0');
  for (const auto& g : ix.segments_of(ino))
    out.replace(g.file_offset, g.length, reinterpret_cast<const char*>(tar) + g.tar_offset, g.length);
  return out;
}

void compare(const lazy::BlobIndex& ix, uint32_t dir, const std::string& disk, const std::string& rel,
             const uint8_t* tar) {
  // Names on disk below `disk`, against the TOC's children of `dir`.
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(disk.c_str()), closedir);
  if (!d) differ(rel, "not a directory on disk");
  size_t on_disk = 0;
  while (dirent* e = readdir(d.get())) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    on_disk++;
    if (!ix.child(dir, n)) differ(rel + "/" + n, "on disk, not in the TOC");
  }
  if (on_disk != ix.child_count[dir]) differ(rel, "the TOC has names the disk has not");
  for (uint32_t k = ix.first_child[dir]; k < ix.first_child[dir] + ix.child_count[dir]; k++) {
    const auto& name = ix.names[k];
    const auto& ino = ix.inodes[name.inode];
    std::string p = disk + "/" + name.name, r = rel + "/" + name.name;
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) differ(r, "in the TOC, not on disk");
    if ((st.st_mode & S_IFMT) != (ino.mode & S_IFMT)) differ(r, "another type");
    if (S_ISCHR(st.st_mode) && st.st_rdev != dev_t(ino.rdev)) differ(r, "another device number");
    if (!S_ISLNK(st.st_mode) && (st.st_mode & 07777) != (ino.mode & 07777)) differ(r, "another mode");
    if (st.st_uid != ino.uid || st.st_gid != ino.gid) differ(r, "another owner");
    if (S_ISLNK(st.st_mode)) {
      char buf[8192];
      ssize_t n = readlink(p.c_str(), buf, sizeof buf);
      if (n < 0 || std::string(buf, size_t(n)) != ino.link) differ(r, "another symlink target");
    } else if (S_ISREG(st.st_mode)) {
      if (uint64_t(st.st_size) != ino.size) differ(r, "another size");
      if (st.st_nlink != ino.nlink) differ(r, "another link count");
      if (read_file(p) != toc_bytes(ix, ino, tar)) differ(r, "other bytes");
    } else if (S_ISDIR(st.st_mode)) {
      char v[4];
      bool opaque = getxattr(p.c_str(), "trusted.overlay.opaque", v, sizeof v) == 1 && v[0] == 'y';
      if (opaque != ino.opaque) differ(r, "opaque on one side only");
      compare(ix, k, p, r, tar);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (4 << 20)) return 0;
  int mfd = memfd_create("fuzz-toc", MFD_CLOEXEC);
  if (mfd < 0 || write(mfd, data, size) != ssize_t(size)) std::abort();
  BlobRef blob;
  blob.file = std::make_shared<UniqueFd>(mfd);
  blob.length = size;
  blob.name = "fuzz.tar";
  IndexBuildOptions opt;
  opt.limits.max_uncompressed = 64 << 20;
  std::optional<lazy::BlobIndex> ix;
  std::string refusal;
  try {
    ix = build_blob_index(blob, [](const std::string&) {}, {}, opt);
  } catch (const Error& e) {
    refusal = e.what();
  }
  if (geteuid() != 0) return 0;
  // Only a plain tar's offsets are offsets in the input (a gzip or zstd input is indexed too).
  if (ix && ix->compression != lazy::BlobCompression::Plain) return 0;
  std::string dir = scratch_base() + "/x";
  if (mkdir(dir.c_str(), 0755) != 0) std::abort();
  bool extracted = false;
  {
    UniqueFd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    try {
      unpack_layer(blob, dfd.get(), WhiteoutStyle{}, [](const std::string&) {}, {}, opt.limits);
      extracted = true;
    } catch (const Error&) {
    }
  }
  // What load takes a lazy layer must take too (the other way round, load also refuses
  // where libarchive, its extractor, would read the tar otherwise than Go).
  if (extracted && !ix) differ("", "the index refuses what extraction takes: " + refusal);
  if (extracted) compare(*ix, 0, dir, "", data);
  // How much of a corpus the comparison reaches: STRATA_FUZZ_VERBOSE=1 fuzz_lazy_toc -runs=0 DIR.
  static const bool verbose = std::getenv("STRATA_FUZZ_VERBOSE");
  if (verbose)
    std::fprintf(stderr, "%s\n", extracted ? "compared" : ix ? "extraction refused" : "both refused");
  remove_tree(dir);
  return 0;
}
