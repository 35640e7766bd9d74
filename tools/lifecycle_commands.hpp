#pragma once
// The container lifecycle on the command line: run/create -d -i -t, and start, stop, restart,
// kill, wait, logs (layerstore/container/lifecycle.hpp does the work).
#include <string>

#include "layerstore/container/container.hpp"

namespace CLI {
class App;
}

namespace strata::cli {

struct RunModeFlags {
  bool detach = false, interactive = false, tty = false;
};

// -i, -t (and with `detach`, -d) on run/create.
void add_run_mode_flags(CLI::App* c, RunModeFlags& f, bool detach);

// Keeps -t/-i in the container's Config (Tty, OpenStdin, as Docker) so `start` uses them.
void record_run_mode(const StoreLayout& l, Container& c, const RunModeFlags& f);

// `run` after create: detached (prints the id, returns 0) or attached until the command exits
// (its exit status). With `remove`, the container is removed once it exits (detached: by its
// monitor).
int run_created_container(const StoreLayout& l, Container& c, const RunModeFlags& f, bool remove);

// `root` is read when a command runs (after --root is parsed).
void add_lifecycle_commands(CLI::App& app, const std::string& root);

}  // namespace strata::cli
