#pragma once
// What every `strata` subcommand's callback shares: the store it works on and the one-line
// error ("strata: <what>: <reason>") an exception becomes.
#include <functional>
#include <string>

#include "layerstore/store/store_layout.hpp"

namespace strata::cli {

// --root, else the default store root.
StoreLayout store_layout(const std::string& root);

// Prints a note to stderr as "strata: <s>".
void note(const std::string& s);

// Runs a command body and exits with its code; an exception becomes "strata: <what>: <reason>"
// and exit 1.
[[noreturn]] void run_command(const std::string& what, const std::function<int()>& body);

}  // namespace strata::cli
