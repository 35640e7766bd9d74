// Rebuilds a layer tar from tar-split.json.gz and the layer's diff dir (what `tar-split asm`
// does), so `verify` can hash the result against the diff_id and `save` can export it.
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "layerstore/archive/safe_path.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/error.hpp"

namespace strata {

static std::string read_gzip_file(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) throw Error(path + ": cannot open");
  std::string out;
  std::vector<char> buf(1 << 20);
  int n;
  while ((n = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()))) > 0) out.append(buf.data(), n);
  int errnum = 0;
  const char* msg = gzerror(gz, &errnum);
  std::string why = errnum < 0 ? msg : "";
  gzclose(gz);
  if (n < 0 || errnum < 0) throw Error(path + ": corrupt gzip (" + why + ")");
  return out;
}

void assemble_tar_split_json(std::string_view all, const TarSplitFileData& file_data, const TarByteSink& sink) {
  size_t pos = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    if (nl == std::string::npos) nl = all.size();
    std::string_view line(all.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error("tar-split: malformed entry");
    int type = j.value("type", 0);
    if (type == 2) {
      std::string raw = base64_decode(j.value("payload", std::string()));
      sink(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
      continue;
    }
    if (type != 1) throw Error("tar-split: unknown entry type");
    int64_t size = j.value("size", int64_t{0});
    if (size <= 0) continue;
    std::string name = j.contains("name_raw") ? base64_decode(j["name_raw"].get<std::string>())
                                              : j.value("name", std::string());
    uint64_t crc = 0;
    int64_t got_bytes = 0;
    file_data(name, size, [&](const uint8_t* p, size_t n) {
      crc = crc64_iso(crc, p, n);
      got_bytes += static_cast<int64_t>(n);
      sink(p, n);
    });
    if (got_bytes != size) throw Error("layer file " + name + " is shorter than recorded");
    std::string want = base64_decode(j["payload"].is_string() ? j["payload"].get<std::string>() : "");
    std::string got(8, '\0');
    for (int i = 0; i < 8; i++) got[i] = static_cast<char>(crc >> (56 - 8 * i));
    if (want != got) throw Error("layer file " + name + " content differs from the loaded layer (CRC-64)");
  }
}

void assemble_tar_split(const std::string& tar_split_gz_path, int diff_dirfd, const TarByteSink& sink) {
  std::string all = read_gzip_file(tar_split_gz_path);
  std::vector<uint8_t> buf(1 << 20);
  auto from_diff_dir = [&](const std::string& name, int64_t size, const TarByteSink& emit) {
    std::string rel = clean_entry_path(name);
    int err = 0;
    UniqueFd fd = open_beneath(diff_dirfd, rel, O_RDONLY | O_NOFOLLOW, 0, err);
    if (!fd) throw SysError("layer file " + rel, err);
    int64_t left = size;
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.data(), std::min<int64_t>(left, static_cast<int64_t>(buf.size())));
      if (n < 0) throw_errno("read " + rel);
      if (n == 0) throw Error("layer file " + rel + " is shorter than recorded");
      emit(buf.data(), n);
      left -= n;
    }
  };
  try {
    assemble_tar_split_json(all, from_diff_dir, sink);
  } catch (const SysError&) {
    throw;
  } catch (const Error& e) {
    std::string what = e.what();
    if (what.starts_with("tar-split: ")) throw Error(tar_split_gz_path + ": " + what.substr(11));
    throw;
  }
}

}  // namespace strata
