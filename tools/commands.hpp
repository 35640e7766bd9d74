#pragma once
// One function per `strata` subcommand; each returns the process exit code and throws
// strata::Error for the one-line message main() prints.
#include <string>
#include <vector>

#include "layerstore/store/store_layout.hpp"

namespace strata::cli {

struct LoadArgs {
  std::string input = "-";
  std::string tag;
  std::string platform = "linux/amd64";
  std::string registry_dir;
  std::string registry_ref;
  std::string max_expansion;  // "" or N (--max-expansion)
  std::string max_stdin_size;  // "", or N[K|M|G|T]
  bool quiet = false;
  bool lazy = false;  // --lazy
};

int cmd_load(const StoreLayout& l, const LoadArgs& a);
// Intermediate images (unnamed, the parent of another image) only with `all`, as `docker images -a`.
int cmd_images(const StoreLayout& l, const std::string& format, bool all);
int cmd_inspect(const StoreLayout& l, const std::vector<std::string>& images);
int cmd_history(const StoreLayout& l, const std::string& image);
int cmd_tag(const StoreLayout& l, const std::string& src, const std::string& dst);
int cmd_rmi(const StoreLayout& l, const std::vector<std::string>& images, bool force);
int cmd_prune(const StoreLayout& l);
int cmd_verify(const StoreLayout& l, const std::string& image);

}  // namespace strata::cli
