// strata-fs: parse the fuse-overlayfs-compatible command line, check it, run the mount.
#include <cstdio>
#include <string>

#include "fs/fuse/session.hpp"
#include "fs/options.hpp"

int main(int argc, char** argv) {
  std::string error;
  auto opts = strata::fs::parse_options(argc, argv, error);
  if (!opts) {
    std::fprintf(stderr, "strata-fs: %s\n", error.c_str());
    return 1;
  }
  if (opts->show_help) {
    std::fputs(strata::fs::usage_text(argv[0]).c_str(), stdout);
    return 0;
  }
  if (opts->show_version) {
    std::fputs(strata::fs::version_text().c_str(), stdout);
    return 0;
  }
  if (std::string problem = strata::fs::validate_options(*opts); !problem.empty()) {
    std::fprintf(stderr, "strata-fs: %s\n", problem.c_str());
    return 1;
  }
  return strata::fs::fuse::run_filesystem(*opts);
}
