#include "common/lazy/blob_index.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "common/unique_fd.hpp"

namespace strata::lazy {

namespace {

constexpr size_t kHeaderSize = 48;
constexpr uint64_t kMaxBody = 1ull << 32;  // 4 GiB of index: far beyond any real layer's
// A body naming at most this many times its compressed size is decompressed in one call into
// a buffer of the named size (real bodies compress about 3:1); memory then stays within a
// bounded multiple of the bytes really in the file.
constexpr uint64_t kOneCallRatio = 32;
// An inode's flag byte (version 1 had a plain 0/1 opaque byte there, the same bit).
constexpr uint8_t kFlagOpaque = 1, kFlagSparse = 2;

// The zstd body of an index, decompressed. The header's size is only a claim, so memory is
// never taken for it up front beyond kOneCallRatio times the compressed bytes: the frame must
// name the same size, and past that ratio the buffer grows with the bytes the frame really
// yields (a crafted 60-byte index claiming 4 GiB allocates nothing big). nullopt when the
// body is not one whole frame of exactly `raw_size` bytes.
std::optional<std::string> decompress_body(std::string_view packed, uint64_t raw_size) {
  unsigned long long named = ZSTD_getFrameContentSize(packed.data(), packed.size());
  if (named == ZSTD_CONTENTSIZE_UNKNOWN || named == ZSTD_CONTENTSIZE_ERROR || named != raw_size) return std::nullopt;
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!dctx) return std::nullopt;
  if (raw_size <= uint64_t(packed.size()) * kOneCallRatio) {
    // A size within reach of the bytes at hand: one call into a buffer of that size, without
    // the growing buffer's copies or zstd's window buffer. Every mount of a lazy layer loads
    // its index: strata-fs over a 2-layer Debian image made 5,360 page faults getting ready
    // that way, 3,590 this way.
    if (ZSTD_findFrameCompressedSize(packed.data(), packed.size()) != packed.size()) return std::nullopt;
    std::string raw(size_t(raw_size), '\0');
    size_t got = ZSTD_decompressDCtx(dctx.get(), raw.data(), raw.size(), packed.data(), packed.size());
    if (ZSTD_isError(got) || got != raw_size) return std::nullopt;
    return raw;
  }
  std::string raw;
  size_t filled = 0;
  ZSTD_inBuffer in{packed.data(), packed.size(), 0};
  for (;;) {
    if (filled == raw.size()) {
      if (raw.size() == raw_size) {
        // Everything named is out: the frame must end here, with no input left over.
        char extra;
        ZSTD_outBuffer probe{&extra, 1, 0};
        size_t r = ZSTD_decompressStream(dctx.get(), &probe, &in);
        if (ZSTD_isError(r) || r != 0 || probe.pos != 0 || in.pos != in.size) return std::nullopt;
        return raw;
      }
      raw.resize(size_t(std::min<uint64_t>(raw_size, std::max<uint64_t>(uint64_t(raw.size()) * 2, 1 << 20))));
    }
    ZSTD_outBuffer out{raw.data() + filled, raw.size() - filled, 0};
    size_t r = ZSTD_decompressStream(dctx.get(), &out, &in);
    if (ZSTD_isError(r)) return std::nullopt;
    filled += out.pos;
    if (r == 0 || (out.pos == 0 && in.pos == in.size)) {
      // The frame ended (or the input did) before the size it named.
      if (filled != raw_size || in.pos != in.size) return std::nullopt;
      raw.resize(filled);
      return raw;
    }
  }
}

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(char(v)); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; i++) out_.push_back(char(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; i++) out_.push_back(char(v >> (8 * i)));
  }
  void str(std::string_view s) {
    u32(uint32_t(s.size()));
    out_.append(s);
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  void fail() { ok_ = false; }
  bool at_end() const { return pos_ == in_.size(); }
  uint8_t u8() { return uint8_t(take(1)[0]); }
  uint32_t u32() {
    auto s = take(4);
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= uint32_t(uint8_t(s[i])) << (8 * i);
    return v;
  }
  uint64_t u64() {
    auto s = take(8);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= uint64_t(uint8_t(s[i])) << (8 * i);
    return v;
  }
  std::string str() {
    uint32_t n = u32();
    auto s = take(n);
    return std::string(s.substr(0, n));
  }
  // A count of records that each take at least `min_bytes`: bounded by what is left.
  uint32_t count(size_t min_bytes) {
    uint32_t n = u32();
    if (uint64_t(n) * min_bytes > in_.size() - std::min(pos_, in_.size())) ok_ = false;
    return ok_ ? n : 0;
  }

 private:
  std::string_view take(size_t n) {
    static const char zeros[8] = {};
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return std::string_view(zeros, n <= 8 ? 8 : 0);
    }
    auto s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// A sparse file's regions: in order, not overlapping, inside the file, their data inside the tar.
bool segments_valid(std::span<const SparseSegment> segments, const TocInode& i, uint64_t tar_size) {
  uint64_t end = 0;
  for (const auto& g : segments) {
    if (g.file_offset < end || g.length > i.size || g.file_offset > i.size - g.length) return false;
    if (g.tar_offset > tar_size || g.length > tar_size - g.tar_offset) return false;
    end = g.file_offset + g.length;
  }
  return true;
}

}  // namespace

