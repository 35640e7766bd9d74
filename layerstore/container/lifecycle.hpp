#pragma once
// The container lifecycle after `create`: start (detached, with a monitor process, or attached),
// stop, kill, wait, and the state they share.
//
// Where the state lives (also for `exec`, which joins a running container): config.v2.json's
// State in containers/<id>/, written by the monitor (run.cpp's run_container):
//   Running, Pid + PidStartTime   the container's init (pid 1 of its pid namespace, the
//                                 parent of the command); its namespaces are those to join
//   MonitorPid + MonitorStartTime the process that waits for the init and records the exit:
//                                 `strata run`/`start -a` itself, or a detached monitor
//   ExitCode, StartedAt, FinishedAt
// A pid is only trusted together with its start time (process_identity.hpp). A container whose
// recorded init is gone (killed monitor, reboot) reads as exited.
#include <chrono>
#include <string>

#include "layerstore/container/container.hpp"
#include "layerstore/container/mounts.hpp"
#include "layerstore/container/process_identity.hpp"
#include "layerstore/container/run.hpp"

namespace strata {

ProcessRef recorded_init_of(const Container& c);
ProcessRef recorded_monitor_of(const Container& c);
// State.Running: the init runs, or did until its monitor records the exit.
bool state_running(const Container& c);

// The container as config.v2.json says now.
Container reload_container(const StoreLayout& l, const Container& c);

// After the init is gone: waits until the monitor has recorded the exit (and so strata-fs has
// unmounted), or the monitor is gone without doing so. Returns the reloaded container.
Container wait_exit_recorded(const StoreLayout& l, const Container& c);

// Starts a created or exited container in the background: a monitor process in a session of
// its own (it outlives the caller's terminal) runs it, with stdin /dev/null and stdout/stderr
// (or the pty's output, with `tty`) copied into the json-file log. Returns once the container
// runs; throws with the monitor's own error when it could not be started. With `remove` the
// monitor removes the container once it has exited (run -d --rm).
void start_detached(const StoreLayout& l, const Container& c, bool tty, bool remove);

// SIGTERM to the container (the init passes it on to the command), SIGKILL after `timeout`;
// returns once the exit is recorded.
void stop_container(const StoreLayout& l, const Container& c, std::chrono::seconds timeout);

// Sends `sig` to the container's init, which passes it on to the command (SIGKILL ends the
// container at once).
void kill_container(const Container& c, int sig);

// Blocks until the container is not running; its exit code.
int wait_container(const StoreLayout& l, const Container& c);

// "KILL", "SIGKILL", "kill" or "9".
int parse_signal(const std::string& s);

}  // namespace strata
