#include "layerstore/archive/tar_header.hpp"

#include <cstring>
#include <vector>

namespace strata {

bool tar_block_is_zero(const uint8_t* blk) {
  for (size_t i = 0; i < kTarBlock; i++)
    if (blk[i]) return false;
  return true;
}

namespace {

// Go's parser.parseString: the bytes up to the first NUL.
std::string go_string(const uint8_t* p, size_t n) {
  size_t len = 0;
  while (len < n && p[len]) len++;
  return std::string(reinterpret_cast<const char*>(p), len);
}

// Go's parser: `err` is sticky, as p.err is; every failed field makes the header invalid.
struct GoParser {
  bool err = false;

  // parseOctal: trim spaces and NULs on both sides, cut at the first NUL left inside, then
  // strconv.ParseUint(s, 8, 64); an all-blank field is 0.
  int64_t octal(const uint8_t* p, size_t n) {
    size_t b = 0, e = n;
    while (b < e && (p[b] == ' ' || p[b] == 0)) b++;
    while (e > b && (p[e - 1] == ' ' || p[e - 1] == 0)) e--;
    if (b == e) return 0;
    uint64_t v = 0;
    for (size_t i = b; i < e && p[i]; i++) {
      if (p[i] < '0' || p[i] > '7' || (v >> 61)) {
        err = true;
        return 0;
      }
      v = v * 8 + (p[i] - '0');
    }
    return static_cast<int64_t>(v);
  }

  // parseNumeric: base-256 two's complement when the top bit is set, octal otherwise.
  int64_t numeric(const uint8_t* p, size_t n) {
    if (n == 0 || !(p[0] & 0x80)) return octal(p, n);
    uint8_t inv = (p[0] & 0x40) ? 0xff : 0x00;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
      uint8_t c = p[i] ^ inv;
      if (i == 0) c &= 0x7f;
      if (x >> 56) {
        err = true;
        return 0;
      }
      x = (x << 8) | c;
    }
    if (x >> 63) {
      err = true;
      return 0;
    }
    return inv ? ~static_cast<int64_t>(x) : static_cast<int64_t>(x);
  }
};

bool is_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

enum class Magic { V7, Ustar, Star, Gnu };

}  // namespace

std::optional<TarHeaderFields> parse_tar_header(const uint8_t* blk, std::string* why) {
  auto fail = [&](const char* reason) -> std::optional<TarHeaderFields> {
    if (why) *why = reason;
    return std::nullopt;
  };
  // block.GetFormat: the checksum (unsigned or signed byte sum) decides first.
  GoParser chk;
  int64_t want = chk.octal(blk + 148, 8);
  int64_t unsigned_sum = 0, signed_sum = 0;
  for (size_t i = 0; i < kTarBlock; i++) {
    uint8_t c = (i >= 148 && i < 156) ? ' ' : blk[i];
    unsigned_sum += c;
    signed_sum += static_cast<int8_t>(c);
  }
  if (chk.err || (want != unsigned_sum && want != signed_sum)) return fail("bad header checksum");
  Magic magic = Magic::V7;
  if (std::memcmp(blk + 257, "ustar\0", 6) == 0)
    magic = std::memcmp(blk + 508, "tar\0", 4) == 0 ? Magic::Star : Magic::Ustar;
  else if (std::memcmp(blk + 257, "ustar ", 6) == 0 && std::memcmp(blk + 263, " \0", 2) == 0)
    magic = Magic::Gnu;

  GoParser p;
  TarHeaderFields h;
  h.typeflag = static_cast<char>(blk[156]);
  h.name = go_string(blk, 100);
  h.linkname = go_string(blk + 157, 100);
  h.size = p.numeric(blk + 124, 12);
  h.mode = p.numeric(blk + 100, 8);
  h.uid = p.numeric(blk + 108, 8);
  h.gid = p.numeric(blk + 116, 8);
  h.mtime = p.numeric(blk + 136, 12);
  if (magic != Magic::V7) {
    p.numeric(blk + 329, 8);  // devmajor
    p.numeric(blk + 337, 8);  // devminor
    std::string prefix;
    if (magic == Magic::Ustar) {
      prefix = go_string(blk + 345, 155);
    } else if (magic == Magic::Star) {
      prefix = go_string(blk + 345, 131);
      p.numeric(blk + 476, 12);  // atime
      p.numeric(blk + 488, 12);  // ctime
    } else {
      // GNU keeps atime/ctime where ustar has its prefix. Go reads archives of its own
      // pre-1.8 writer, which put a prefix there: atime/ctime that do not parse and an
      // ASCII "prefix" mean the prefix is one.
      GoParser times;
      if (blk[345]) times.numeric(blk + 345, 12);
      if (blk[357]) times.numeric(blk + 357, 12);
      if (times.err) {
        std::string s = go_string(blk + 345, 155);
        if (is_ascii(s)) prefix = s;
      }
    }
    if (!prefix.empty()) h.name = prefix + "/" + h.name;
  }
  if (p.err) return fail("a numeric header field does not parse");
  return h;
}

