#pragma once
// A detached container's output, kept as Docker's json-file log driver keeps it:
// containers/<id>/<id>-json.log, one JSON object per line of output:
//   {"log":"text\n","stream":"stdout","time":"2026-11-29T23:59:59.123456789Z"}
// A line longer than 16 KiB is split into several entries (as Docker does), and a last line
// without a newline is written as is when the stream ends.
#include <functional>
#include <optional>
#include <string>

#include "layerstore/container/container.hpp"

namespace strata {

std::string container_log_path(const StoreLayout& l, const Container& c);

// Copies `out` and `err` (read ends of the container's stdout and stderr) into `log_fd`, entry
// by entry, until both reach end of file. Runs in a forked logger process; never throws.
void copy_to_json_log(int out, int err, int log_fd);

// Prints the log's entries to stdout/stderr (by stream): the last `tail` only when given. With
// `follow`, keeps printing new entries while `running()` says the container runs, and those
// written until then.
void print_json_log(const std::string& path, std::optional<std::size_t> tail, bool follow,
                    const std::function<bool()>& running);

}  // namespace strata
