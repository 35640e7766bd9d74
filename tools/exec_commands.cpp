// strata exec/cp/import: parse, call layerstore/container (exec, copy) and
// layerstore/sources (rootfs import), print. Each callback exits with the command's status.
#include "tools/exec_commands.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "layerstore/container/config_change.hpp"
#include "layerstore/container/container.hpp"
#include "layerstore/container/copy.hpp"
#include "layerstore/container/exec.hpp"
#include "layerstore/error.hpp"
#include "layerstore/sources/rootfs_import.hpp"
#include "tools/cli_rules.hpp"
#include "tools/command_runner.hpp"

namespace strata::cli {

namespace {

// "NAME:PATH" names a path in container NAME; a local path with a colon is written ./a:b, as
// docker cp reads it (a colon after a slash is part of a local path).
std::optional<std::pair<std::string, std::string>> container_path(const std::string& arg) {
  auto colon = arg.find(':');
  if (colon == std::string::npos || colon == 0 || arg.find('/') < colon) return std::nullopt;
  return std::make_pair(arg.substr(0, colon), arg.substr(colon + 1));
}

struct CopyArgs {
  bool archive = false, follow = false;
  std::string src, dest;
};

struct ImportArgs {
  std::string input, ref, message, max_expansion;
  std::vector<std::string> changes;
  bool quiet = false;
};

struct ExecArgs {
  bool interactive = false, tty = false;
  std::string user, workdir;
  std::vector<std::string> env;
};

}  // namespace

void add_exec_commands(CLI::App& app, const std::string& root) {
  auto ea = std::make_shared<ExecArgs>();
  auto* exec = app.add_subcommand("exec", "run a command in a running container");
  exec->add_flag("-i,--interactive", ea->interactive, "keep stdin open (else the command reads /dev/null)");
  exec->add_flag("-t,--tty", ea->tty, "a pseudo-terminal");
  exec->add_option("-u,--user", ea->user, "USER[:GROUP] (name or id, from the container's /etc/passwd)");
  exec->add_option("-w,--workdir", ea->workdir, "working directory inside the container");
  exec->add_option("-e,--env", ea->env, "K=V environment variable (repeatable)")->allow_extra_args(false);
  // CONTAINER CMD [ARG...]: parsing stops at CONTAINER, the rest is the command as is.
  exec->prefix_command();
  show_positionals(exec, "CONTAINER COMMAND [ARG...]",
                   {{"CONTAINER", "a running container: name, ID or unique ID prefix"},
                    {"COMMAND [ARG...]", "the program to run; every word after CONTAINER belongs to it"}});
  exec->callback([&root, ea, exec] {
    reject_unknown_flag(exec);
    auto rest = exec->remaining();
    if (rest.size() < 2) {
      std::fprintf(stderr, "strata: exec: CONTAINER and COMMAND are required\n");
      std::exit(125);
    }
    std::string name = rest[0];
    run_command("exec " + name, [&] {  // an unknown or stopped container: 1, as docker exec
      StoreLayout l = store_layout(root);
      Container c = find_container(l, name);
      ExecRequest r;
      r.argv.assign(rest.begin() + 1, rest.end());
      r.env = ea->env;
      r.user = ea->user;
      r.workdir = ea->workdir;
      r.keep_stdin = ea->interactive;
      r.tty = ea->tty;
      return exec_in_container(c, r);
    });
  });

  auto ca = std::make_shared<CopyArgs>();
  auto* cp = app.add_subcommand("cp", "copy files between a container (running or stopped) and the host");
  cp->add_flag("-a,--archive", ca->archive, "files copied in keep their uid/gid (else the container's root owns them)");
  cp->add_flag("-L,--follow-link", ca->follow, "copy what a symlink SRC points to");
  cp->add_option("src", ca->src, "CONTAINER:SRC_PATH, or a host path (- : a tar on stdin)")->required();
  cp->add_option("dest", ca->dest, "a host path (- : a tar on stdout), or CONTAINER:DEST_PATH")->required();
  cp->callback([&root, ca] {
    run_command("cp " + ca->src + " " + ca->dest, [&] {
      auto from = container_path(ca->src), to = container_path(ca->dest);
      if (from && to) throw Error("copying between containers is not supported");
      if (!from && !to) throw Error("one of SRC and DEST must be CONTAINER:PATH");
      StoreLayout l = store_layout(root);
      CopyOptions o;
      o.archive = ca->archive;
      o.follow_link = ca->follow;
      if (from)
        copy_from_container(l, find_container(l, from->first), from->second, ca->dest, o);
      else
        copy_into_container(l, find_container(l, to->first), ca->src, to->second, o);
      return 0;
    });
  });

  auto ia = std::make_shared<ImportArgs>();
  auto* import = app.add_subcommand("import", "make an image of one layer from a root filesystem tarball");
  import->add_option("input", ia->input, "FILE or - (stdin): a tar, plain, gzip or zstd")->required();
  import->add_option("reference", ia->ref, "NAME[:TAG] to tag the image");
  import->add_option("-c,--change", ia->changes, "a Dockerfile instruction for the image config (CMD, ENTRYPOINT, "
                     "ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR; repeatable)")->allow_extra_args(false);
  import->add_option("-m,--message", ia->message, "history comment (default \"Imported from FILE\")");
  import->add_option("--max-expansion", ia->max_expansion,
                     "the tar may decompress to N x its compressed size + 64 MiB (default 100; 0: no ratio cap)");
  import->add_flag("-q,--quiet", ia->quiet, "no progress output");
  import->callback([&root, ia] {
    run_command("import " + ia->input, [&] {
      ImportOptions o;
      o.input = ia->input;
      o.message = ia->message;
      apply_config_changes(o.config, ia->changes);  // a bad change fails before the input is read
      if (!ia->max_expansion.empty()) o.max_expansion = parse_max_expansion(ia->max_expansion);
      if (!ia->ref.empty()) {
        auto r = parse_reference(ia->ref);
        if (!r || !r->digest.empty()) throw Error("invalid reference \"" + ia->ref + "\" (want NAME[:TAG])");
        o.tag = *r;
      }
      Progress progress(Progress::detect(ia->quiet));
      std::printf("%s\n", import_rootfs(store_layout(root), o, progress).c_str());
      return 0;
    });
  });
}

}  // namespace strata::cli
