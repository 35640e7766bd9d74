// Fuzz target 4: strata-fs's command-line parser (fs/options.cpp, parse_options), called as
// main() would be. Input: argv strings separated by NUL bytes. The parser returns options or
// a one-line error; it must never crash, and an error must be one line.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fs/options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string all(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args{"strata-fs"};
  size_t pos = 0;
  while (pos <= all.size() && args.size() < 64) {
    size_t nul = all.find('\0', pos);
    if (nul == std::string::npos) nul = all.size();
    args.push_back(all.substr(pos, nul - pos));
    pos = nul + 1;
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string error;
  auto opts = strata::fs::parse_options(static_cast<int>(args.size()), argv.data(), error);
  if (!opts && error.find('\n') != std::string::npos && args.size() > 1) {
    // An argument with a newline in it may be quoted back; nothing else may break the line.
    bool arg_has_newline = false;
    for (const auto& a : args) arg_has_newline |= a.find('\n') != std::string::npos;
    if (!arg_has_newline) {
      std::fprintf(stderr, "multi-line error: %s\n", error.c_str());
      std::abort();
    }
  }
  if (opts && !opts->show_help && !opts->show_version) strata::fs::fuse_mount_options(*opts, true);
  return 0;
}
