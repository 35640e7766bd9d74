#pragma once
// How the `strata` command line reads, for people with docker/podman habits: one-line errors
// that name an unknown flag (with a hint for docker flags strata lacks), `run`/`create` usage
// showing IMAGE [COMMAND] [ARG...], --network and --platform as docker takes them, --version.
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "layerstore/store/store_layout.hpp"

namespace strata::cli {

// CLI11's own errors (unknown flag, missing value, ...) as "strata: <command>: <reason>", one
// line. Set on the top-level app before subcommands are added (they inherit it).
void set_failure_message(CLI::App& app);

// `strata --version` and `strata version`.
void add_version(CLI::App& app);

// Help of a prefix-command subcommand lists its positionals (CLI11 only lists declared ones):
// `usage` is appended to the usage line ("IMAGE [COMMAND] [ARG...]"), `lines` explain each.
void show_positionals(CLI::App* c, const std::string& usage,
                      const std::vector<std::pair<std::string, std::string>>& lines);

struct ImageCommand {
  std::string image;
  std::vector<std::string> cmd;
};
// For a prefix-command subcommand (run, create, exec): a word before the first positional
// that starts with '-' is a flag this command does not know (CLI11 leaves it in remaining()):
// one line naming it (and why strata lacks it, for docker's run flags) and exit 125.
void reject_unknown_flag(CLI::App* c);
// IMAGE and the command after it from run or create, after reject_unknown_flag. No IMAGE:
// one line and exit 125.
ImageCommand image_and_command(CLI::App* c);

// --network: "host" (or unset) is what strata does; anything else exits 2 with one line
// saying what it would take.
void check_network(const std::string& command, const std::string& network);
// --platform OS/ARCH[/VARIANT]: must be the image's own platform (strata runs what is stored,
// it does not pick from an index at run time). Throws Error otherwise.
void check_platform(const StoreLayout& l, const std::string& image, const std::string& platform);

}  // namespace strata::cli
