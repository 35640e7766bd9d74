#include <cstdio>

#include "layerstore/error.hpp"
#include "layerstore/loader.hpp"
#include "tools/commands.hpp"

namespace strata::cli {

int cmd_load(const StoreLayout& l, const LoadArgs& a) {
  LoadOptions o;
  o.input = a.input;
  o.platform = parse_platform(a.platform);
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
    if (s.skipped_devices) std::fprintf(stderr, "; %llu device node(s) skipped", static_cast<unsigned long long>(s.skipped_devices));
    std::fprintf(stderr, "\n");
  }
  return 0;
}

}  // namespace strata::cli
