// strata: the layer store CLI. Parses arguments, calls the library, prints; errors are one
// line "strata: <command> <input>: <reason>" and a non-zero exit.
#include <clocale>
#include <CLI/CLI.hpp>
#include <cstdio>

#include "layerstore/error.hpp"
#include "tools/cli_rules.hpp"
#include "tools/command_runner.hpp"
#include "tools/commands.hpp"
#include "tools/container_commands.hpp"
#include "tools/lifecycle_commands.hpp"
#include "tools/exec_commands.hpp"
#include "tools/registry_commands.hpp"
#include "tools/unpack_command.hpp"

using namespace strata;

int main(int argc, char** argv) {
  // libarchive converts entry names through the locale; UTF-8 keeps them byte-exact.
  if (!setlocale(LC_CTYPE, "C.UTF-8")) setlocale(LC_CTYPE, "");
  CLI::App app{"strata: load OCI / Docker images into an overlay2 layer store"};
  app.require_subcommand(1);
  cli::set_failure_message(app);
  cli::add_version(app);
  std::string root;
  app.add_option("--root", root, "store root (default $STRATA_ROOT, /var/lib/strata or $XDG_DATA_HOME/strata)");
  cli::add_container_commands(app, root);
  cli::add_lifecycle_commands(app, root);
  cli::add_exec_commands(app, root);

  cli::LoadArgs load;
  auto* c_load = app.add_subcommand("load", "load a docker-archive, OCI layout (dir or tar) or registry storage dir");
  c_load->add_option("-i,--input", load.input, "input file or dir, - for stdin (default -)");
  c_load->add_option("--tag", load.tag, "tag the loaded image NAME:TAG");
  c_load->add_option("--platform", load.platform, "platform to pick from an index (default linux/amd64)");
  c_load->add_option("--registry-dir", load.registry_dir, "load NAME:TAG from a registry's storage dir");
  c_load->add_option("reference", load.registry_ref, "NAME:TAG (with --registry-dir)");
  c_load->add_option("--max-expansion", load.max_expansion,
                    "a layer may decompress to N x its compressed size + 64 MiB (default 100; 0: no ratio cap)");
  c_load->add_flag("-q,--quiet", load.quiet, "no progress output");
  c_load->add_flag("--lazy", load.lazy, "keep new layers as their blob + an index instead of unpacking (strata unpack undoes it)");
  c_load->add_option("--max-stdin-size", load.max_stdin_size, "most bytes of (decompressed) stdin to spool, N[K|M|G|T] (default 32G)");

  std::string format;
  auto* c_images = app.add_subcommand("images", "list images");
  c_images->add_option("--format", format, "json for machine-readable output");
  bool all_images = false;
  c_images->add_flag("-a,--all", all_images, "also intermediate images (unnamed parents of other images)");

  std::vector<std::string> images;
  auto* c_inspect = app.add_subcommand("inspect", "show an image's config and layers as JSON");
  c_inspect->add_option("image", images, "IMAGE")->required();

  std::string image;
  auto* c_history = app.add_subcommand("history", "show an image's history");
  c_history->add_option("image", image, "IMAGE")->required();

  std::string src, dst;
  auto* c_tag = app.add_subcommand("tag", "add a tag to an image");
  c_tag->add_option("source", src, "IMAGE")->required();
  c_tag->add_option("target", dst, "NAME[:TAG]")->required();

  bool force = false;
  std::vector<std::string> rmi_images;
  auto* c_rmi = app.add_subcommand("rmi", "remove images and the layers no one else uses");
  c_rmi->add_flag("-f,--force", force, "remove an image even if several tags name it");
  c_rmi->add_option("image", rmi_images, "IMAGE...")->required();

  auto* c_prune = app.add_subcommand("prune", "remove unreferenced layers and stale staging");

  std::string verify_image;
  auto* c_verify = app.add_subcommand("verify", "re-check layer contents and indexes");
  c_verify->add_option("image", verify_image, "IMAGE (default: all)");

  cli::add_registry_commands(app, root);
  cli::add_unpack_command(app, root);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // A usage error exits 125, as docker's do: run, exec and start -a exit with the
    // command's own status, which a usage error must not look like.
    return app.exit(e) == 0 ? 0 : 125;
  }
  std::string what;
  try {
    StoreLayout l = cli::store_layout(root);
    if (c_load->parsed()) {
      what = "load " + (load.registry_dir.empty() ? (load.input == "-" ? "stdin" : load.input) : load.registry_dir + " " + load.registry_ref);
      return cli::cmd_load(l, load);
    }
    if (c_images->parsed()) return what = "images", cli::cmd_images(l, format, all_images);
    if (c_inspect->parsed()) return what = "inspect", cli::cmd_inspect(l, images);
    if (c_history->parsed()) return what = "history " + image, cli::cmd_history(l, image);
    if (c_tag->parsed()) return what = "tag " + src, cli::cmd_tag(l, src, dst);
    if (c_rmi->parsed()) return what = "rmi", cli::cmd_rmi(l, rmi_images, force);
    if (c_prune->parsed()) return what = "prune", cli::cmd_prune(l);
    if (c_verify->parsed()) return what = "verify", cli::cmd_verify(l, verify_image);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata: %s: %s\n", what.c_str(), e.what());
    return 1;
  }
  return 2;
}
