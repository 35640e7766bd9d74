// strata start/stop/restart/kill/wait/logs and run's -d/-i/-t: parse, call
// layerstore/container/lifecycle, print. Each command takes several containers (as docker) and
// reports each failure as one line "strata: <command> <container>: <reason>".
#include "tools/lifecycle_commands.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>

#include "layerstore/container/container_log.hpp"
#include "layerstore/container/lifecycle.hpp"
#include "layerstore/container/run.hpp"
#include "layerstore/error.hpp"
#include "tools/command_runner.hpp"

namespace strata::cli {

namespace {

struct LifecycleArgs {
  std::vector<std::string> refs;
  std::string container, signal = "KILL";
  bool attach = false, interactive = false, follow = false;
  int timeout = 10;
  std::optional<std::size_t> tail;
};

// `body` for each container; exits 1 if any failed, after trying all.
[[noreturn]] void for_each_container(const std::string& command, const std::string& root,
                                     const std::vector<std::string>& refs,
                                     const std::function<void(const StoreLayout&, const Container&)>& body) {
  StoreLayout l = store_layout(root);
  int code = 0;
  for (const auto& ref : refs) {
    try {
      body(l, find_container(l, ref));
    } catch (const std::exception& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "strata: %s %s: %s\n", command.c_str(), ref.c_str(), e.what());
      code = 1;
    }
  }
  std::fflush(stdout);
  std::exit(code);
}

bool config_flag(const Container& c, const char* key) {
  return c.cfg.contains("Config") && c.cfg["Config"].value(key, false);
}

// start -a: the container in the foreground, this process its monitor.
int start_attached(const StoreLayout& l, Container c, bool interactive) {
  if (c.status() == "Up") throw Error("container " + c.name + " is already running");
  if (state_running(c)) c = wait_exit_recorded(l, c);  // its monitor is still recording the last exit
  RunOptions opt;
  opt.tty = config_flag(c, "Tty");
  opt.keep_stdin = interactive;
  return run_container(l, c, note, opt);
}

}  // namespace

void add_run_mode_flags(CLI::App* c, RunModeFlags& f, bool detach) {
  if (detach) c->add_flag("-d,--detach", f.detach, "run in the background: print the id; output goes to `strata logs`");
  c->add_flag("-i,--interactive", f.interactive, "keep stdin open (without it the command's stdin is /dev/null)");
  c->add_flag("-t,--tty", f.tty, "give the command a pty (window size and ^C as on a terminal)");
}

void record_run_mode(const StoreLayout& l, Container& c, const RunModeFlags& f) {
  if (!f.tty && !f.interactive) return;
  c.cfg["Config"]["Tty"] = f.tty;
  c.cfg["Config"]["OpenStdin"] = f.interactive;
  if (f.tty) {  // as docker run -t
    auto& env = c.cfg["Config"]["Env"];
    bool has_term = false;
    for (const auto& e : env) has_term = has_term || e.get<std::string>().rfind("TERM=", 0) == 0;
    if (!has_term) env.push_back("TERM=xterm");
  }
  save_container(l, c);
}

int run_created_container(const StoreLayout& l, Container& c, const RunModeFlags& f, bool remove) {
  if (f.detach) {
    start_detached(l, c, f.tty, remove);
    std::printf("%s\n", c.id.c_str());
    return 0;
  }
  RunOptions opt;
  opt.tty = f.tty;
  opt.keep_stdin = f.interactive;
  return run_container(l, c, note, opt);
}

