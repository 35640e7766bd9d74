#pragma once
// `strata unpack IMAGE`: a lazy image (load --lazy, pull --lazy) made an ordinary one that
// dockerd can use (layerstore/lazy_unpack.hpp). Registered on the main app with one call.
#include <CLI/CLI.hpp>
#include <string>

namespace strata::cli {

// `root` is the main app's --root value, read when the command runs.
void add_unpack_command(CLI::App& app, const std::string& root);

}  // namespace strata::cli
