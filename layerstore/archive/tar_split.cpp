#include "layerstore/archive/tar_split.hpp"

#include <isa-l/crc64.h>
#include <fcntl.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "layerstore/error.hpp"

namespace strata {

uint64_t crc64_iso(uint64_t crc, const uint8_t* p, size_t n) { return crc64_iso_refl(crc, p, n); }

static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto u = [&](size_t k) { return static_cast<uint8_t>(in[k]); };
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (u(i) << 16) | (u(i + 1) << 8) | u(i + 2);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = u(i) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (u(i) << 16) | (u(i + 1) << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4) throw Error("tar-split: bad base64 length");
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int a = val(in[i]), b = val(in[i + 1]);
    int c = in[i + 2] == '=' ? 0 : val(in[i + 2]);
    int d = in[i + 3] == '=' ? 0 : val(in[i + 3]);
    if (a < 0 || b < 0 || c < 0 || d < 0) throw Error("tar-split: bad base64");
    uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
    out += static_cast<char>(v >> 16);
    if (in[i + 2] != '=') out += static_cast<char>((v >> 8) & 255);
    if (in[i + 3] != '=') out += static_cast<char>(v & 255);
  }
  return out;
}

static bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    uint8_t c = s[i];
    int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (extra < 0 || i + extra >= s.size() + (extra == 0)) return false;
    for (int k = 1; k <= extra; k++)
      if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
    i += extra + 1;
  }
  return true;
}

