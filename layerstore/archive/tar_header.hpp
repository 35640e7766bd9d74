#pragma once
// Raw ustar/PAX/GNU header fields, read exactly the way Go's archive/tar (1.19) reads them:
// Docker and tar-split are Go, so Go's reading is what a layer tar means. Every place where
// Go rejects a header ("archive/tar: invalid tar header") is a rejection here too.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace strata {

constexpr size_t kTarBlock = 512;

struct TarHeaderFields {
  std::string name;      // with the ustar/star prefix where Go applies one
  std::string linkname;
  char typeflag = '0';
  int64_t size = 0;      // may be negative (base-256): callers reject that as Go does
  int64_t mode = 0;
  int64_t uid = 0, gid = 0;
  int64_t mtime = 0;
};

// One entry as Go's Reader.Next returns it: PAX records and GNU long names applied, a NUL
// type promoted to '0' or (trailing slash) '5'. `size` is the data that follows (0 for the
// header-only types), `index` counts entries from 1 (global headers not counted).
struct TarEntryView {
  uint64_t index = 0;
  std::string name, linkname;
  char type = '0';
  int64_t size = 0;
  int64_t mode = 0, uid = 0, gid = 0, mtime = 0;
  std::map<std::string, std::string> xattrs;  // SCHILY.xattr.* (what Docker sets)
};

bool tar_block_is_zero(const uint8_t* blk);
// Parses one header block as Go's Reader.readHeader; nullopt (with the reason in `why`)
// where Go returns ErrHeader: bad checksum, unknown magic-less garbage, a numeric field Go
// cannot parse.
std::optional<TarHeaderFields> parse_tar_header(const uint8_t* blk, std::string* why = nullptr);
// True for entry types that never carry data even when their size field says otherwise.
bool tar_type_is_header_only(char typeflag);

// PAX extended header records ("<len> key=value\n"...) as Go's parsePAXRecord: later
// records of the same key win; nullopt when the records are malformed (Go: ErrHeader).
std::optional<std::map<std::string, std::string>> parse_pax_records(std::string_view records);

// The outer archive reader's subset (input_files.cpp): applies path, linkpath and size;
// false when the records are malformed or describe a sparse file.
bool apply_pax_records(std::string_view records, std::optional<std::string>& path,
                       std::optional<std::string>& linkpath, std::optional<int64_t>& size);

// Go's strconv.ParseInt(s, 10, 64) (optional sign, decimal digits, no overflow).
std::optional<int64_t> go_parse_int(std::string_view s);
// Go's parsePAXTime: seconds, optionally "." and digits; returns the seconds.
std::optional<int64_t> go_parse_pax_time(std::string_view s);

// Padding after `size` data bytes to the next block boundary.
inline int64_t tar_padding(int64_t size) { return (kTarBlock - size % kTarBlock) % kTarBlock; }

}  // namespace strata
