#pragma once
// `strata pull`, `push`, `login`, `logout`: registered on the main app with one call. Each
// runs from its CLI11 callback and ends the parse with its exit code (CLI::Success /
// CLI::RuntimeError), after printing "strata: <command> <ref>: <reason>" on failure.
#include <CLI/CLI.hpp>
#include <string>

namespace strata::cli {

// `root` is the main app's --root value, read when a command runs.
void add_registry_commands(CLI::App& app, const std::string& root);

}  // namespace strata::cli