bool tar_type_is_header_only(char t) {
  return t == '1' || t == '2' || t == '3' || t == '4' || t == '5' || t == '6';
}

std::optional<int64_t> go_parse_int(std::string_view s) {
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    if (v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (neg ? v > (uint64_t{1} << 63) : v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return neg ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
}

std::optional<int64_t> go_parse_pax_time(std::string_view s) {
  std::string_view secs = s, frac;
  if (size_t dot = s.find('.'); dot != std::string_view::npos) {
    secs = s.substr(0, dot);
    frac = s.substr(dot + 1);
  }
  auto v = go_parse_int(secs);
  if (!v) return std::nullopt;
  bool below = false;  // a fraction of a negative time moves it one second down (time.Unix)
  for (size_t i = 0; i < frac.size(); i++) {
    if (frac[i] < '0' || frac[i] > '9') return std::nullopt;
    if (i < 9 && frac[i] != '0') below = true;
  }
  if (below && !secs.empty() && secs[0] == '-') return *v - 1;
  return v;
}

std::optional<std::map<std::string, std::string>> parse_pax_records(std::string_view rec) {
  std::map<std::string, std::string> out;
  // GNU sparse format 0.0 repeats GNU.sparse.offset/numbytes pairs; Go joins them, in order,
  // into GNU.sparse.map (which 0.1 writes directly) and refuses any other order.
  std::vector<std::string> sparse_map;
  while (!rec.empty()) {
    size_t sp = rec.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    auto n = go_parse_int(rec.substr(0, sp));
    if (!n || *n < 5 || static_cast<uint64_t>(*n) > rec.size()) return std::nullopt;
    size_t len = static_cast<size_t>(*n);
    if (sp + 1 >= len - 1) return std::nullopt;
    if (rec[len - 1] != '\n') return std::nullopt;
    std::string_view kv = rec.substr(sp + 1, len - 1 - (sp + 1));
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0) return std::nullopt;
    std::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
    bool string_key = key == "path" || key == "linkpath" || key == "uname" || key == "gname";
    if (string_key ? value.find('\0') != std::string_view::npos : key.find('\0') != std::string_view::npos)
      return std::nullopt;
    if (key == "GNU.sparse.offset" || key == "GNU.sparse.numbytes") {
      bool want_offset = sparse_map.size() % 2 == 0;
      if ((key == "GNU.sparse.offset") != want_offset || value.find(',') != std::string_view::npos)
        return std::nullopt;
      sparse_map.emplace_back(value);
    } else {
      out[std::string(key)] = std::string(value);
    }
    rec.remove_prefix(len);
  }
  if (!sparse_map.empty()) {
    // Go drops a GNU.sparse.map record for the 0.0 ones; libarchive applies both, one after
    // the other. Refused so that both read one map (Go would read this header).
    if (out.count("GNU.sparse.map")) return std::nullopt;
    std::string joined;
    for (size_t i = 0; i < sparse_map.size(); i++) joined += (i ? "," : "") + sparse_map[i];
    out["GNU.sparse.map"] = joined;
  }
  return out;
}

bool apply_pax_records(std::string_view rec, std::optional<std::string>& path,
                       std::optional<std::string>& linkpath, std::optional<int64_t>& size) {
  auto records = parse_pax_records(rec);
  if (!records) return false;
  for (const auto& [key, value] : *records) {
    if (key.starts_with("GNU.sparse.")) return false;
    if (value.empty()) continue;  // Go keeps the header's value
    if (key == "path") path = value;
    else if (key == "linkpath") linkpath = value;
    else if (key == "size") {
      auto v = go_parse_int(value);
      if (!v || *v < 0) return false;
      size = *v;
    }
  }
  return true;
}

}  // namespace strata
