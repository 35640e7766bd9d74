// Shared helpers of the strata-fs option tests: argv building and error matching.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "fs/options.hpp"

namespace sfs = strata::fs;
namespace stdfs = std::filesystem;

namespace strata_options_test {

struct Parsed {
  std::optional<sfs::Options> opts;
  std::string error;
};

inline Parsed parse(std::vector<std::string> args) {
  args.insert(args.begin(), "strata-fs");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Parsed p;
  p.opts = sfs::parse_options(static_cast<int>(args.size()), argv.data(), p.error);
  return p;
}

inline std::string parse_error(std::vector<std::string> args) {
  Parsed p = parse(std::move(args));
  EXPECT_FALSE(p.opts.has_value());
  return p.error;
}

inline bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// Absolute paths in tests: "/l" style names that need not exist (parse keeps them lexically).
inline const std::string kBase = "lowerdir=/l1:/l2,upperdir=/u,workdir=/w";

}  // namespace strata_options_test

using namespace strata_options_test;  // NOLINT: the tests read better unqualified
