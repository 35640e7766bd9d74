#include "tools/unpack_command.hpp"

#include <cstdio>
#include <memory>

#include "layerstore/lazy_unpack.hpp"
#include "tools/command_runner.hpp"

namespace strata::cli {

void add_unpack_command(CLI::App& app, const std::string& root) {
  struct Args {
    std::string image, max_expansion;
    bool quiet = false;
  };
  auto a = std::make_shared<Args>();
  auto* c = app.add_subcommand("unpack", "unpack an image's lazy layers (load/pull --lazy) so that dockerd can use it");
  c->add_option("--max-expansion", a->max_expansion,
                "a layer may decompress to N x its compressed size + 64 MiB (default 100; 0: no ratio cap)");
  c->add_flag("-q,--quiet", a->quiet, "no progress output");
  c->add_option("image", a->image, "IMAGE")->required();
  c->callback([a, &root] {
    run_command("unpack " + a->image, [&] {
      uint64_t max_expansion = a->max_expansion.empty() ? kDefaultMaxExpansion : parse_max_expansion(a->max_expansion);
      Progress progress(Progress::detect(a->quiet));
      UnpackImageSummary s = unpack_lazy_image(store_layout(root), a->image, progress, max_expansion);
      if (!a->quiet)
        std::fprintf(stderr, "%d layer(s) unpacked (%s), %d already unpacked\n", s.layers_unpacked,
                     human_bytes(double(s.bytes_unpacked)).c_str(), s.layers_already);
      return 0;
    });
  });
}

}  // namespace strata::cli
