#include "layerstore/archive/tar_sparse.hpp"

#include <algorithm>

#include "layerstore/archive/tar_header.hpp"

namespace strata {

namespace {

std::string record(const std::map<std::string, std::string>& pax, const char* key) {
  auto it = pax.find(key);
  return it == pax.end() ? std::string() : it->second;
}

constexpr size_t kBlock = 512;

// libarchive reads the numbers of a sparse map with its own parser, which stops at the first
// byte that is not a digit ("+6" is 0 to it, 6 to Go): only plain digits mean the same to both.
bool plain_decimal(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<int64_t> parse_number(std::string_view s) {
  if (!plain_decimal(s)) return std::nullopt;
  return go_parse_int(s);
}

bool any_sparse_record(const std::map<std::string, std::string>& pax) {
  auto it = pax.lower_bound("GNU.sparse.");
  return it != pax.end() && it->first.starts_with("GNU.sparse.");
}

}  // namespace

std::optional<SparseFile> sparse_from_pax(const std::map<std::string, std::string>& pax, std::string& error) {
  SparseFile f;
  std::string major = record(pax, "GNU.sparse.major"), minor = record(pax, "GNU.sparse.minor");
  if (major == "0" && (minor == "0" || minor == "1")) f.map_in_data = false;
  else if (major == "1" && minor == "0") f.map_in_data = true;
  else if (!major.empty() || !minor.empty()) {
    // A version Go does not know: to Go a plain file, but libarchive applies whatever map
    // the records give ("01" is version 1 to it), so the two would extract different data.
    error = "GNU sparse version " + major + "." + minor + " (Go reads a plain file, libarchive a sparse one)";
    return std::nullopt;
  }
  else if (!record(pax, "GNU.sparse.map").empty()) f.map_in_data = false;  // 0.0 and 0.1 name no version
  else if (any_sparse_record(pax)) {
    // No map and no version: to Go a plain file, but libarchive applies a size or name.
    error = "GNU.sparse records without a map or version (Go reads a plain file, libarchive a sparse one)";
    return std::nullopt;
  } else {
    return std::nullopt;
  }

  if (std::string name = record(pax, "GNU.sparse.name"); !name.empty()) f.name = name;
  std::string size = record(pax, "GNU.sparse.size");
  if (size.empty()) size = record(pax, "GNU.sparse.realsize");
  if (!size.empty()) {
    f.size = parse_number(size);
    if (!f.size) {
      error = "invalid GNU.sparse size " + size;
      return std::nullopt;
    }
  }
  if (f.map_in_data) {
    // A 0.x map next to a 1.0 one: Go reads the one in the data; libarchive takes whichever
    // version its records name last.
    if (pax.count("GNU.sparse.map") || pax.count("GNU.sparse.numblocks")) {
      error = "GNU sparse 1.0 file with a 0.x map too";
      return std::nullopt;
    }
    return f;
  }

  auto count = parse_number(record(pax, "GNU.sparse.numblocks"));
  if (!count || *count < 0 || *count > INT64_MAX / 2) {
    error = "invalid GNU.sparse.numblocks";
    return std::nullopt;
  }
  std::vector<std::string_view> numbers;
  std::string map = record(pax, "GNU.sparse.map");
  for (std::string_view rest = map; !map.empty();) {
    size_t comma = rest.find(',');
    numbers.push_back(rest.substr(0, comma));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (int64_t(numbers.size()) != 2 * *count) {
    error = "GNU.sparse.map does not hold GNU.sparse.numblocks regions";
    return std::nullopt;
  }
  for (size_t i = 0; i + 1 < numbers.size(); i += 2) {
    auto off = parse_number(numbers[i]), len = parse_number(numbers[i + 1]);
    if (!off || !len) {
      error = "invalid GNU.sparse.map";
      return std::nullopt;
    }
    f.regions.push_back({*off, *len});
  }
  return f;
}

size_t parse_sparse_map_1x0(std::string_view head, std::vector<SparseRegion>& regions, std::string& error,
                            int64_t* newlines_needed) {
  // Go reads whole blocks until they hold enough newlines: one for the count, then two per
  // region; the tokens are the text between newlines.
  size_t blocks = head.size() / kBlock;
  std::string_view text = head.substr(0, blocks * kBlock);
  std::vector<std::string_view> tokens;
  size_t at = 0;
  auto next_token = [&]() -> bool {
    size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) return false;
    tokens.push_back(text.substr(at, nl - at));
    at = nl + 1;
    return true;
  };
  if (newlines_needed) *newlines_needed = 1;
  if (!next_token()) return 0;
  auto count = parse_number(tokens[0]);
  if (!count || *count < 0 || *count > INT64_MAX / 2) {
    error = "invalid sparse map (region count)";
    return 0;
  }
  if (newlines_needed) *newlines_needed = 1 + 2 * *count;
  for (int64_t i = 0; i < 2 * *count; i++)
    if (!next_token()) return 0;
  regions.clear();
  for (size_t i = 1; i + 1 < tokens.size(); i += 2) {
    auto off = parse_number(tokens[i]), len = parse_number(tokens[i + 1]);
    if (!off || !len) {
      error = "invalid sparse map";
      return 0;
    }
    regions.push_back({*off, *len});
  }
  // The blocks Go read: up to the one holding the last newline it needed.
  return (at + kBlock - 1) / kBlock * kBlock;
}

bool sparse_regions_valid(const std::vector<SparseRegion>& regions, int64_t size) {
  if (size < 0) return false;
  int64_t previous_end = 0;
  for (const auto& r : regions) {
    if (r.offset < 0 || r.length < 0 || r.offset > INT64_MAX - r.length) return false;
    if (r.offset + r.length > size || previous_end > r.offset) return false;
    previous_end = r.offset + r.length;
  }
  return true;
}

int64_t sparse_data_size(const std::vector<SparseRegion>& regions) {
  int64_t total = 0;
  for (const auto& r : regions) {
    if (r.length < 0 || total > INT64_MAX - r.length) return -1;
    total += r.length;
  }
  return total;
}

}  // namespace strata
