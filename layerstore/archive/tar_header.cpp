#include "layerstore/archive/tar_header.hpp"

#include <cstring>

namespace strata {

bool tar_block_is_zero(const uint8_t* blk) {
  for (size_t i = 0; i < kTarBlock; i++)
    if (blk[i]) return false;
  return true;
}

static std::string cstr_field(const uint8_t* p, size_t n) {
  size_t len = 0;
  while (len < n && p[len]) len++;
  return std::string(reinterpret_cast<const char*>(p), len);
}

// Octal (space/NUL padded) or, with the high bit of the first byte set, base-256.
static std::optional<int64_t> numeric_field(const uint8_t* p, size_t n) {
  if (n && (p[0] & 0x80)) {
    if (p[0] & 0x40) return std::nullopt;  // negative: never valid for sizes
    uint64_t v = p[0] & 0x3f;
    for (size_t i = 1; i < n; i++) {
      if (v >> 55) return std::nullopt;
      v = (v << 8) | p[i];
    }
    return static_cast<int64_t>(v);
  }
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == 0)) i++;
  int64_t v = 0;
  bool any = false;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
    if (v >> 60) return std::nullopt;
    v = v * 8 + (p[i] - '0');
    any = true;
  }
  for (; i < n; i++)
    if (p[i] != ' ' && p[i] != 0) return std::nullopt;
  return any ? v : 0;
}

std::optional<TarHeaderFields> parse_tar_header(const uint8_t* blk) {
  auto chk = numeric_field(blk + 148, 8);
  if (!chk) return std::nullopt;
  int64_t unsigned_sum = 0, signed_sum = 0;
  for (size_t i = 0; i < kTarBlock; i++) {
    uint8_t c = (i >= 148 && i < 156) ? ' ' : blk[i];
    unsigned_sum += c;
    signed_sum += static_cast<int8_t>(c);
  }
  if (*chk != unsigned_sum && *chk != signed_sum) return std::nullopt;
  auto size = numeric_field(blk + 124, 12);
  if (!size) return std::nullopt;
  TarHeaderFields h;
  h.typeflag = static_cast<char>(blk[156]);
  h.size = *size;
  h.name = cstr_field(blk, 100);
  h.linkname = cstr_field(blk + 157, 100);
  // ustar ("ustar\0" "00") has a 155-byte prefix; GNU ("ustar  \0") uses it for times.
  bool ustar = std::memcmp(blk + 257, "ustar\0", 6) == 0;
  if (ustar) {
    std::string prefix = cstr_field(blk + 345, 155);
    if (!prefix.empty()) h.name = prefix + "/" + h.name;
  }
  return h;
}

bool tar_type_is_header_only(char t) {
  return t == '1' || t == '2' || t == '3' || t == '4' || t == '5' || t == '6';
}

bool apply_pax_records(std::string_view rec, std::optional<std::string>& path,
                       std::optional<std::string>& linkpath, std::optional<int64_t>& size) {
  while (!rec.empty()) {
    size_t sp = rec.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 20) return false;
    size_t len = 0;
    for (size_t i = 0; i < sp; i++) {
      if (rec[i] < '0' || rec[i] > '9') return false;
      len = len * 10 + (rec[i] - '0');
    }
    if (len <= sp + 1 || len > rec.size() || rec[len - 1] != '\n') return false;
    std::string_view kv = rec.substr(sp + 1, len - sp - 2);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return false;
    std::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key == "path") path = std::string(value);
    else if (key == "linkpath") linkpath = std::string(value);
    else if (key == "size") {
      int64_t v = 0;
      if (value.empty() || value.size() > 18) return false;
      for (char c : value) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
      }
      size = v;
    } else if (key.substr(0, 11) == "GNU.sparse.") {
      return false;  // PAX sparse files: not supported (never produced by image builders)
    }
    rec.remove_prefix(len);
  }
  return true;
}

}  // namespace strata