std::string go_json_string(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); i++) {
    uint8_t c = s[i];
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '<': case '>': case '&':
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else if (c == 0xE2 && i + 2 < s.size() && static_cast<uint8_t>(s[i + 1]) == 0x80 &&
                   (static_cast<uint8_t>(s[i + 2]) & 0xFE) == 0xA8) {
          out += (static_cast<uint8_t>(s[i + 2]) == 0xA8) ? "\\u2028" : "\\u2029";
          i += 2;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

void TarSplitRecorder::emit_segment() {
  if (raw_.empty()) return;
  if (!limits_.keep_record) {
    raw_.clear();
    return;
  }
  json_ += "{\"type\":2,\"payload\":\"";
  json_ += base64_encode(raw_);
  json_ += "\",\"position\":" + std::to_string(position_++) + "}\n";
  raw_.clear();
}

void TarSplitRecorder::emit_file(const std::string& name, int64_t size, bool with_crc) {
  if (!limits_.keep_record) return;
  json_ += "{\"type\":1,";
  if (valid_utf8(name)) json_ += "\"name\":" + go_json_string(name) + ",";
  else json_ += "\"name_raw\":\"" + base64_encode(name) + "\",";
  if (size) json_ += "\"size\":" + std::to_string(size) + ",";
  if (with_crc) {
    std::string be(8, '\0');
    for (int i = 0; i < 8; i++) be[i] = static_cast<char>(crc_ >> (56 - 8 * i));
    json_ += "\"payload\":\"" + base64_encode(be) + "\",";
  } else {
    json_ += "\"payload\":null,";
  }
  json_ += "\"position\":" + std::to_string(position_++) + "}\n";
}

void TarSplitRecorder::refuse(const std::string& why) const { refuse_entry(go_entries_ + 1, why); }

// `entry`: the 1-based number of the entry at fault (the current one once its header is read).
void TarSplitRecorder::refuse_entry(uint64_t entry, const std::string& why) const {
  throw Error("entry " + std::to_string(entry) + ": " + why);
}

void TarSplitRecorder::on_header_block() {
  raw_.append(reinterpret_cast<const char*>(blk_), kTarBlock);
  if (tar_block_is_zero(blk_)) {
    if (pending_zero_) {
      // Two zero blocks: end of archive. Go's reader hands these (with the last padding)
      // back as one raw segment; whatever follows is kept verbatim as trailing segments.
      emit_segment();
      state_ = State::Trailing;
    }
    pending_zero_ = true;
    return;
  }
  if (pending_zero_) refuse("invalid tar: a zero block followed by a header");
  std::string why;
  auto h = parse_tar_header(blk_, &why);
  if (!h) refuse("invalid tar header (" + why + ")");
  if (++entries_ > limits_.max_entries) throw Error("too many tar entries");
  char t = h->typeflag;
  if (t == 'x' || t == 'L' || t == 'K' || t == 'g') {
    if (h->size < 0) refuse("invalid tar header (negative size)");
    if (static_cast<uint64_t>(h->size) > limits_.max_meta_bytes)
      refuse("tar extended header too large (" + std::to_string(h->size) + " bytes)");
    meta_type_ = t;
    meta_.clear();
    remaining_ = h->size;
    cur_name_ = h->name;
    state_ = State::Meta;
    if (remaining_ == 0) on_meta_done();
    return;
  }
  TarEntryView v = go_entry(*h);
  emit_segment();
  cur_name_ = v.name;
  cur_size_ = data_size_;
  crc_ = 0;
  if (sink_) sink_(std::move(v));
  const bool sparse = sparse_.has_value();
  if (sparse) {
    // The packed data (and a 1.0 map) stays in the record as raw bytes: the extracted file
    // is the expanded one, from which the packed form cannot be read back.
    emit_file(cur_name_, 0, false);
    sparse_head_.clear();
    sparse_scanned_ = 0;
    sparse_newlines_ = 0;
    sparse_newlines_needed_ = 1;
    sparse_map_bytes_ = sparse_->map_in_data ? -1 : 0;
    if (!sparse_->map_in_data && sparse_sink_) sparse_sink_(sparse_->regions, 0);
    if (data_size_ == 0) on_sparse_data_end();
  }
  if (data_size_ > 0) {
    remaining_ = data_size_;
    state_ = State::Data;
  } else {
    if (!sparse) emit_file(cur_name_, 0, false);
    state_ = State::Header;
  }
}

// A sparse file's data: the 1.0 map first, then exactly the bytes of its regions (Go fails
// the read of a file whose data is shorter or longer, and Docker with it).
void TarSplitRecorder::on_sparse_data(const uint8_t* p, size_t k) {
  sparse_recorded_ += k;
  if (sparse_recorded_ > limits_.max_sparse_bytes)
    refuse_entry(go_entries_, "sparse files hold more than " + std::to_string(limits_.max_sparse_bytes >> 20) +
           " MiB of data in this layer (their packed data is kept in the layer's tar-split)");
  raw_.append(reinterpret_cast<const char*>(p), k);
  if (raw_.size() >= (1 << 20)) emit_segment();
  if (sparse_map_bytes_ >= 0) return;
  sparse_head_.append(reinterpret_cast<const char*>(p), k);
  size_t whole = sparse_head_.size() / kTarBlock * kTarBlock;
  sparse_newlines_ += std::count(sparse_head_.begin() + sparse_scanned_, sparse_head_.begin() + whole, '\n');
  sparse_scanned_ = whole;
  if (sparse_newlines_ < sparse_newlines_needed_) {
    if (sparse_head_.size() > limits_.max_meta_bytes)
      refuse_entry(go_entries_, "sparse map larger than " + std::to_string(limits_.max_meta_bytes) + " bytes");
    return;
  }
  std::string error;
  size_t used = parse_sparse_map_1x0(sparse_head_, sparse_->regions, error, &sparse_newlines_needed_);
  if (!error.empty()) refuse_entry(go_entries_, "invalid tar header (" + error + ")");
  if (used) {
    sparse_map_bytes_ = int64_t(used);
    check_sparse_regions(go_entries_);
    if (sparse_sink_) sparse_sink_(sparse_->regions, sparse_map_bytes_);
    sparse_head_.clear();
  } else if (sparse_head_.size() > limits_.max_meta_bytes) {
    refuse_entry(go_entries_, "sparse map larger than " + std::to_string(limits_.max_meta_bytes) + " bytes");
  }
}

void TarSplitRecorder::on_sparse_data_end() {
  if (sparse_map_bytes_ < 0) refuse_entry(go_entries_, "sparse file ends inside its map (Go: unexpected EOF)");
  if (data_size_ - sparse_map_bytes_ != sparse_data_size(sparse_->regions))
    refuse_entry(go_entries_, "sparse file data does not match its map (Go reads it with an error)");
  sparse_.reset();
}

void TarSplitRecorder::check_sparse_regions(uint64_t entry) {
  if (!sparse_regions_valid(sparse_->regions, sparse_size_))
    refuse_entry(entry, "invalid tar header (sparse map outside the file or out of order)");
}

// Go's Reader.next for a header that is not a meta header: mergePAX, then the GNU long
// name and link (so they win over PAX path and linkpath), then the V7 NUL type.
TarEntryView TarSplitRecorder::go_entry(const TarHeaderFields& h) {
  TarEntryView v;
  v.index = go_entries_ + 1;
  v.name = h.name;
  v.linkname = h.linkname;
  v.type = h.typeflag;
  v.size = h.size;
  v.mode = h.mode;
  v.uid = h.uid;
  v.gid = h.gid;
  v.mtime = h.mtime;
  // Go expands old GNU sparse entries and returns them as type 'S', which Docker refuses.
  if (v.type == 'S') refuse("GNU sparse files are not supported (Docker refuses them too)");
  auto bad = [&](const std::string& key) { refuse("invalid PAX record " + key); };
  for (const auto& [key, value] : pax_ ? *pax_ : std::map<std::string, std::string>{}) {
    if (value.empty()) continue;  // Go keeps the header's value
    if (key == "path") {
      v.name = value;
    } else if (key == "linkpath") {
      v.linkname = value;
    } else if (key == "size" || key == "uid" || key == "gid") {
      auto n = go_parse_int(value);
      if (!n) bad(key);
      (key == "size" ? v.size : key == "uid" ? v.uid : v.gid) = *n;
    } else if (key == "mtime" || key == "atime" || key == "ctime") {
      auto secs = go_parse_pax_time(value);
      if (!secs) bad(key);
      if (key == "mtime") v.mtime = *secs;
    } else if (key.starts_with("SCHILY.xattr.")) {
      v.xattrs[key.substr(13)] = value;
    }
  }
  if (!gnu_name_.empty()) v.name = gnu_name_;
  if (!gnu_link_.empty()) v.linkname = gnu_link_;
  std::string sparse_error;
  sparse_.reset();
  if (pax_) sparse_ = sparse_from_pax(*pax_, sparse_error);
  if (!sparse_error.empty()) refuse("invalid tar header (" + sparse_error + ")");
  pax_.reset();
  gnu_name_.clear();
  gnu_link_.clear();
  if (v.type == '\0') v.type = v.name.ends_with('/') ? '5' : '0';
  if (tar_type_is_header_only(v.type)) v.size = 0;
  else if (v.size < 0) refuse("invalid tar header (negative size)");
  data_size_ = v.size;  // what follows the header in the stream
  if (sparse_) {
    if (tar_type_is_header_only(v.type)) refuse("invalid tar header (a sparse map on a header-only entry)");
    if (sparse_->name) v.name = *sparse_->name;
    if (sparse_->size) v.size = *sparse_->size;
    sparse_size_ = v.size;
    if (!sparse_->map_in_data) check_sparse_regions(go_entries_ + 1);
  }
  // What Docker's extraction handles; it fails a layer with any other type, so strata
  // does too (libarchive would turn most of them into regular files or skip them).
  if (v.type != '0' && !tar_type_is_header_only(v.type)) {
    char shown[8];
    if (v.type >= 0x21 && v.type < 0x7f) snprintf(shown, sizeof shown, "'%c'", v.type);
    else snprintf(shown, sizeof shown, "0x%02x", static_cast<unsigned char>(v.type));
    refuse(std::string("unsupported tar entry type ") + shown + " (Docker refuses it too)");
  }
  go_entries_++;
  return v;
}

void TarSplitRecorder::on_meta_done() {
  if (meta_type_ == 'x') {
    pax_ = parse_pax_records(meta_);
    if (!pax_) refuse("invalid PAX extended header");
  } else if (meta_type_ == 'L') {
    gnu_name_ = meta_.substr(0, meta_.find('\0'));
  } else if (meta_type_ == 'K') {
    gnu_link_ = meta_.substr(0, meta_.find('\0'));
  } else if (meta_type_ == 'g') {
    // Go's reader returns a global header as an entry of its own (size 0) and forgets the
    // meta headers before it; Docker ignores it, so does libarchive.
    if (!parse_pax_records(meta_)) refuse("invalid PAX global header");
    pax_.reset();
    gnu_name_.clear();
    gnu_link_.clear();
    emit_segment();
    emit_file(cur_name_, 0, false);
  }
  remaining_ = tar_padding(static_cast<int64_t>(meta_.size()));
  state_ = remaining_ ? State::Padding : State::Header;
}

void TarSplitRecorder::feed(const uint8_t* p, size_t n) {
  constexpr size_t kTrailingChunk = 1 << 20;
  while (n) {
    size_t k = 0;
    switch (state_) {
      case State::Header:
        k = std::min(n, kTarBlock - blk_fill_);
        std::memcpy(blk_ + blk_fill_, p, k);
        blk_fill_ += k;
        if (blk_fill_ == kTarBlock) {
          blk_fill_ = 0;
          on_header_block();
        }
        break;
      case State::Meta:
        k = std::min<size_t>(n, remaining_);
        meta_.append(reinterpret_cast<const char*>(p), k);
        raw_.append(reinterpret_cast<const char*>(p), k);
        remaining_ -= k;
        if (remaining_ == 0) on_meta_done();
        break;
      case State::Data:
        k = std::min<size_t>(n, remaining_);
        if (sparse_) on_sparse_data(p, k);
        else if (limits_.keep_record) crc_ = crc64_iso(crc_, p, k);
        remaining_ -= k;
        if (remaining_ == 0) {
          if (sparse_) on_sparse_data_end();
          else emit_file(cur_name_, cur_size_, true);
          remaining_ = tar_padding(cur_size_);
          state_ = remaining_ ? State::Padding : State::Header;
        }
        break;
      case State::Padding:
        k = std::min<size_t>(n, remaining_);
        raw_.append(reinterpret_cast<const char*>(p), k);
        remaining_ -= k;
        if (remaining_ == 0) state_ = State::Header;
        break;
      case State::Trailing:
        k = n;
        raw_.append(reinterpret_cast<const char*>(p), k);
        if (raw_.size() >= kTrailingChunk) emit_segment();
        break;
    }
    p += k;
    n -= k;
  }
}

void TarSplitRecorder::finish() {
  // No end blocks, or even the last padding missing (umoci insert writes such tars): Go's
  // reader, and so Docker, take a clean stop at an entry boundary as the end of the archive.
  if ((state_ == State::Header && blk_fill_ == 0) || state_ == State::Padding) state_ = State::Trailing;
  if (state_ != State::Trailing) throw Error("tar stream ends early (inside " + cur_name_ + ")");
  emit_segment();
}

void write_tar_split_gz(int dirfd, const char* name, const std::string& json) {
  int fd = ::openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw_errno(std::string("create ") + name);
  gzFile gz = gzdopen(fd, "wb");
  if (!gz) {
    ::close(fd);
    throw Error("gzdopen failed");
  }
  size_t off = 0;
  while (off < json.size()) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(json.size() - off, 1 << 30));
    if (gzwrite(gz, json.data() + off, chunk) != static_cast<int>(chunk)) {
      gzclose(gz);
      throw Error(std::string("write ") + name + " failed");
    }
    off += chunk;
  }
  if (gzclose(gz) != Z_OK) throw Error(std::string("write ") + name + " failed");
}

}  // namespace strata