void add_lifecycle_commands(CLI::App& app, const std::string& root) {
  auto args = std::make_shared<LifecycleArgs>();
  LifecycleArgs& a = *args;

  auto* start = app.add_subcommand("start", "start created or exited containers (in the background unless -a)");
  start->add_flag("-a,--attach", a.attach, "in the foreground: its output here, exit with its status");
  start->add_flag("-i,--interactive", a.interactive, "with -a: stdin goes to the container");
  start->add_option("containers", a.refs, "CONTAINER...")->required();
  start->callback([&root, args] {
    if (args->attach) {
      if (args->refs.size() != 1) {
        std::fprintf(stderr, "strata: start: -a takes one container\n");
        std::exit(2);
      }
      StoreLayout l = store_layout(root);
      int code = 125;
      try {
        code = start_attached(l, find_container(l, args->refs[0]), args->interactive);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "strata: start %s: %s\n", args->refs[0].c_str(), e.what());
        code = 1;
      }
      std::fflush(stdout);
      std::exit(code);
    }
    for_each_container("start", root, args->refs, [&](const StoreLayout& l, const Container& c) {
      start_detached(l, c, config_flag(c, "Tty"), false);
      std::printf("%s\n", c.name.c_str());
    });
  });

  auto* stop = app.add_subcommand("stop", "stop running containers: SIGTERM, then SIGKILL after -t seconds");
  stop->add_option("-t,--time", a.timeout, "seconds to wait before SIGKILL (default 10)")->check(CLI::NonNegativeNumber);
  stop->add_option("containers", a.refs, "CONTAINER...")->required();
  stop->callback([&root, args] {
    for_each_container("stop", root, args->refs, [&](const StoreLayout& l, const Container& c) {
      stop_container(l, c, std::chrono::seconds(args->timeout));
      std::printf("%s\n", c.name.c_str());
    });
  });

  auto* restart = app.add_subcommand("restart", "stop (if running) and start containers again, in the background");
  restart->add_option("-t,--time", a.timeout, "seconds to wait before SIGKILL (default 10)")->check(CLI::NonNegativeNumber);
  restart->add_option("containers", a.refs, "CONTAINER...")->required();
  restart->callback([&root, args] {
    for_each_container("restart", root, args->refs, [&](const StoreLayout& l, const Container& c) {
      if (c.status() == "Up") stop_container(l, c, std::chrono::seconds(args->timeout));
      start_detached(l, c, config_flag(c, "Tty"), false);
      std::printf("%s\n", c.name.c_str());
    });
  });

  auto* kill = app.add_subcommand("kill", "send a signal to running containers (default KILL)");
  kill->add_option("-s,--signal", a.signal, "signal name or number (default KILL)");
  kill->add_option("containers", a.refs, "CONTAINER...")->required();
  kill->callback([&root, args] {
    int sig = 0;
    try {
      sig = parse_signal(args->signal);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "strata: kill: %s\n", e.what());
      std::exit(1);
    }
    for_each_container("kill", root, args->refs, [&](const StoreLayout&, const Container& c) {
      kill_container(c, sig);
      std::printf("%s\n", c.name.c_str());
    });
  });

  auto* wait = app.add_subcommand("wait", "wait until containers stop, print each exit code");
  wait->add_option("containers", a.refs, "CONTAINER...")->required();
  wait->callback([&root, args] {
    for_each_container("wait", root, args->refs, [&](const StoreLayout& l, const Container& c) {
      std::printf("%d\n", wait_container(l, c));
      std::fflush(stdout);
    });
  });

  auto* logs = app.add_subcommand("logs", "print the output of a container started with -d or start");
  logs->add_flag("-f,--follow", a.follow, "keep printing new output until the container exits");
  logs->add_option("-n,--tail", a.tail, "only the last N lines");
  logs->add_option("container", a.container, "CONTAINER")->required();
  logs->callback([&root, args] {
    for_each_container("logs", root, {args->container}, [&](const StoreLayout& l, const Container& c) {
      print_json_log(container_log_path(l, c), args->tail, args->follow, [&] {
        try {
          Container now = reload_container(l, c);
          return now.cfg["State"].value("Running", false) && process_running(recorded_monitor_of(now));
        } catch (const Error&) {
          return false;  // removed
        }
      });
    });
  });
}

}  // namespace strata::cli
