// GNU sparse files in PAX form (formats 0.0, 0.1 and 1.0, what GNU tar --sparse
// --format=posix writes), read as Go's archive/tar reads them: the entry is a regular file of
// GNU.sparse.realsize bytes (GNU.sparse.size in 0.x), named GNU.sparse.name, whose data
// holds only the regions of the map, in order; everything else reads as zeros. 0.0 gives the
// map as repeated GNU.sparse.offset/numbytes records (parse_pax_records joins them), 0.1 as
// GNU.sparse.map, 1.0 as decimal lines at the start of the data, padded to whole blocks.
// Docker extracts the expanded file. Old GNU type 'S' entries are not handled here: Go returns
// them as type 'S' and Docker refuses them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata {

struct SparseRegion {
  int64_t offset = 0, length = 0;
};

struct SparseFile {
  bool map_in_data = false;           // format 1.0
  std::optional<int64_t> size;        // the expanded size, when the records give one
  std::optional<std::string> name;    // GNU.sparse.name
  std::vector<SparseRegion> regions;  // 0.x: from the records; 1.0: parse_sparse_map_1x0
};

// What the PAX records of an entry say: nullopt when they make no sparse file (no GNU sparse
// records); `error` set where Go returns ErrHeader, and where libarchive (extraction) would
// read another map than Go: a version Go does not know, sparse records without a map,
// numbers other than plain digits, a 1.0 file with 0.x records too.
std::optional<SparseFile> sparse_from_pax(const std::map<std::string, std::string>& pax, std::string& error);

// Format 1.0: the map at the start of the data, read in whole blocks as Go reads it. Returns
// the bytes it takes (a multiple of 512) once `head` holds all of it, 0 while more is needed;
// `error` set where Go returns ErrHeader. While more is needed, `*newlines_needed` (if given)
// is how many newlines the whole blocks must hold before another call can succeed, so a
// caller fed in small pieces need not parse again before then.
size_t parse_sparse_map_1x0(std::string_view head, std::vector<SparseRegion>& regions, std::string& error,
                            int64_t* newlines_needed = nullptr);

// Go's validateSparseEntries: regions within `size`, in order, not overlapping.
bool sparse_regions_valid(const std::vector<SparseRegion>& regions, int64_t size);

// The bytes of data the regions hold; -1 on overflow.
int64_t sparse_data_size(const std::vector<SparseRegion>& regions);

}  // namespace strata
