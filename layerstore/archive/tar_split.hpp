#pragma once
// tar-split (github.com/vbatts/tar-split): the per-layer record that lets `save` rebuild the
// layer tar byte for byte from the extracted files. libarchive does not expose raw header
// bytes, so TarSplitRecorder scans the same decompressed stream block by block, in
// parallel with extraction, the way tar-split's own disassembler walks Go's archive/tar.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "layerstore/archive/tar_header.hpp"
#include "layerstore/archive/tar_sparse.hpp"
#include "layerstore/archive/unique_fd.hpp"

namespace strata {

// CRC-64/ISO as Go's hash/crc64 with the ISO table (what tar-split stores per file).
uint64_t crc64_iso(uint64_t crc, const uint8_t* p, size_t n);
std::string base64_encode(std::string_view bytes);
std::string base64_decode(std::string_view text);  // throws strata::Error on bad input
// A JSON string literal as Go's encoding/json writes it (HTML-safe escapes).
std::string go_json_string(std::string_view s);

struct TarSplitLimits {
  uint64_t max_entries = 10'000'000;
  uint64_t max_meta_bytes = 1 << 20;  // one PAX or GNU long-name record
  uint64_t max_sparse_bytes = uint64_t(256) << 20;  // packed data of sparse files, per layer
  // false: read and check only, no record (a lazy layer keeps none): no CRC-64 of every
  // file's data and no JSON, a tenth of a lazy index pass's CPU.
  bool keep_record = true;
};

// Receives each entry the recorder reads, as Go's archive/tar reads it (global headers
// excepted): layer_unpack.cpp checks libarchive reads the same.
using TarEntrySink = std::function<void(TarEntryView&&)>;
// Receives the map of the sparse file the sink was just given, once it is read and checked
// (with the header for PAX 0.x; from the start of the data for 1.0, whose data then holds
// the map's `map_bytes` first): where its regions' bytes lie in the tar (lazy layers).
using SparseMapSink = std::function<void(const std::vector<SparseRegion>& regions, int64_t map_bytes)>;

// Reads the tar as Go's archive/tar does and refuses (strata::Error) what Go refuses and
// what Docker's extraction refuses (types other than file, link, symlink, device, dir,
// fifo, so old GNU sparse 'S' entries too). A PAX sparse file (tar_sparse.hpp) is a regular
// file of its expanded size; its packed data is recorded as raw bytes (a segment) after a
// file entry of size 0, since the extracted file holds the expanded form.
class TarSplitRecorder {
 public:
  TarSplitRecorder(TarSplitLimits limits = {}, TarEntrySink sink = {}) : limits_(limits), sink_(std::move(sink)) {}
  void on_sparse_map(SparseMapSink sink) { sparse_sink_ = std::move(sink); }
  // Feed every decompressed byte, in order. Throws strata::Error on a malformed tar.
  void feed(const uint8_t* p, size_t n);
  // End of stream: flushes trailing bytes; throws if it ended inside a header or file.
  void finish();
  // Newline-separated JSON entries (before gzip).
  const std::string& json() const { return json_; }
  uint64_t entries() const { return entries_; }

 private:
  enum class State { Header, Meta, Data, Padding, Trailing };
  void on_header_block();
  void on_meta_done();
  TarEntryView go_entry(const TarHeaderFields& h);
  [[noreturn]] void refuse(const std::string& why) const;
  [[noreturn]] void refuse_entry(uint64_t entry, const std::string& why) const;
  void emit_segment();
  void emit_file(const std::string& name, int64_t size, bool with_crc);
  void on_sparse_data(const uint8_t* p, size_t k);
  void on_sparse_data_end();
  void check_sparse_regions(uint64_t entry);

  TarSplitLimits limits_;
  TarEntrySink sink_;
  SparseMapSink sparse_sink_;
  State state_ = State::Header;
  uint8_t blk_[kTarBlock];
  size_t blk_fill_ = 0;
  std::string raw_;        // bytes since the last segment: padding, meta headers, header
  std::string meta_;       // PAX / GNU long-name payload being read
  char meta_type_ = 0;
  int64_t remaining_ = 0;  // data or meta or padding bytes left
  bool pending_zero_ = false;
  // What the meta headers since the last entry said: Go keeps only the last PAX header's
  // records and the last GNU long name and link.
  std::optional<std::map<std::string, std::string>> pax_;
  std::string gnu_name_, gnu_link_;
  std::string cur_name_;
  int64_t cur_size_ = 0;   // data bytes of the current entry in the stream
  int64_t data_size_ = 0;  // the same, as go_entry found it
  // A GNU sparse file (tar_sparse.hpp) being read: its expanded size, the start of its data
  // while a 1.0 map is read, and the bytes the map took (-1 until read).
  std::optional<SparseFile> sparse_;
  int64_t sparse_size_ = 0;
  std::string sparse_head_;
  // Newlines in the whole blocks of sparse_head_ (up to sparse_scanned_), and how many the
  // map needs before parsing it again is worth it: a map fed in 1-byte pieces (1-byte gzip
  // members) was parsed whole for each piece, hours of CPU for a 1 MiB map.
  size_t sparse_scanned_ = 0;
  int64_t sparse_newlines_ = 0, sparse_newlines_needed_ = 1;
  int64_t sparse_map_bytes_ = 0;
  uint64_t sparse_recorded_ = 0;
  uint64_t crc_ = 0;
  uint64_t entries_ = 0;     // headers, meta headers included (the limit)
  uint64_t go_entries_ = 0;  // entries Go returns, global headers excepted
  int64_t position_ = 0;
  std::string json_;
};

// Writes json as gzip to `path` relative to dirfd (the layerdb staging dir).
void write_tar_split_gz(int dirfd, const char* name, const std::string& json);

using TarByteSink = std::function<void(const uint8_t*, size_t)>;

// Rebuilds the layer tar from tar-split + the diff dir, feeding every byte to `sink`.
// Throws strata::Error when a file is missing or its CRC differs.
void assemble_tar_split(const std::string& tar_split_gz_path, int diff_dirfd, const TarByteSink& sink);

// The same from the (uncompressed) JSON lines, with a file's `size` data bytes handed to
// `emit` by `file_data` (the diff dir above; the fuzzer, the bytes libarchive read).
using TarSplitFileData = std::function<void(const std::string& name, int64_t size, const TarByteSink& emit)>;
void assemble_tar_split_json(std::string_view json, const TarSplitFileData& file_data, const TarByteSink& sink);

}  // namespace strata
