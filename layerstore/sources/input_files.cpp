#include "layerstore/sources/input_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "layerstore/archive/decompress.hpp"
#include "layerstore/archive/safe_path.hpp"
#include "layerstore/archive/tar_header.hpp"
#include "layerstore/error.hpp"

namespace strata {
namespace {

class DirFiles : public InputFiles {
 public:
  explicit DirFiles(std::string dir) : dir_(std::move(dir)) {
    root_ = UniqueFd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_) throw_errno(dir_);
  }
  // O_NONBLOCK: a FIFO planted among a layout's files would block the open forever (a
  // writer could also feed it); it is opened at once and refused as not a regular file.
  bool exists(const std::string& rel) const override {
    int err = 0;
    return open_beneath(root_.get(), clean_entry_path(rel), O_RDONLY | O_NONBLOCK, 0, err).valid();
  }
  BlobRef blob(const std::string& rel) const override {
    int err = 0;
    std::string clean = clean_entry_path(rel);
    UniqueFd fd = open_beneath(root_.get(), clean, O_RDONLY | O_NONBLOCK, 0, err);
    if (!fd) {
      if (err == ENOENT) throw Error(rel + ": missing from " + dir_);
      throw SysError(dir_ + "/" + rel, err);
    }
    struct stat st;
    if (fstat(fd.get(), &st) != 0) throw_errno(rel);
    if (!S_ISREG(st.st_mode)) throw Error(rel + ": not a regular file");
    if (fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK) != 0) throw_errno(rel);
    BlobRef b;
    b.file = std::make_shared<UniqueFd>(std::move(fd));
    b.length = st.st_size;
    b.name = rel;
    return b;
  }
  bool is_dir() const override { return true; }

 private:
  std::string dir_;
  UniqueFd root_;
};

struct Member {
  uint64_t offset = 0, length = 0;
  std::string link;  // for symlink/hardlink members: the member they resolve to
};

class TarFiles : public InputFiles {
 public:
  TarFiles(std::shared_ptr<UniqueFd> fd, std::string label) : fd_(std::move(fd)), label_(std::move(label)) {
    index();
  }
  bool exists(const std::string& rel) const override { return find(rel) != nullptr; }
  BlobRef blob(const std::string& rel) const override {
    const Member* m = find(rel);
    if (!m) throw Error(rel + ": missing from " + label_);
    BlobRef b;
    b.file = fd_;
    b.offset = m->offset;
    b.length = m->length;
    b.name = rel;
    return b;
  }
  bool is_dir() const override { return false; }

 private:
  const Member* find(const std::string& rel) const {
    std::string key;
    try {
      key = clean_entry_path(rel);
    } catch (const Error&) {
      return nullptr;
    }
    for (int hops = 0; hops < 16; hops++) {
      auto it = members_.find(key);
      if (it == members_.end()) return nullptr;
      if (it->second.link.empty()) return &it->second;
      key = it->second.link;
    }
    return nullptr;
  }

  void index() {
    struct stat st;
    if (fstat(fd_->get(), &st) != 0) throw_errno(label_);
    uint64_t size = st.st_size, pos = 0;
    uint8_t blk[kTarBlock];
    std::optional<std::string> pax_path, pax_link, gnu_name, gnu_link;
    std::optional<int64_t> pax_size;
    bool any = false;
    while (pos + kTarBlock <= size) {
      if (pread(fd_->get(), blk, kTarBlock, pos) != static_cast<ssize_t>(kTarBlock)) throw_errno(label_);
      pos += kTarBlock;
      if (tar_block_is_zero(blk)) return;
      auto h = parse_tar_header(blk);
      if (!h) throw Error(label_ + ": not a tar archive (bad header at byte " + std::to_string(pos - kTarBlock) + ")");
      any = true;
      char t = h->typeflag;
      int64_t dsize = (t == 'x' || t == 'L' || t == 'K') ? h->size : (pax_size ? *pax_size : h->size);
      if (tar_type_is_header_only(t)) dsize = 0;
      if (pos + dsize > size) throw Error(label_ + ": archive ends early (" + h->name + " is truncated)");
      if (t == 'x' || t == 'L' || t == 'K') {
        if (dsize > (1 << 20)) throw Error(label_ + ": tar extended header too large");
        std::string data(dsize, '\0');
        if (pread(fd_->get(), data.data(), dsize, pos) != dsize) throw_errno(label_);
        if (t == 'x' && !apply_pax_records(data, pax_path, pax_link, pax_size))
          throw Error(label_ + ": invalid PAX header");
        if (t == 'L') gnu_name = data.substr(0, data.find('\0'));
        if (t == 'K') gnu_link = data.substr(0, data.find('\0'));
      } else {
        std::string name = pax_path ? *pax_path : gnu_name ? *gnu_name : h->name;
        std::string link = pax_link ? *pax_link : gnu_link ? *gnu_link : h->linkname;
        try {
          std::string key = clean_entry_path(name);
          Member m{pos, static_cast<uint64_t>(dsize), {}};
          if (t == '1') m.link = clean_entry_path(link);
          if (t == '2') {
            auto [parent, base] = split_parent(key);
            m.link = clean_entry_path(link[0] == '/' ? link.substr(1) : (parent.empty() ? link : parent + "/" + link));
          }
          if (t == '0' || t == '\0' || t == '7' || t == '1' || t == '2') members_[key] = m;
        } catch (const Error&) {
          // Names we could never look up ("..", absolute) are simply not indexed.
        }
        pax_path.reset(), pax_link.reset(), pax_size.reset(), gnu_name.reset(), gnu_link.reset();
      }
      pos += dsize + tar_padding(dsize);
    }
    if (!any) throw Error(label_ + ": not a tar archive");
    if (pos < size) throw Error(label_ + ": archive ends early");
  }