void BlobIndex::finish_names() {
  size_t n = names.size();
  std::vector<std::vector<uint32_t>> kids(n);
  for (uint32_t i = 1; i < n; i++) kids[names[i].parent].push_back(i);
  std::vector<uint32_t> order{0}, renum(n, 0);
  order.reserve(n);
  first_child.assign(n, 0);
  child_count.assign(n, 0);
  // Breadth first: each directory's children end up next to each other, sorted.
  for (size_t k = 0; k < order.size(); k++) {
    uint32_t old = order[k];
    auto& ch = kids[old];
    std::sort(ch.begin(), ch.end(), [&](uint32_t a, uint32_t b) { return names[a].name < names[b].name; });
    first_child[k] = uint32_t(order.size());
    child_count[k] = uint32_t(ch.size());
    order.insert(order.end(), ch.begin(), ch.end());
  }
  for (uint32_t k = 0; k < order.size(); k++) renum[order[k]] = k;
  std::vector<TocName> sorted;
  sorted.reserve(order.size());
  for (uint32_t old : order) {
    TocName t = std::move(names[old]);
    t.parent = renum[t.parent];
    sorted.push_back(std::move(t));
  }
  names = std::move(sorted);
  first_child.resize(names.size());
  child_count.resize(names.size());
}

std::optional<uint32_t> BlobIndex::child(uint32_t dir, std::string_view name) const {
  if (dir >= child_count.size()) return std::nullopt;
  auto begin = names.begin() + first_child[dir], end = begin + child_count[dir];
  auto it = std::lower_bound(begin, end, name, [](const TocName& t, std::string_view n) { return t.name < n; });
  if (it == end || it->name != name) return std::nullopt;
  return uint32_t(it - names.begin());
}

const Checkpoint& BlobIndex::point_before(uint64_t out) const {
  auto it = std::upper_bound(points.begin(), points.end(), out, [](uint64_t o, const Checkpoint& p) { return o < p.out; });
  return it == points.begin() ? points.front() : *(it - 1);
}

std::string BlobIndex::serialize() const {
  Writer body;
  body.str(digest);
  body.str(diff_id);
  body.u32(uint32_t(points.size()));
  for (const auto& p : points) {
    body.u8(uint8_t(p.kind));
    body.u8(p.bits);
    body.u64(p.in);
    body.u64(p.out);
    body.str(p.window);
  }
  body.u32(uint32_t(inodes.size()));
  for (const auto& i : inodes) {
    body.u32(i.mode);
    body.u32(i.uid);
    body.u32(i.gid);
    body.u64(uint64_t(i.mtime));
    body.u64(i.size);
    body.u64(i.offset);
    body.u64(i.rdev);
    body.u32(i.nlink);
    body.u8((i.opaque ? kFlagOpaque : 0) | (i.sparse ? kFlagSparse : 0));
    body.str(i.link);
    body.u32(uint32_t(i.xattrs.size()));
    for (const auto& [k, v] : i.xattrs) {
      body.str(k);
      body.str(v);
    }
    if (i.sparse) {
      body.u32(i.segment_count);
      for (const auto& g : segments_of(i)) {
        body.u64(g.file_offset);
        body.u64(g.length);
        body.u64(g.tar_offset);
      }
    }
  }
  body.u32(uint32_t(names.size()));
  for (const auto& n : names) {
    body.u32(n.parent);
    body.u32(n.inode);
    body.str(n.name);
  }
  const std::string& raw = body.bytes();
  std::string packed(ZSTD_compressBound(raw.size()), '\0');
  size_t got = ZSTD_compress(packed.data(), packed.size(), raw.data(), raw.size(), 3);
  if (ZSTD_isError(got)) return {};
  packed.resize(got);

  Writer head;
  head.bytes().append(kIndexMagic, sizeof kIndexMagic);
  head.u32(kIndexVersion);
  head.u32(uint32_t(compression));
  head.u64(compressed_size);
  head.u64(uncompressed_size);
  head.u64(raw.size());
  head.u64(packed.size());
  return head.bytes() + packed;
}

