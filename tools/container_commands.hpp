#pragma once
// Container commands (mount/umount, create, ps, container mount|umount, run, diff, commit,
// save, rm): registered on the app with their own callbacks, which exit with the command's
// status.
#include <string>

namespace CLI {
class App;
}

namespace strata::cli {

// `root` is read when a command runs (after --root is parsed).
void add_container_commands(CLI::App& app, const std::string& root);

}  // namespace strata::cli
