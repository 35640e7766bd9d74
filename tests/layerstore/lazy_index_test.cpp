// Lazy layers, step one: the index built in the verifying pass (layer_index_build.hpp) and
// random reads through it (common/lazy/blob_reader.hpp). Every read is compared with the
// uncompressed tar itself, for gzip (one member and several), zstd (several frames and one
// big frame) and plain layers; the table of contents with the tar's files.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/lazy/blob_index.hpp"
#include "common/lazy/blob_reader.hpp"
#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/layer_index_build.hpp"
#include "layerstore/error.hpp"

using namespace strata;

namespace {

struct TarFile {
  std::string name;
  std::string data;
  char type = '0';  // '0' file, '5' dir, '2' symlink, '1' hardlink
  std::string link;
};

la_ssize_t append_cb(archive*, void* client, const void* buf, size_t len) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), len);
  return la_ssize_t(len);
}

std::string make_tar(const std::vector<TarFile>& files) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &out, nullptr, append_cb, nullptr);
  for (const auto& f : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, f.name.c_str());
    archive_entry_set_mtime(e, 1700000000, 0);
    archive_entry_set_uid(e, 1000);
    archive_entry_set_gid(e, 100);
    if (f.type == '5') {
      archive_entry_set_filetype(e, AE_IFDIR);
      archive_entry_set_perm(e, 0755);
    } else if (f.type == '2') {
      archive_entry_set_filetype(e, AE_IFLNK);
      archive_entry_set_perm(e, 0777);
      archive_entry_set_symlink(e, f.link.c_str());
    } else if (f.type == '1') {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_perm(e, 0644);
      archive_entry_set_hardlink(e, f.link.c_str());
    } else {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_perm(e, 0640);
      archive_entry_set_size(e, la_int64_t(f.data.size()));
    }
    EXPECT_EQ(archive_write_header(a, e), ARCHIVE_OK) << f.name;
    if (f.type == '0' && !f.data.empty()) archive_write_data(a, f.data.data(), f.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// Text-like data (compresses as real files do, so deflate makes many blocks).
std::string pseudo_text(std::mt19937_64& rng, size_t n) {
  static const char* words[] = {"layer ", "blob ", "index ", "strata ", "gzip\n", "zstd ", "tar ", "0x1f8b ",
                                "checkpoint ", "window\n", "offset ", "inflate "};
  std::string s;
  s.reserve(n + 16);
  while (s.size() < n) {
    s += words[rng() % 12];
    if (rng() % 7 == 0) s += std::to_string(rng() % 100000);
  }
  s.resize(n);
  return s;
}

std::string gzip_member(std::string_view data, int level = 6) {
  z_stream z{};
  deflateInit2(&z, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, uLong(data.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = uInt(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd_frame(std::string_view data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// The same tar cut in `parts` pieces, each compressed on its own and concatenated.
template <typename F>
std::string in_pieces(const std::string& tar, size_t parts, F compress) {
  std::string out;
  size_t step = tar.size() / parts + 1;
  for (size_t off = 0; off < tar.size(); off += step) out += compress(std::string_view(tar).substr(off, step));
  return out;
}

struct TempBlob {
  std::string path;
  BlobRef ref;
  explicit TempBlob(const std::string& bytes) {
    char tmpl[] = "/tmp/strata-lazy-test-XXXXXX";
    int fd = mkstemp(tmpl);
    path = tmpl;
    size_t done = 0;
    while (done < bytes.size()) done += size_t(write(fd, bytes.data() + done, bytes.size() - done));
    ref.file = std::make_shared<UniqueFd>(fd);
    ref.offset = 0;
    ref.length = bytes.size();
    ref.name = "test blob";
  }
  ~TempBlob() { unlink(path.c_str()); }
};

std::vector<TarFile> sample_files(std::mt19937_64& rng, size_t big) {
  std::vector<TarFile> files;
  files.push_back({"etc/", "", '5', ""});
  for (int i = 0; i < 40; i++) files.push_back({"etc/f" + std::to_string(i), pseudo_text(rng, rng() % 9000), '0', ""});
  files.push_back({"usr/lib/big.bin", pseudo_text(rng, big), '0', ""});
  files.push_back({"usr/lib/link", "", '2', "big.bin"});
  files.push_back({"usr/lib/hard", "", '1', "usr/lib/big.bin"});
  files.push_back({"usr/lib/empty", "", '0', ""});
  for (int i = 0; i < 20; i++)
    files.push_back({"var/d" + std::to_string(i) + "/x", pseudo_text(rng, rng() % 300000), '0', ""});
  return files;
}

// Reads of the tar through the index equal the tar: at and around every checkpoint, a
// sweep of random offsets and lengths, and the whole tar in odd-sized sequential steps.
void check_reads(const std::string& blob_bytes, const std::string& tar, uint64_t span) {
  TempBlob blob(blob_bytes);
  IndexBuildOptions opt;
  opt.span = span;
  auto ix = std::make_shared<lazy::BlobIndex>(build_blob_index(blob.ref, {}, {}, opt));
  EXPECT_EQ(ix->digest, sha256_digest(blob_bytes));
  EXPECT_EQ(ix->diff_id, sha256_digest(tar));
  EXPECT_EQ(ix->uncompressed_size, tar.size());
  EXPECT_EQ(ix->compressed_size, blob_bytes.size());

  // Through the file format, as strata-fs gets it.
  std::string err;
  auto parsed = lazy::BlobIndex::parse(ix->serialize(), err);
  ASSERT_TRUE(parsed) << err;
  EXPECT_EQ(parsed->points.size(), ix->points.size());
  auto shared = std::make_shared<const lazy::BlobIndex>(std::move(*parsed));
  lazy::BlobReader reader(shared, blob.ref.file->get(), 0, 4 * lazy::BlobReader::kChunk);

  auto expect_read = [&](uint64_t pos, size_t len) {
    std::string got(len, '\0');
    ssize_t n = reader.read_at(got.data(), len, pos);
    size_t want = pos >= tar.size() ? 0 : std::min<size_t>(len, tar.size() - pos);
    ASSERT_EQ(n, ssize_t(want)) << "read at " << pos;
    ASSERT_TRUE(std::memcmp(got.data(), tar.data() + pos, want) == 0) << "bytes differ at " << pos << " len " << len;
  };
  for (const auto& p : shared->points) {
    expect_read(p.out, 4096);
    if (p.out >= 1000) expect_read(p.out - 1000, 2000);  // across the checkpoint
  }
  std::mt19937_64 rng(42);
  for (int i = 0; i < 200; i++) expect_read(rng() % (tar.size() + 100), size_t(rng() % 700000));
  // Backwards, so every read restarts decompression somewhere.
  for (uint64_t pos = tar.size(); pos > 300000; pos -= 299999) expect_read(pos - 300000, 1234);
  std::string all;
  for (uint64_t pos = 0; pos < tar.size();) {
    std::string buf(77777, '\0');
    ssize_t n = reader.read_at(buf.data(), buf.size(), pos);
    ASSERT_GT(n, 0);
    all.append(buf.data(), size_t(n));
    pos += uint64_t(n);
  }
  EXPECT_TRUE(all == tar);

  // Readers at once, each decoding outside the reader's lock: two sequential sweeps of the
  // same region (one waits for the other's decoder), one backwards, three random.
  std::atomic<int> wrong{0};
  auto reader_thread = [&](int kind, uint64_t seed) {
    std::mt19937_64 r(seed);
    std::string buf(150000, '\0');
    for (int i = 0; i < 120; i++) {
      uint64_t pos = kind == 0 ? uint64_t(i) * 140000 % tar.size()
                     : kind == 1 ? tar.size() - std::min<uint64_t>(tar.size(), uint64_t(i + 1) * 97000)
                                 : r() % tar.size();
      size_t len = kind == 2 ? size_t(r() % buf.size()) : buf.size();
      ssize_t n = reader.read_at(buf.data(), len, pos);
      size_t want = std::min<size_t>(len, tar.size() - pos);
      if (n != ssize_t(want) || std::memcmp(buf.data(), tar.data() + pos, want) != 0) wrong++;
    }
  };
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; t++) threads.emplace_back(reader_thread, t < 2 ? 0 : t == 2 ? 1 : 2, uint64_t(t));
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(wrong.load(), 0) << "concurrent reads differ";

  // Every regular file of the table of contents is where the index says.
  size_t files = 0;
  for (const auto& name : shared->names) {
    const auto& ino = shared->inodes[name.inode];
    if (!S_ISREG(ino.mode)) continue;
    files++;
    expect_read(ino.offset, size_t(ino.size));
  }
  EXPECT_GT(files, 60u);
}

class LazyIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(7);
    tar_ = make_tar(sample_files(rng, 6 << 20));
  }
  std::string tar_;
};

}  // namespace

TEST_F(LazyIndex, PlainTar) { check_reads(tar_, tar_, 1 << 20); }

TEST_F(LazyIndex, GzipOneMember) {
  std::string gz = gzip_member(tar_);
  TempBlob blob(gz);
  IndexBuildOptions opt;
  opt.span = 256 * 1024;
  auto ix = build_blob_index(blob.ref, {}, {}, opt);
  // Deflate block boundaries with windows, not just the start.
  size_t blocks = 0;
  for (const auto& p : ix.points) blocks += p.kind == lazy::Checkpoint::Kind::DeflateBlock;
  EXPECT_GT(blocks, 10u);
  check_reads(gz, tar_, 256 * 1024);
}

TEST_F(LazyIndex, GzipManyMembers) {
  check_reads(in_pieces(tar_, 7, [](std::string_view s) { return gzip_member(s, 1); }), tar_, 300 * 1024);
  // Members that end mid-file and a checkpoint span larger than a member.
  check_reads(in_pieces(tar_, 40, [](std::string_view s) { return gzip_member(s, 9); }), tar_, 4 << 20);
}

TEST_F(LazyIndex, ZstdManyFrames) {
  std::string z = in_pieces(tar_, 9, zstd_frame);
  TempBlob blob(z);
  auto ix = build_blob_index(blob.ref, {}, {});
  EXPECT_GE(ix.points.size(), 9u);
  check_reads(z, tar_, kDefaultCheckpointSpan);
}

TEST_F(LazyIndex, ZstdOneBigFrame) { check_reads(zstd_frame(tar_), tar_, kDefaultCheckpointSpan); }

TEST(LazyIndexSize, AtMostThreePercentOfTheLayer) {
  std::mt19937_64 rng(9);
  std::string tar = make_tar(sample_files(rng, 24 << 20));
  std::string gz = gzip_member(tar);
  TempBlob blob(gz);
  auto ix = build_blob_index(blob.ref, {}, {});
  std::string file = ix.serialize();
  EXPECT_LE(file.size() * 100, tar.size() * 3) << file.size() << " bytes of index for " << tar.size();
  EXPECT_GT(ix.points.size(), 8u);
}

TEST(LazyIndexToc, TreeAsExtractionLeavesIt) {
  std::mt19937_64 rng(3);
  std::string tar = make_tar({{"a/", "", '5', ""},
                              {"a/keep", "k", '0', ""},
                              {"a/gone", "g", '0', ""},
                              {"a/.wh.gone", "", '0', ""},
                              {"a/.wh.lower", "", '0', ""},
                              {"b/.wh..wh..opq", "", '0', ""},
                              {"b/new", "n", '0', ""},
                              {"c/deep/file", "d", '0', ""},
                              {"c/h", "", '1', "c/deep/file"},
                              {".wh..wh.plnk", "", '0', ""}});
  TempBlob blob(tar);
  auto ix = build_blob_index(blob.ref, {}, {});
  auto path = [&](std::initializer_list<const char*> parts) -> std::optional<uint32_t> {
    uint32_t at = 0;
    for (const char* p : parts) {
      auto c = ix.child(at, p);
      if (!c) return std::nullopt;
      at = *c;
    }
    return at;
  };
  auto a_gone = path({"a", "gone"});
  ASSERT_TRUE(a_gone);  // a whiteout: char 0/0 in the lower, as overlayfs reads it
  EXPECT_TRUE(S_ISCHR(ix.inodes[ix.names[*a_gone].inode].mode));
  EXPECT_EQ(ix.inodes[ix.names[*a_gone].inode].rdev, 0u);
  EXPECT_TRUE(path({"a", "lower"}));
  EXPECT_FALSE(path({"a", ".wh.gone"}));
  EXPECT_TRUE(path({"a", "keep"}));
  EXPECT_TRUE(ix.inodes[ix.names[*path({"b"})].inode].opaque);
  EXPECT_FALSE(path({"b", ".wh..wh..opq"}));
  EXPECT_FALSE(path({".wh..wh.plnk"}));
  auto c = ix.inodes[ix.names[*path({"c"})].inode];
  EXPECT_EQ(c.mode, uint32_t(S_IFDIR | 0755));  // made for the tar that omits it
  EXPECT_EQ(c.uid, 0u);
  auto f = path({"c", "deep", "file"}), h = path({"c", "h"});
  ASSERT_TRUE(f && h);
  EXPECT_EQ(ix.names[*f].inode, ix.names[*h].inode);
  EXPECT_EQ(ix.inodes[ix.names[*f].inode].nlink, 2u);
  EXPECT_EQ(ix.inodes[ix.names[*f].inode].uid, 1000u);
}

TEST(LazyIndexToc, RefusesWhatExtractionRefuses) {
  auto refused = [](const std::vector<TarFile>& files) {
    std::string tar = make_tar(files);
    TempBlob blob(tar);
    try {
      build_blob_index(blob.ref, {}, {});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(refused({{"../x", "", '0', ""}}).find("escapes"), std::string::npos);
  EXPECT_NE(refused({{"a", "1", '0', ""}, {"a", "2", '0', ""}}).find("duplicate"), std::string::npos);
  EXPECT_NE(refused({{"h", "", '1', "missing"}}).find("No such file"), std::string::npos);
  EXPECT_NE(refused({{"f", "1", '0', ""}, {"f/x", "2", '0', ""}}).find("not a directory"), std::string::npos);
  EXPECT_NE(refused({{"l", "", '2', "/etc"}, {"l/passwd", "x", '0', ""}}).find("symlinked parent"), std::string::npos);
}

TEST(LazyIndexFile, CorruptIndexesAreRefused) {
  std::mt19937_64 rng(5);
  std::string tar = make_tar(sample_files(rng, 1 << 20));
  TempBlob blob(tar);
  std::string file = build_blob_index(blob.ref, {}, {}).serialize();
  std::string err;
  ASSERT_TRUE(lazy::BlobIndex::parse(file, err)) << err;
  EXPECT_FALSE(lazy::BlobIndex::parse(file.substr(0, file.size() - 1), err));
  std::string bad = file;
  bad[8] = 3;  // version
  EXPECT_FALSE(lazy::BlobIndex::parse(bad, err));
  EXPECT_NE(err.find("version"), std::string::npos);
  bad = file;
  bad[bad.size() / 2] ^= 0x55;
  EXPECT_FALSE(lazy::BlobIndex::parse(bad, err));
}

// What mount --lazy reads of a cached index to know whether it is the one wanted: the size,
// digest and diff_id, the same as the whole index has, from its head alone.
TEST(LazyIndexFile, SummaryNamesTheBlobFromTheHeadAlone) {
  std::mt19937_64 rng(6);
  std::string tar = make_tar(sample_files(rng, 1 << 20));
  TempBlob blob(tar);
  lazy::BlobIndex ix = build_blob_index(blob.ref, {}, {});
  TempBlob file(ix.serialize());
  std::string err;
  auto s = lazy::read_index_summary(file.path, err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->compressed_size, ix.compressed_size);
  EXPECT_EQ(s->digest, ix.digest);
  EXPECT_EQ(s->diff_id, ix.diff_id);
  EXPECT_EQ(s->digest.rfind("sha256:", 0), 0u);
  TempBlob cut(ix.serialize().substr(0, 100));  // the header's body size no longer matches
  EXPECT_FALSE(lazy::read_index_summary(cut.path, err));
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
  TempBlob junk(std::string(4096, 'x'));
  EXPECT_FALSE(lazy::read_index_summary(junk.path, err));
}

TEST(LazyIndexBuild, TruncatedAndCorruptBlobsFail) {
  std::mt19937_64 rng(11);
  std::string tar = make_tar(sample_files(rng, 1 << 20));
  for (std::string blob_bytes : {gzip_member(tar), zstd_frame(tar)}) {
    TempBlob cut(blob_bytes.substr(0, blob_bytes.size() / 2));
    EXPECT_THROW(build_blob_index(cut.ref, {}, {}), Error);
  }
  std::string flipped = gzip_member(tar);
  flipped[flipped.size() - 6] ^= 0x40;  // inside the CRC32
  TempBlob bad(flipped);
  EXPECT_THROW(build_blob_index(bad.ref, {}, {}), Error);
}

// A sparse file (GNU tar --sparse --format=posix, map format 1.0 in the data): the table of
// contents has its real size and its two regions, each pointing at its bytes in the tar.
TEST(LazyIndexToc, SparseFilesAsRegions) {
  char dir[] = "/tmp/strata-lazy-sparse-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  std::string d = dir;
  std::string cmd = "cd " + d + " && printf data > f && truncate -s 8M f && printf tail >> f && "
                    "tar --sparse --format=posix --sparse-version=1.0 -cf layer.tar f 2>/dev/null";
  if (system(cmd.c_str()) != 0) {
    system(("rm -rf " + d).c_str());
    GTEST_SKIP() << "GNU tar cannot write a sparse archive here";
  }
  int fd = open((d + "/layer.tar").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  BlobRef blob;
  blob.file = std::make_shared<UniqueFd>(fd);
  struct stat st {};
  fstat(fd, &st);
  blob.length = uint64_t(st.st_size);
  blob.name = "sparse.tar";
  auto ix = std::make_shared<const lazy::BlobIndex>(build_blob_index(blob, {}, {}));
  std::string err;
  auto parsed = lazy::BlobIndex::parse(ix->serialize(), err);
  ASSERT_TRUE(parsed) << err;
  auto f = parsed->child(0, "f");
  ASSERT_TRUE(f);
  const auto& ino = parsed->inodes[parsed->names[*f].inode];
  EXPECT_TRUE(ino.sparse);
  EXPECT_EQ(ino.size, (8u << 20) + 4);
  auto segments = parsed->segments_of(ino);
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_EQ(segments[0].file_offset, 0u);
  EXPECT_EQ(segments[1].file_offset + segments[1].length, ino.size);
  lazy::BlobReader reader(ix, fd, 0);
  for (const auto& g : segments) {
    std::string got(g.length, '\0');
    ASSERT_EQ(reader.read_at(got.data(), got.size(), g.tar_offset), ssize_t(got.size()));
    if (g.file_offset == 0) EXPECT_EQ(got.substr(0, 4), "data");
    else EXPECT_EQ(got.substr(got.size() - 4), "tail");
  }
  system(("rm -rf " + d).c_str());
}

// A crafted index whose header claims a body of almost 4 GiB around a tiny one: refused
// without allocating what it claims (checked under an address-space limit of 512 MiB, in
// which the claimed body could not even be allocated).
TEST(LazyIndexFile, CraftedSizesAllocateNothing) {
  std::mt19937_64 rng(9);
  std::string tar = make_tar(sample_files(rng, 1 << 16));
  TempBlob blob(tar);
  std::string file = build_blob_index(blob.ref, {}, {}).serialize();
  for (int field : {0, 1}) {
    std::string bad = file;
    uint64_t claim = (4ull << 30) - 1;
    if (field == 1) {
      // A body frame that does not name its size, so only the header's claim is left.
      std::string small(100, 'x');
      std::string packed(ZSTD_compressBound(small.size()), '\0');
      ZSTD_CCtx* c = ZSTD_createCCtx();
      ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
      size_t n = ZSTD_compress2(c, packed.data(), packed.size(), small.data(), small.size());
      ZSTD_freeCCtx(c);
      packed.resize(n);
      bad = file.substr(0, 48) + packed;
      for (int i = 0; i < 8; i++) bad[40 + i] = char(uint64_t(packed.size()) >> (8 * i));
    }
    for (int i = 0; i < 8; i++) bad[32 + i] = char(claim >> (8 * i));
    auto parse_limited = [&bad] {
      struct rlimit lim {};
      lim.rlim_cur = lim.rlim_max = 512u << 20;
      setrlimit(RLIMIT_AS, &lim);
      std::string e;
      bool ok = bool(lazy::BlobIndex::parse(bad, e));
      _exit(!ok && e.find("corrupt") != std::string::npos ? 0 : 1);
    };
    EXPECT_EXIT(parse_limited(), ::testing::ExitedWithCode(0), "") << "field " << field;
  }
}

// The body must be exactly one whole zstd frame, whether it is decompressed in one call (a size
// near its compressed one, as real bodies are) or into a growing buffer: a frame cut short,
// or followed by a skippable frame or a second frame, is refused.
TEST(LazyIndexFile, BodyIsOneWholeFrame) {
  std::mt19937_64 rng(10);
  TempBlob blob(make_tar(sample_files(rng, 1 << 16)));
  std::string file = build_blob_index(blob.ref, {}, {}).serialize();
  std::string e;
  ASSERT_TRUE(lazy::BlobIndex::parse(file, e)) << e;
  std::string body = file.substr(48);
  const std::string skippable("\x50\x2a\x4d\x18\x04\x00\x00\x00" "abcd", 12);
  for (const std::string& changed : {body.substr(0, body.size() - 1), body + skippable, body + body}) {
    std::string bad = file.substr(0, 48) + changed;
    for (int i = 0; i < 8; i++) bad[40 + i] = char(uint64_t(changed.size()) >> (8 * i));
    EXPECT_FALSE(lazy::BlobIndex::parse(bad, e)) << "a body of " << changed.size() << " bytes (" << body.size()
                                                  << " whole)";
  }
}

namespace {

// gzip with zlib's `strategy`, the level switched between `levels` every MiB (deflateParams
// ends the block there): level 0 makes stored blocks, Z_FIXED fixed-Huffman ones.
std::string gzip_mixed(std::string_view data, std::vector<int> levels, int strategy = Z_DEFAULT_STRATEGY) {
  z_stream z{};
  deflateInit2(&z, levels[0], Z_DEFLATED, 31, 8, strategy);
  std::string out;
  std::vector<char> buf(1 << 20);
  for (size_t off = 0, piece = 0; off < data.size(); off += 1 << 20, piece++) {
    if (piece) {
      // It may end the block: its output goes where next_out points.
      z.next_out = reinterpret_cast<Bytef*>(buf.data());
      z.avail_out = uInt(buf.size());
      EXPECT_EQ(deflateParams(&z, levels[piece % levels.size()], strategy), Z_OK);
      out.append(buf.data(), buf.size() - z.avail_out);
    }
    std::string_view s = data.substr(off, 1 << 20);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
    z.avail_in = uInt(s.size());
    int flush = off + s.size() >= data.size() ? Z_FINISH : Z_NO_FLUSH;
    int r;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buf.data());
      z.avail_out = uInt(buf.size());
      r = deflate(&z, flush);
      out.append(buf.data(), buf.size() - z.avail_out);
    } while (z.avail_out == 0 || (flush == Z_FINISH && r != Z_STREAM_END));
  }
  deflateEnd(&z);
  return out;
}

// Every deflate block end (not a member's last) zlib's Z_BLOCK stops at, as "in:bits:out".
std::set<std::string> zlib_block_ends(const std::string& gz) {
  std::set<std::string> ends;
  z_stream z{};
  inflateInit2(&z, 31);
  std::vector<uint8_t> out(1 << 16);
  auto* start = reinterpret_cast<const Bytef*>(gz.data());
  z.next_in = const_cast<Bytef*>(start);
  z.avail_in = uInt(gz.size());
  uint64_t produced = 0;
  while (z.avail_in) {
    z.next_out = out.data();
    z.avail_out = uInt(out.size());
    int r = inflate(&z, Z_BLOCK);
    produced += out.size() - z.avail_out;
    if (r == Z_STREAM_END) {
      inflateReset(&z);
      continue;
    }
    EXPECT_TRUE(r == Z_OK || r == Z_BUF_ERROR) << r;
    if (r != Z_OK && r != Z_BUF_ERROR) break;
    if ((z.data_type & 0xC0) == 0x80)
      ends.insert(std::to_string(z.next_in - start) + ":" + std::to_string(z.data_type & 7) + ":" + std::to_string(produced));
  }
  inflateEnd(&z);
  return ends;
}

// The index pass inflates with ISA-L and finds block boundaries by watching its state: each
// block checkpoint must be one zlib stops at, its window the 32 KiB of the tar before it
// (less at a member's start), and there must be one about every span.
void check_block_checkpoints(const std::string& gz, const std::string& tar, uint64_t span, bool expect_blocks) {
  TempBlob blob(gz);
  IndexBuildOptions opt;
  opt.span = span;
  auto ix = build_blob_index(blob.ref, {}, {}, opt);
  auto ends = zlib_block_ends(gz);
  size_t blocks = 0;
  for (size_t i = 0; i < ix.points.size(); i++) {
    const auto& p = ix.points[i];
    if (i) EXPECT_GT(p.out, ix.points[i - 1].out);
    if (p.kind != lazy::Checkpoint::Kind::DeflateBlock) continue;
    blocks++;
    std::string key = std::to_string(p.in) + ":" + std::to_string(p.bits) + ":" + std::to_string(p.out);
    EXPECT_TRUE(ends.count(key)) << "not a block boundary: " << key;
    ASSERT_LE(p.window.size(), 32768u);
    ASSERT_LE(p.window.size(), p.out);
    EXPECT_TRUE(tar.compare(size_t(p.out - p.window.size()), p.window.size(), p.window) == 0) << "window at " << p.out;
  }
  if (expect_blocks) EXPECT_GE(blocks + 2, tar.size() / (span + 256 * 1024)) << blocks << " block checkpoints";
  check_reads(gz, tar, span);
}

}  // namespace

TEST_F(LazyIndex, GzipBlockCheckpointsAreZlibBlockEnds) {
  for (int level : {1, 6, 9}) check_block_checkpoints(gzip_member(tar_, level), tar_, 256 * 1024, true);
  // Members of a few hundred KiB, checkpoints due in each.
  check_block_checkpoints(in_pieces(tar_, 23, [](std::string_view s) { return gzip_member(s, 6); }), tar_, 128 * 1024, true);
}

TEST_F(LazyIndex, GzipStoredAndFixedBlocks) {
  // Stored (type 0) blocks alone, and between dynamic ones: their boundaries are byte-aligned.
  check_block_checkpoints(gzip_mixed(tar_, {0}), tar_, 256 * 1024, true);
  check_block_checkpoints(gzip_mixed(tar_, {0, 6, 1, 0}), tar_, 256 * 1024, true);
  // Fixed-Huffman blocks: a 3-bit header that input rarely ends inside, so few or no block
  // checkpoints; reads stay exact from the member start.
  check_block_checkpoints(gzip_mixed(tar_, {6}, Z_FIXED), tar_, 256 * 1024, false);
}

TEST(LazyIndexBuild, CorruptDeflateDataFails) {
  std::mt19937_64 rng(12);
  std::string tar = make_tar(sample_files(rng, 3 << 20));
  std::string gz = gzip_member(tar);
  for (size_t at : {gz.size() / 3, gz.size() / 2, gz.size() - 100}) {
    std::string bad = gz;
    bad[at] ^= 0x10;
    TempBlob blob(bad);
    EXPECT_THROW(build_blob_index(blob.ref, {}, {}), Error) << "flipped byte at " << at;
  }
}

// mount --lazy reads a blob not in the page cache with O_DIRECT (blob_prefetch.hpp): the same
// index as through the page cache.
TEST_F(LazyIndex, SameIndexReadAroundThePageCache) {
  for (const std::string& blob_bytes : {gzip_member(tar_), in_pieces(tar_, 9, zstd_frame), tar_}) {
    TempBlob blob(blob_bytes);
    std::string cached = build_blob_index(blob.ref, {}, {}).serialize();
    fdatasync(blob.ref.file->get());
    posix_fadvise(blob.ref.file->get(), 0, 0, POSIX_FADV_DONTNEED);
    IndexBuildOptions opt;
    opt.around_page_cache = true;
    EXPECT_EQ(build_blob_index(blob.ref, {}, {}, opt).serialize(), cached);
  }
}