namespace {

struct Header {
  uint32_t version, compression;
  uint64_t compressed_size, uncompressed_size, raw_size, packed_size;
};

// The 48-byte header of an index of `file_size` bytes; nullopt with `error` set.
std::optional<Header> parse_header(std::string_view bytes, uint64_t file_size, std::string& error) {
  if (bytes.size() < kHeaderSize || std::memcmp(bytes.data(), kIndexMagic, sizeof kIndexMagic) != 0) {
    error = "not a strata blob index";
    return std::nullopt;
  }
  Reader head(bytes.substr(sizeof kIndexMagic, kHeaderSize - sizeof kIndexMagic));
  uint32_t version = head.u32();
  if (version != kIndexVersion && version != 1) {
    error = "blob index version " + std::to_string(version) + " (this strata reads " + std::to_string(kIndexVersion) + ")";
    return std::nullopt;
  }
  Header h;
  h.version = version;
  h.compression = head.u32();
  if (h.compression > 2) {
    error = "blob index: unknown compression " + std::to_string(h.compression);
    return std::nullopt;
  }
  h.compressed_size = head.u64();
  h.uncompressed_size = head.u64();
  h.raw_size = head.u64();
  h.packed_size = head.u64();
  if (h.packed_size != file_size - kHeaderSize || h.raw_size > kMaxBody) {
    error = "blob index: truncated or corrupt";
    return std::nullopt;
  }
  return h;
}

}  // namespace

std::optional<BlobIndex> BlobIndex::parse(std::string_view bytes, std::string& error) {
  auto h = parse_header(bytes, bytes.size(), error);
  if (!h) return std::nullopt;
  BlobIndex ix;
  ix.compression = BlobCompression(h->compression);
  ix.compressed_size = h->compressed_size;
  ix.uncompressed_size = h->uncompressed_size;
  uint64_t raw_size = h->raw_size;
  const uint32_t version = h->version;
  auto body = decompress_body(bytes.substr(kHeaderSize), raw_size);
  if (!body) {
    error = "blob index: corrupt body";
    return std::nullopt;
  }
  Reader r(*body);
  ix.digest = r.str();
  ix.diff_id = r.str();
  uint32_t np = r.count(22);
  ix.points.resize(np);
  for (auto& p : ix.points) {
    uint8_t kind = r.u8();
    p.kind = Checkpoint::Kind(kind);
    p.bits = r.u8();
    p.in = r.u64();
    p.out = r.u64();
    p.window = r.str();
    if (kind > 1 || p.bits > 7 || p.window.size() > 32768) r.fail();
  }
  uint32_t ni = r.count(57);
  ix.inodes.resize(ni);
  for (auto& i : ix.inodes) {
    i.mode = r.u32();
    i.uid = r.u32();
    i.gid = r.u32();
    i.mtime = int64_t(r.u64());
    i.size = r.u64();
    i.offset = r.u64();
    i.rdev = r.u64();
    i.nlink = r.u32();
    uint8_t flags = r.u8();
    i.opaque = version == 1 ? flags != 0 : (flags & kFlagOpaque) != 0;
    i.sparse = version > 1 && (flags & kFlagSparse) != 0;
    if (version > 1 && (flags & ~(kFlagOpaque | kFlagSparse))) r.fail();
    i.link = r.str();
    uint32_t nx = r.count(8);
    for (uint32_t k = 0; k < nx && r.ok(); k++) {
      std::string key = r.str();
      std::string value = r.str();
      i.xattrs.emplace_back(std::move(key), std::move(value));
    }
    if (i.sparse) {
      uint32_t ns = r.count(24);
      i.first_segment = uint32_t(ix.segments.size());
      i.segment_count = ns;
      for (uint32_t k = 0; k < ns && r.ok(); k++) {
        SparseSegment g;
        g.file_offset = r.u64();
        g.length = r.u64();
        g.tar_offset = r.u64();
        ix.segments.push_back(g);
      }
      if (ix.segments.size() > UINT32_MAX) r.fail();
    }
  }
  uint32_t nn = r.count(12);
  ix.names.resize(nn);
  for (auto& n : ix.names) {
    n.parent = r.u32();
    n.inode = r.u32();
    n.name = r.str();
  }
  bool ok = r.ok() && r.at_end() && !ix.points.empty() && ix.points[0].out == 0 && !ix.names.empty() &&
            !ix.inodes.empty();
  for (size_t k = 1; ok && k < ix.points.size(); k++) ok = ix.points[k].out >= ix.points[k - 1].out;
  // Names come breadth first: a parent before its children, each directory's children
  // together and sorted; every name refers to an inode that exists.
  ix.first_child.assign(nn, 0);
  ix.child_count.assign(nn, 0);
  for (uint32_t k = 0; ok && k < nn; k++) {
    const TocName& n = ix.names[k];
    ok = n.inode < ni && (k == 0 ? n.parent == 0 && n.name.empty()
                                 : n.parent < k && !n.name.empty() && n.name.find('/') == std::string::npos &&
                                       n.name != "." && n.name != ".." &&
                                       S_ISDIR(ix.inodes[ix.names[n.parent].inode].mode));
    if (!ok || k == 0) continue;
    uint32_t p = n.parent;
    if (ix.child_count[p] == 0) {
      ix.first_child[p] = k;
    } else {
      ok = ix.first_child[p] + ix.child_count[p] == k && ix.names[k - 1].name < n.name;
    }
    ix.child_count[p]++;
  }
  if (ok) ok = S_ISDIR(ix.inodes[ix.names[0].inode].mode);
  for (const auto& i : ix.inodes) {
    if (!ok) break;
    ok = !S_ISREG(i.mode) || (i.sparse ? segments_valid(ix.segments_of(i), i, ix.uncompressed_size)
                                       : i.offset <= ix.uncompressed_size && i.size <= ix.uncompressed_size - i.offset);
    ok = ok && (!i.sparse || S_ISREG(i.mode));
  }
  if (!ok) {
    error = "blob index: truncated or corrupt";
    return std::nullopt;
  }
  return ix;
}

