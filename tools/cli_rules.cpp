#include "tools/cli_rules.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "layerstore/error.hpp"
#include "layerstore/store/image_db.hpp"
#include "strata_version.h"

namespace strata::cli {

namespace {

// The path of subcommands the parse went into: "run", "container mount"; "" at the top.
std::string command_path(const CLI::App* app) {
  std::string path;
  for (const CLI::App* cur = app;;) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) break;
    cur = subs.front();
    path += (path.empty() ? "" : " ") + cur->get_name();
  }
  return path;
}

// What strata does instead, for the `docker run`/`podman run` flags it does not have.
const std::map<std::string, std::string>& docker_only_flags() {
  static const std::string net = "strata uses the host's network (no network namespace): a server in the container "
                                 "listens on the host's ports, with the host's names and DNS";
  static const std::string cgroup = "strata sets no cgroup limits";
  static const std::string ns = "a container always gets its own pid, ipc and uts namespaces";
  static const std::map<std::string, std::string> m = {
      {"-p", net}, {"--publish", net}, {"-P", net}, {"--publish-all", net}, {"--expose", net}, {"--dns", net},
      {"--dns-search", net}, {"--dns-option", net}, {"--add-host", net}, {"--ip", net}, {"--ip6", net},
      {"--mac-address", net}, {"--link", net}, {"--network-alias", net},
      {"-m", cgroup}, {"--memory", cgroup}, {"--memory-swap", cgroup}, {"--memory-reservation", cgroup},
      {"--cpus", cgroup}, {"-c", cgroup}, {"--cpu-shares", cgroup}, {"--cpuset-cpus", cgroup},
      {"--cpu-period", cgroup}, {"--cpu-quota", cgroup}, {"--pids-limit", cgroup}, {"--blkio-weight", cgroup},
      {"--oom-kill-disable", cgroup}, {"--cgroup-parent", cgroup},
      {"--pid", ns}, {"--ipc", ns}, {"--uts", ns}, {"--userns", ns}, {"--cgroupns", ns},
      {"--mount", "use -v HOST:CTR[:ro]"},
      {"--tmpfs", "no tmpfs mounts; -v a host directory instead"},
      {"--volumes-from", "give the volumes again with -v"},
      {"--device", "no host devices are added to a container"},
      {"--gpus", "no host devices are added to a container"},
      {"--env-file", "give each variable with -e K=V"},
      {"-l", "containers have no labels"}, {"--label", "containers have no labels"},
      {"--restart", "there is no daemon to restart containers"},
      {"--pull", "run uses the store only: `strata pull` first"},
      {"--init", "no init process is added: the command is the container's pid 1"},
      {"--ulimit", "the container inherits strata's limits"},
      {"--read-only", "the container's root is always writable"},
      {"--log-driver", "output goes to strata's stdout and stderr"},
      {"--health-cmd", "no health checks"},
      {"--sysctl", "no per-container sysctls (the network is the host's)"},
  };
  return m;
}

// The one flag of `arg` that `c` does not know: "--name" of "--name=x"; in combined short
// flags ("-itp"), the first letter that is not a known flag.
std::string unknown_flag(const CLI::App* c, const std::string& arg) {
  if (arg.rfind("--", 0) == 0) return arg.substr(0, arg.find('='));
  for (size_t i = 1; i < arg.size(); i++) {
    const CLI::Option* o = c->get_option_no_throw(std::string("-") + arg[i]);
    if (!o) return std::string("-") + arg[i];
    if (o->get_type_size_max() > 0) break;  // the rest of the word is this option's value
  }
  return arg;
}

// "REASON; " for a docker run flag given to run or create, else "".
std::string hint_for(const std::string& command, const std::string& flag) {
  if (command != "run" && command != "create") return "";
  auto hint = docker_only_flags().find(flag);
  return hint == docker_only_flags().end() ? "" : hint->second + "; ";
}

// Exit 125 as docker's usage errors: not a status the container's command could have given.
[[noreturn]] void usage_error(const std::string& command, const std::string& reason) {
  std::fflush(stdout);
  std::fprintf(stderr, "strata: %s: %s\n", command.c_str(), reason.c_str());
  std::exit(125);
}

class PositionalsFormatter : public CLI::Formatter {
 public:
  PositionalsFormatter(std::string usage, std::vector<std::pair<std::string, std::string>> lines)
      : usage_(std::move(usage)), lines_(std::move(lines)) {}
  std::string make_usage(const CLI::App* app, std::string name) const override {
    std::string s = CLI::Formatter::make_usage(app, std::move(name));
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s + " " + usage_ + "\n";
  }
  std::string make_positionals(const CLI::App*) const override {
    std::stringstream out;
    out << "\nPositionals:\n";
    for (const auto& [name, desc] : lines_) CLI::detail::format_help(out, name, desc, get_column_width());
    return out.str();
  }

 private:
  std::string usage_;
  std::vector<std::pair<std::string, std::string>> lines_;
};

// "x86_64" and "aarch64" as Go names them; "arm64/v8" is plain arm64.
std::string normal_arch(std::string a) {
  if (a == "x86_64" || a == "x86-64") return "amd64";
  if (a == "aarch64") return "arm64";
  return a;
}

}  // namespace

