#include "tools/command_runner.hpp"

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "layerstore/error.hpp"

namespace strata::cli {

StoreLayout store_layout(const std::string& root) {
  std::string r = root.empty() ? default_store_root() : root;
  // strata-fs runs in the store's overlay2/ dir, where a relative upperdir named something
  // else, and a detached container's monitor outlives the caller's directory: a relative root
  // (--root store, $STRATA_ROOT) is made absolute once, here.
  if (!r.empty() && r[0] != '/') {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) throw_errno("getcwd");
    r = std::string(cwd) + "/" + r;
  }
  return StoreLayout{r};
}

void note(const std::string& s) { std::fprintf(stderr, "strata: %s\n", s.c_str()); }

void run_command(const std::string& what, const std::function<int()>& body) {
  int code;
  try {
    code = body();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "strata: %s: %s\n", what.c_str(), e.what());
    code = 1;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(code);
}

}  // namespace strata::cli
