#pragma once
// `strata exec`, `cp` and `import`: registered on the app with their own callbacks, which exit
// with the command's status.
#include <string>

namespace CLI {
class App;
}

namespace strata::cli {

// `root` is read when a command runs (after --root is parsed).
void add_exec_commands(CLI::App& app, const std::string& root);

}  // namespace strata::cli