void set_failure_message(CLI::App& app) {
  app.failure_message([](const CLI::App* top, const CLI::Error& e) -> std::string {
    std::string path = command_path(top);
    std::string where = path.empty() ? "strata" : "strata " + path;
    std::string prefix = path.empty() ? "strata: " : "strata: " + path + ": ";
    std::string msg = e.what();
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::ExtrasError)) {
      // "The following argument(s) was/were not expected: A B": name the first one.
      std::string args = msg.substr(msg.find(": ") == std::string::npos ? 0 : msg.find(": ") + 2);
      std::string first = args.substr(0, args.find(' '));
      if (first.size() > 1 && first[0] == '-') {
        // The command the flag was given to: `strata --bogus images` is strata's, not images'.
        std::vector<const CLI::App*> chain{top};
        for (auto subs = top->get_subcommands(); !subs.empty(); subs = chain.back()->get_subcommands())
          chain.push_back(subs.front());
        size_t owner = chain.size() - 1;
        for (size_t i = chain.size(); i-- > 0;) {
          auto rest = chain[i]->remaining(false);
          if (std::find(rest.begin(), rest.end(), first) != rest.end()) {
            owner = i;
            break;
          }
        }
        std::string opath;
        for (size_t i = 1; i <= owner; i++) opath += (i > 1 ? " " : "") + chain[i]->get_name();
        std::string owhere = opath.empty() ? "strata" : "strata " + opath;
        std::string flag = unknown_flag(chain[owner], first);
        return "strata: " + (opath.empty() ? "" : opath + ": ") + "unknown flag " + flag + "; " + hint_for(opath, flag) +
               "`" + owhere + " --help` lists the flags\n";
      }
      if (path.empty()) return "strata: unknown command " + first + "; `strata --help` lists the commands\n";
      return prefix + "unexpected argument " + first + "; see `" + where + " --help`\n";
    }
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::RequiredError) && path.empty()) {
      auto rest = top->remaining();
      if (!rest.empty() && rest[0].size() > 1 && rest[0][0] == '-')
        return "strata: unknown flag " + rest[0] + "; `strata --help` lists the flags and commands\n";
      if (!rest.empty()) return "strata: unknown command " + rest[0] + "; `strata --help` lists the commands\n";
      return "strata: a command is required; `strata --help` lists the commands\n";
    }
    return prefix + msg + "; see `" + where + " --help`\n";
  });
}

void add_version(CLI::App& app) {
  static const std::string line = std::string("strata version ") + STRATA_VERSION;
  app.set_version_flag("--version", line, "print strata's version and exit");
  auto* v = app.add_subcommand("version", "print strata's version");
  v->callback([] {
    std::printf("%s\n", line.c_str());
    std::exit(0);
  });
}

void show_positionals(CLI::App* c, const std::string& usage,
                      const std::vector<std::pair<std::string, std::string>>& lines) {
  c->formatter(std::make_shared<PositionalsFormatter>(usage, lines));
}

void reject_unknown_flag(CLI::App* c) {
  std::vector<std::string> rest = c->remaining();
  if (rest.empty() || rest[0].size() < 2 || rest[0][0] != '-') return;
  std::string flag = unknown_flag(c, rest[0]);
  usage_error(c->get_name(), "unknown flag " + flag + "; " + hint_for(c->get_name(), flag) + "`strata " +
                                 c->get_name() + " --help` lists the flags");
}

ImageCommand image_and_command(CLI::App* c) {
  reject_unknown_flag(c);
  std::vector<std::string> rest = c->remaining();
  if (rest.empty()) usage_error(c->get_name(), "IMAGE is required; see `strata " + c->get_name() + " --help`");
  return ImageCommand{rest[0], {rest.begin() + 1, rest.end()}};
}

void check_network(const std::string& command, const std::string& network) {
  if (network.empty() || network == "host") return;
  if (network == "none")
    usage_error(command, "--network none: strata has no network isolation yet; a container always uses the host's "
                         "network (--network host). none would take a new network namespace with only lo in it");
  usage_error(command, "--network " + network + ": strata has no container networks; a container always uses the "
                       "host's network (--network host). Another network would take a network namespace wired to "
                       "the host (a veth pair and a bridge as root, slirp4netns or pasta rootless)");
}

void check_platform(const StoreLayout& l, const std::string& image, const std::string& platform) {
  if (platform.empty()) return;
  std::vector<std::string> want;
  for (size_t start = 0;;) {
    size_t slash = platform.find('/', start);
    want.push_back(platform.substr(start, slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (want.size() < 2 || want.size() > 3 || want[0].empty() || want[1].empty())
    throw Error("--platform \"" + platform + "\": want OS/ARCH[/VARIANT], e.g. linux/amd64");
  if (!store_exists(l)) return;  // create says "no such image"
  ImageDb idb(l);
  auto cfg = nlohmann::json::parse(idb.config(idb.resolve(image, Repositories::load(l))), nullptr, false);
  std::string os = cfg.value("os", ""), arch = cfg.value("architecture", ""), variant = cfg.value("variant", "");
  std::string wvariant = want.size() == 3 ? want[2] : "";
  if (normal_arch(arch) == "arm64" && variant.empty()) variant = "v8";
  if (normal_arch(want[1]) == "arm64" && wvariant.empty()) wvariant = "v8";
  if (os == want[0] && normal_arch(arch) == normal_arch(want[1]) && (want.size() < 3 || wvariant == variant)) return;
  std::string have = os + "/" + arch + (cfg.value("variant", "").empty() ? "" : "/" + cfg.value("variant", ""));
  throw Error("--platform " + platform + ": the image is " + have + "; strata runs the image as stored: load or pull "
              "it with --platform " + platform + " for that platform");
}

}  // namespace strata::cli
