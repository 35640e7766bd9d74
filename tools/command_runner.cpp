#include "tools/command_runner.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>

namespace strata::cli {

StoreLayout store_layout(const std::string& root) {
  return StoreLayout{root.empty() ? default_store_root() : root};
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