std::optional<BlobIndex> load_index_file(const std::string& path, std::string& error) {
  // O_NONBLOCK: a FIFO planted at the name must not hang the opener (it is then refused).
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    error = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  return load_index_fd(fd.get(), path, error);
}

std::optional<BlobIndex> load_index_fd(int fd, const std::string& path, std::string& error) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + ": not a regular file";
    return std::nullopt;
  }
  std::string bytes(size_t(st.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pread(fd, bytes.data() + done, bytes.size() - done, off_t(done));
    if (n <= 0) {
      error = path + ": " + (n < 0 ? std::strerror(errno) : "short read");
      return std::nullopt;
    }
    done += size_t(n);
  }
  auto ix = BlobIndex::parse(bytes, error);
  if (!ix) error = path + ": " + error;
  return ix;
}

std::optional<IndexSummary> read_index_summary(const std::string& path, std::string& error) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    error = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + ": not a regular file";
    return std::nullopt;
  }
  // The two names open the body; its first zstd block (at most 128 KiB packed) holds them.
  std::string head(size_t(std::min<uint64_t>(uint64_t(st.st_size), kHeaderSize + (132 << 10))), '\0');
  ssize_t got = ::pread(fd.get(), head.data(), head.size(), 0);
  if (got != ssize_t(head.size())) {
    error = path + ": short read";
    return std::nullopt;
  }
  auto h = parse_header(head, uint64_t(st.st_size), error);
  if (!h) {
    error = path + ": " + error;
    return std::nullopt;
  }
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  char out[512];
  ZSTD_inBuffer in{head.data() + kHeaderSize, head.size() - kHeaderSize, 0};
  ZSTD_outBuffer ob{out, sizeof out, 0};
  while (dctx && ob.pos < ob.size && in.pos < in.size) {
    size_t r = ZSTD_decompressStream(dctx.get(), &ob, &in);
    if (ZSTD_isError(r) || r == 0) break;
  }
  Reader r(std::string_view(out, ob.pos));
  IndexSummary s;
  s.compressed_size = h->compressed_size;
  s.digest = r.str();
  s.diff_id = r.str();
  if (!r.ok() || s.digest.size() > 200 || s.diff_id.size() > 200) {
    error = path + ": blob index: corrupt body";
    return std::nullopt;
  }
  return s;
}

}  // namespace strata::lazy
