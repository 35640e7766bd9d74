#pragma once
// Raw ustar/PAX/GNU header fields, read the way Go's archive/tar reads them (tar-split and
// Docker are Go): numeric fields in octal or base-256, names NUL-terminated, ustar prefix.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace strata {

constexpr size_t kTarBlock = 512;

struct TarHeaderFields {
  std::string name;      // prefix + "/" + name for ustar, raw name otherwise
  std::string linkname;
  char typeflag = '0';
  int64_t size = 0;
};

bool tar_block_is_zero(const uint8_t* blk);
// Parses one header block; nullopt when its checksum is wrong or a numeric field is garbage.
std::optional<TarHeaderFields> parse_tar_header(const uint8_t* blk);
// True for entry types that never carry data even when their size field says otherwise.
bool tar_type_is_header_only(char typeflag);
// PAX extended header records ("<len> key=value\n"...): applies path, linkpath and size.
// Returns false when the records are malformed.
bool apply_pax_records(std::string_view records, std::optional<std::string>& path,
                       std::optional<std::string>& linkpath, std::optional<int64_t>& size);
// Padding after `size` data bytes to the next block boundary.
inline int64_t tar_padding(int64_t size) { return (kTarBlock - size % kTarBlock) % kTarBlock; }

}  // namespace strata