  std::shared_ptr<UniqueFd> fd_;
  std::string label_;
  std::map<std::string, Member> members_;
};

// Copies (and decompresses) `in` into an unlinked temp file in `spool_dir`, at most
// `max_bytes` of it (the temp file goes with the error).
UniqueFd spool(int in, const std::string& spool_dir, const std::string& label,
               uint64_t max_bytes = UINT64_MAX, const std::string& cap_hint = "") {
  UniqueFd out(::open(spool_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!out) throw_errno("temp file in " + spool_dir);
  std::vector<uint8_t> buf(1 << 20);
  std::unique_ptr<Decompressor> dec;
  uint64_t spooled = 0;
  auto sink = [&](const uint8_t* p, size_t n) {
    if (n > max_bytes - spooled)
      throw Error(label + ": more than " + std::to_string(max_bytes) + " bytes" + cap_hint);
    spooled += n;
    while (n) {
      ssize_t w = ::write(out.get(), p, n);
      if (w < 0) throw_errno("spool " + label);
      p += w;
      n -= w;
    }
  };
  ssize_t n;
  while ((n = ::read(in, buf.data(), buf.size())) > 0) {
    if (!dec) dec = make_decompressor(detect_compression(buf.data(), n));
    dec->feed(buf.data(), n, sink);
  }
  if (n < 0) throw_errno("read " + label);
  if (!dec) throw Error(label + ": empty input");
  try {
    dec->finish();
  } catch (const Error& e) {
    throw Error(label + ": " + e.what());
  }
  return out;
}

}  // namespace

std::unique_ptr<InputFiles> open_dir_files(const std::string& dir) { return std::make_unique<DirFiles>(dir); }

std::unique_ptr<InputFiles> open_input_files(const std::string& path, const std::string& spool_dir,
                                             uint64_t max_stdin_bytes) {
  // A stream read once into a spool. With no room for one (max_stdin_bytes 0: a lazy mount,
  // which reads blobs where they lie), say so rather than name a cap the command lacks.
  auto spool_stream = [&](int in, const std::string& label) {
    if (max_stdin_bytes == 0)
      throw Error(label + ": a stream cannot be read in place: give an archive file or a directory");
    auto fd = std::make_shared<UniqueFd>(
        spool(in, spool_dir, label, max_stdin_bytes, " to spool (raise the cap with --max-stdin-size)"));
    return std::make_unique<TarFiles>(fd, label);
  };
  if (path == "-") return spool_stream(0, "stdin");
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw_errno(path);
  if (S_ISDIR(st.st_mode)) return open_dir_files(path);
  if (!S_ISREG(st.st_mode)) {
    // A pipe (`-i <(zcat x.tar.gz)`, /dev/stdin) or a device: it reads once, from the start,
    // where an archive is read at offsets.
    UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) throw_errno(path);
    return spool_stream(in.get(), path);
  }
  auto fd = std::make_shared<UniqueFd>(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd->valid()) throw_errno(path);
  uint8_t magic[4] = {0, 0, 0, 0};
  ssize_t n = pread(fd->get(), magic, sizeof magic, 0);
  if (n > 0 && detect_compression(magic, n) != Compression::Plain) {
    fd = std::make_shared<UniqueFd>(spool(fd->get(), spool_dir, path));
  }
  return std::make_unique<TarFiles>(fd, path);
}

}  // namespace strata
