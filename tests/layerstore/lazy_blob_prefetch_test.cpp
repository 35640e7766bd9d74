// The lazy index pass's blob reader (layerstore/archive/blob_prefetch.hpp): every byte of a
// blob at any offset of its file, in order, whether read with O_DIRECT (the blob not in the
// page cache: aligned reads around it, the head and tail cut off) or through the page cache;
// a file shorter than the blob it should hold fails either way.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "layerstore/archive/blob_prefetch.hpp"
#include "layerstore/error.hpp"

using namespace strata;

namespace {

// A file holding `before` bytes, the blob, and `after` bytes, in a dir that takes O_DIRECT
// (/var/tmp: on disk, where tmpfs may hold /tmp).
struct BlobInFile {
  std::string path, blob;
  BlobRef ref;
  BlobInFile(size_t before, size_t length, size_t after, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string bytes(before + length + after, '\0');
    for (auto& c : bytes) c = char(rng());
    blob = bytes.substr(before, length);
    char tmpl[] = "/var/tmp/strata-prefetch-test-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) throw std::runtime_error("mkstemp");
    path = tmpl;
    for (size_t done = 0; done < bytes.size();) done += size_t(write(fd, bytes.data() + done, bytes.size() - done));
    ref.file = std::make_shared<UniqueFd>(fd);
    ref.offset = before;
    ref.length = length;
    ref.name = "test blob";
  }
  ~BlobInFile() { unlink(path.c_str()); }
  // Out of the page cache: written out, then dropped (clean pages of an unmapped file).
  void evict() const {
    fdatasync(ref.file->get());
    posix_fadvise(ref.file->get(), 0, 0, POSIX_FADV_DONTNEED);
  }
  void cache() const {
    std::string all(ref.offset + ref.length, '\0');
    ASSERT_EQ(pread(ref.file->get(), all.data(), all.size(), 0), ssize_t(all.size()));
  }
};

std::string read_all(BlobPrefetch& r) {
  std::string got;
  for (auto chunk = r.next(); !chunk.empty(); chunk = r.next()) got.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
  return got;
}

struct Shape {
  size_t before, length, after;
};

}  // namespace

TEST(LazyBlobPrefetch, EveryByteInOrderDirectOrCached) {
  // Aligned and not, shorter than a block, exactly one read, many reads with a short last one.
  for (Shape s : {Shape{0, 1, 0}, Shape{777, 10, 5}, Shape{5000, 10, 0}, Shape{4096, 2 << 20, 4096},
                  Shape{777, (5 << 20) + 123, 3000}, Shape{0, 3 << 20, 0}, Shape{512, (2 << 20) - 512, 0}}) {
    SCOPED_TRACE("blob of " + std::to_string(s.length) + " bytes at " + std::to_string(s.before));
    BlobInFile f(s.before, s.length, s.after, s.length);
    IndexPassTimes times;
    f.evict();
    {
      BlobPrefetch r(f.ref, true, times);
      EXPECT_EQ(read_all(r), f.blob);
      EXPECT_TRUE(r.read_direct()) << "not in the page cache: read with O_DIRECT";
    }
    f.cache();
    {
      BlobPrefetch r(f.ref, true, times);
      EXPECT_EQ(read_all(r), f.blob);
      EXPECT_FALSE(r.read_direct()) << "in the page cache: read through it";
    }
    f.evict();
    {
      BlobPrefetch r(f.ref, false, times);
      EXPECT_EQ(read_all(r), f.blob);
      EXPECT_FALSE(r.read_direct());
    }
  }
}

TEST(LazyBlobPrefetch, ShortFileFails) {
  for (bool direct : {true, false}) {
    BlobInFile f(1000, (3 << 20) + 5, 0, 3);
    f.ref.length += 4096;  // the blob claims more than the file holds
    f.evict();
    IndexPassTimes times;
    BlobPrefetch r(f.ref, direct, times);
    try {
      read_all(r);
      ADD_FAILURE() << "a blob past the end of its file was read";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("unexpected end of file"), std::string::npos) << e.what();
    }
  }
}

// The consumer may stop early (a corrupt blob): the reader thread stops with it.
TEST(LazyBlobPrefetch, StopsWhenTheConsumerStops) {
  BlobInFile f(100, 9 << 20, 0, 5);
  f.evict();
  IndexPassTimes times;
  for (int i = 0; i < 20; i++) {
    BlobPrefetch r(f.ref, true, times);
    auto first = r.next();
    ASSERT_FALSE(first.empty());
  }
}
