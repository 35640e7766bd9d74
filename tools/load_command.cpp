#include <cstdint>
#include <cstdio>
#include <string>

#include "layerstore/error.hpp"
#include "layerstore/loader.hpp"
#include "tools/commands.hpp"

namespace strata::cli {
namespace {

// "512M" -> 512 MiB; K, M, G, T are powers of 1024.
uint64_t parse_size(const std::string& s, const std::string& what) {
  size_t end = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(s, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  std::string unit = s.substr(end);
  int shift = unit.empty() ? 0 : unit == "K" || unit == "k" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : unit == "T" ? 40 : -1;
  if (end == 0 || s[0] == '-' || shift < 0 || n == 0 || n > (UINT64_MAX >> shift))
    throw Error("invalid " + what + " \"" + s + "\" (want a positive number of bytes, with K, M, G or T for KiB...TiB)");
  return static_cast<uint64_t>(n) << shift;
}

}  // namespace

int cmd_load(const StoreLayout& l, const LoadArgs& a) {
  LoadOptions o;
  o.input = a.input;
  if (!a.max_stdin_size.empty()) o.max_stdin_bytes = parse_size(a.max_stdin_size, "--max-stdin-size");
  o.platform = parse_platform(a.platform);
  o.lazy = a.lazy;
  if (!a.max_expansion.empty()) o.max_expansion = parse_max_expansion(a.max_expansion);
  if (!a.tag.empty()) {
    auto r = parse_reference(a.tag);
    if (!r || !r->digest.empty()) throw Error("invalid --tag \"" + a.tag + "\" (want NAME[:TAG])");
    o.tag = *r;
  }
  if (!a.registry_dir.empty()) {
    if (a.registry_ref.empty()) throw Error("--registry-dir needs NAME:TAG");
    auto r = parse_reference(a.registry_ref);
    if (!r) throw Error("invalid reference \"" + a.registry_ref + "\"");
    o.registry_dir = a.registry_dir;
    o.registry_ref = *r;
  } else if (!a.registry_ref.empty()) {
    throw Error("unexpected argument \"" + a.registry_ref + "\" (NAME:TAG goes with --registry-dir)");
  }
  Progress progress(Progress::detect(a.quiet));
  LoadSummary s = load_images(l, o, progress);
  for (const auto& line : s.loaded) std::printf("%s\n", line.c_str());
  if (!a.quiet) {
    std::fprintf(stderr, "%d image(s): %d layer(s) new, %d reused; %s read, %s unpacked in %.2fs", s.images,
                 s.layers_new, s.layers_reused, human_bytes(s.bytes_read).c_str(),
                 human_bytes(s.bytes_unpacked).c_str(), s.seconds);
    if (s.layers_lazy) std::fprintf(stderr, "; %d layer(s) kept lazy (blob + index)", s.layers_lazy);
    if (s.skipped_devices) std::fprintf(stderr, "; %llu device node(s) skipped", static_cast<unsigned long long>(s.skipped_devices));
    std::fprintf(stderr, "\n");
  }
  return 0;
}

}  // namespace strata::cli
