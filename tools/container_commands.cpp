// strata mount/umount/create/ps/container/run/diff/commit/save/rm: parse, call
// layerstore/container, print. Each callback exits with the command's status.
#include "tools/container_commands.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>

#include "layerstore/container/changes.hpp"
#include "layerstore/container/commit.hpp"
#include "layerstore/container/container.hpp"
#include "layerstore/container/lazy_mount.hpp"
#include "layerstore/container/mounts.hpp"
#include "layerstore/container/run.hpp"
#include "layerstore/container/save.hpp"
#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/error.hpp"
#include "layerstore/loader.hpp"
#include "layerstore/progress.hpp"
#include "layerstore/sources/image_source.hpp"
#include "layerstore/store/image_db.hpp"
#include "tools/lifecycle_commands.hpp"
#include "tools/cli_rules.hpp"
#include "tools/command_runner.hpp"

namespace strata::cli {

using nlohmann::json;

namespace {

struct Args {
  std::string image, dir, name, format, output, tag, comment, hostname, workdir, user, entrypoint, network, platform;
  std::vector<std::string> refs, env, volumes, cmd, cap_add, cap_drop, security_opt, changes;
  bool all = false, force = false, rm = false, entrypoint_set = false, privileged = false;
  bool quiet = false;  // save, commit: no progress
  bool lazy = false;  // create, run: IMAGE is an archive, loaded with its layers kept lazy
  std::string max_expansion;
  RunModeFlags mode;  // -d -i -t
};

void add_create_options(CLI::App* c, Args& a) {
  c->add_option("--name", a.name, "container name");
  c->add_option("-e,--env", a.env, "K=V environment variable (repeatable)")->allow_extra_args(false);
  c->add_option("-w,--workdir", a.workdir, "working directory inside the container");
  c->add_option("-u,--user", a.user, "USER[:GROUP] (name or id, from the container's /etc/passwd)");
  c->add_option("-v,--volume", a.volumes, "HOST:CTR[:ro] bind mount (repeatable)")->allow_extra_args(false);
  c->add_option("--hostname", a.hostname, "hostname (default: first 12 chars of the id)");
  c->add_option_function<std::string>(
      "--entrypoint",
      [&a](const std::string& v) {
        a.entrypoint = v;
        a.entrypoint_set = true;
      },
      "override the image's Entrypoint (\"\": none); the image's Cmd is then not used, as in Docker");
  c->add_option("--network,--net", a.network, "host (the default and the only one: strata uses the host's network)");
  c->add_option("--platform", a.platform, "OS/ARCH[/VARIANT]: fail unless the image is that platform");
  c->add_option("--cap-add", a.cap_add, "add a capability to Docker's default set (CHOWN or CAP_CHOWN; ALL)")
      ->allow_extra_args(false);
  c->add_option("--cap-drop", a.cap_drop, "drop a capability from Docker's default set (ALL: all)")
      ->allow_extra_args(false);
  c->add_option("--security-opt", a.security_opt, "seccomp=unconfined or no-new-privileges")->allow_extra_args(false);
  c->add_flag("--privileged", a.privileged,
              "every capability, no seccomp filter, no masked /proc paths, writable /sys (as Docker)");
  c->add_flag("--lazy", a.lazy,
              "IMAGE is an archive or OCI layout: load it as load --lazy does (layers kept as blob + index, "
              "layers already stored reused), then use that image");
  c->add_option("--max-expansion", a.max_expansion, "with --lazy: as load's --max-expansion");
  // IMAGE [CMD [ARG...]]: parsing stops at IMAGE, the rest is left in remaining() as is
  // (an unknown flag before IMAGE is left there too: image_and_command names it).
  c->prefix_command();
  cli::show_positionals(c, "IMAGE [COMMAND] [ARG...]",
                        {{"IMAGE", "the image: NAME[:TAG], NAME@DIGEST or an ID (prefix)"},
                         {"COMMAND [ARG...]", "instead of the image's Cmd; every word after IMAGE belongs to it"}});
}

ContainerSpec spec_of(const Args& a) {
  ContainerSpec s;
  s.image = a.image;
  s.name = a.name;
  s.hostname = a.hostname;
  s.env = a.env;
  s.workdir = a.workdir;
  s.user = a.user;
  s.volumes = a.volumes;
  s.cmd = a.cmd;
  s.security.privileged = a.privileged;
  s.security.cap_add = a.cap_add;
  s.security.cap_drop = a.cap_drop;
  s.security.security_opt = a.security_opt;
  if (a.entrypoint_set)
    s.entrypoint = a.entrypoint.empty() ? std::vector<std::string>{} : std::vector<std::string>{a.entrypoint};
  return s;
}

// create/run --lazy ARCHIVE: the archive's one image loaded as `load --lazy` loads it (nothing
// stored if it holds more than one), its ID then standing for IMAGE.
void load_lazy_image(const StoreLayout& l, Args& a) {
  if (!a.max_expansion.empty() && !a.lazy) throw Error("--max-expansion applies to --lazy only");
  if (!a.lazy) return;
  LoadOptions o;
  o.input = a.image;
  o.lazy = true;
  o.one_image = true;
  if (!a.platform.empty()) o.platform = parse_platform(a.platform);  // else the default, as load's
  if (!a.max_expansion.empty()) o.max_expansion = parse_max_expansion(a.max_expansion);
  Progress quiet(Progress::detect(true));
  a.image = load_images(l, o, quiet).image_ids.at(0);
}

void collect_cmd(CLI::App* c, Args& a) {
  ImageCommand ic = image_and_command(c);
  check_network(c->get_name(), a.network);
  a.image = ic.image;
  a.cmd = ic.cmd;
}

}  // namespace

void add_container_commands(CLI::App& app, const std::string& root) {
  auto args = std::make_shared<Args>();
  Args& a = *args;

  auto* mount = app.add_subcommand("mount", "mount an image read-only with strata-fs and print the mount point");
  auto lazy = std::make_shared<bool>(false);
  mount->add_option("image", a.image, "IMAGE, or with --lazy an archive or OCI layout")->required();
  mount->add_option("dir", a.dir, "mount point (default <root>/mnt/<image-id>)");
  mount->add_flag("--lazy", *lazy, "serve the layers straight from the archive's blobs (no store, no unpacking)");
  auto max_expansion = std::make_shared<std::string>();
  mount->add_option("--max-expansion", *max_expansion,
                    "with --lazy: a layer may decompress to N x its compressed size + 64 MiB (default 100; 0: no "
                    "ratio cap)");
  mount->callback([&root, args, lazy, max_expansion] {
    run_command("mount " + args->image, [&] {
      if (!max_expansion->empty() && !*lazy) throw Error("--max-expansion applies to --lazy only (load checks a store's layers)");
      if (*lazy) {
        LazyMountOptions o{args->image, args->dir, lazy_cache_dir(root), {}};
        if (!max_expansion->empty()) o.max_expansion = parse_max_expansion(*max_expansion);
        std::printf("%s\n", mount_lazy(o, note).c_str());
        return 0;
      }
      std::printf("%s\n", mount_image(store_layout(root), args->image, args->dir, note).c_str());
      return 0;
    });
  });

  auto* umount = app.add_subcommand("umount", "unmount an image mounted with `strata mount`");
  umount->add_option("target", a.dir, "DIR|IMAGE")->required();
  umount->callback([&root, args] {
    run_command("umount " + args->dir, [&] {
      umount_image(store_layout(root), args->dir);
      return 0;
    });
  });

  auto* create = app.add_subcommand("create", "create a container from an image and print its ID");
  add_create_options(create, a);
  add_run_mode_flags(create, a.mode, false);
  create->callback([&root, args, create] {
    collect_cmd(create, *args);
    run_command("create " + args->image, [&] {
      load_lazy_image(store_layout(root), *args);
      check_platform(store_layout(root), args->image, args->platform);
      Container c = create_container(store_layout(root), spec_of(*args));
      record_run_mode(store_layout(root), c, args->mode);
      std::printf("%s\n", c.id.c_str());
      return 0;
    });
  });

  auto* run = app.add_subcommand("run", "create a container and run its command (rootless: user namespaces)");
  run->add_flag("--rm", a.rm, "remove the container when it exits");
  add_run_mode_flags(run, a.mode, true);
  add_create_options(run, a);
  run->callback([&root, args, run] {
    collect_cmd(run, *args);
    StoreLayout l = store_layout(root);
    std::optional<Container> c;
    int code = 125;
    const std::string image = args->image;  // as given, for messages
    try {
      load_lazy_image(l, *args);
      check_platform(l, args->image, args->platform);
      c = create_container(l, spec_of(*args));
      record_run_mode(l, *c, args->mode);
      code = run_created_container(l, *c, args->mode, args->rm);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "strata: run %s: %s\n", image.c_str(), e.what());
    }
    if (c && args->rm && !(args->mode.detach && code == 0)) {  // -d: its monitor removes it
      try {
        remove_container(l, find_container(l, c->id), true);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "strata: run: removing %s: %s\n", c->name.c_str(), e.what());
      }
    }
    std::fflush(stdout);
    std::exit(code);
  });

  auto* ps = app.add_subcommand("ps", "list containers");
  ps->add_flag("-a,--all", a.all, "also containers that are not running");
  ps->add_option("--format", a.format, "json for machine-readable output");
  ps->callback([&root, args] {
    run_command("ps", [&] {
      if (!args->format.empty() && args->format != "json") throw Error("unknown --format \"" + args->format + "\" (only json)");
      StoreLayout l = store_layout(root);
      Repositories repos = Repositories::load(l);
      json rows = json::array();
      for (const auto& c : list_containers(l)) {
        std::string status = c.status();
        if (!args->all && status != "Up") continue;
        std::string image = c.cfg["Config"].value("Image", c.image_id);
        std::string cmd = c.cfg.value("Path", std::string());
        for (const auto& x : c.cfg.value("Args", json::array())) cmd += " " + x.get<std::string>();
        rows.push_back({{"ID", c.id}, {"Names", c.name}, {"Image", image}, {"ImageID", c.image_id}, {"Command", cmd},
                        {"CreatedAt", c.cfg.value("Created", std::string())}, {"Status", status}, {"MountID", c.mount_id}});
      }
      if (args->format == "json") {
        std::printf("%s\n", rows.dump(2).c_str());
        return 0;
      }
      std::printf("%-14s %-24s %-24s %-22s %-18s %s\n", "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES");
      for (const auto& r : rows) {
        std::string cmd = "\"" + r["Command"].get<std::string>() + "\"";
        if (cmd.size() > 24) cmd = cmd.substr(0, 20) + "...\"";
        std::printf("%-14s %-24s %-24s %-22s %-18s %s\n", r["ID"].get<std::string>().substr(0, 12).c_str(),
                    r["Image"].get<std::string>().substr(0, 24).c_str(), cmd.c_str(),
                    r["CreatedAt"].get<std::string>().substr(0, 19).c_str(), r["Status"].get<std::string>().c_str(),
                    r["Names"].get<std::string>().c_str());
      }
      return 0;
    });
  });

  auto* container = app.add_subcommand("container", "container subcommands (mount, umount)");
  container->require_subcommand(1);
  auto* cmount = container->add_subcommand("mount", "mount a container's rw rootfs and print the path");
  cmount->add_option("container", a.name, "CONTAINER")->required();
  cmount->callback([&root, args] {
    run_command("container mount " + args->name, [&] {
      StoreLayout l = store_layout(root);
      std::printf("%s\n", mount_container(l, find_container(l, args->name), note).c_str());
      return 0;
    });
  });
  auto* cumount = container->add_subcommand("umount", "unmount a container's rootfs");
  cumount->add_option("container", a.name, "CONTAINER")->required();
  cumount->callback([&root, args] {
    run_command("container umount " + args->name, [&] {
      StoreLayout l = store_layout(root);
      umount_container(l, find_container(l, args->name));
      return 0;
    });
  });

  auto* diff = app.add_subcommand("diff", "list paths a container added (A), changed (C) or deleted (D)");
  diff->add_option("container", a.name, "CONTAINER")->required();
  diff->callback([&root, args] {
    run_command("diff " + args->name, [&] {
      StoreLayout l = store_layout(root);
      Container c = find_container(l, args->name);
      for (const auto& ch : layer_changes(c.rw_dir(l) + "/diff", container_lower_dirs(l, c)))
        std::printf("%c %s\n", ch.kind, ch.path.c_str());
      return 0;
    });
  });

  auto* commit = app.add_subcommand("commit", "make a new image from a container's changes");
  commit->add_option("container", a.name, "CONTAINER")->required();
  commit->add_option("tag", a.tag, "NAME[:TAG]");
  commit->add_option("-m,--message", a.comment, "history comment");
  commit->add_option("-c,--change", a.changes,
                     "a Dockerfile instruction for the new image's config: CMD, ENTRYPOINT, ENV, EXPOSE, "
                     "HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME, WORKDIR (repeatable)")
      ->allow_extra_args(false);
  commit->add_flag("-q,--quiet", a.quiet, "no progress output (only the image ID)");
  commit->callback([&root, args] {
    run_command("commit " + args->name, [&] {
      StoreLayout l = store_layout(root);
      Progress progress(Progress::detect(args->quiet));
      CommitResult r = commit_container(l, find_container(l, args->name), args->tag, args->comment, args->changes,
                                        &progress);
      progress.message("layer " + r.diff_id + " (gzip " + r.gzip_digest + ")" +
                       (r.layer_reused ? ", already in the store" : ""));
      std::printf("%s\n", r.image_id.c_str());
      return 0;
    });
  });

  auto* save = app.add_subcommand("save", "write images to a docker-archive, oci-archive or oci-dir");
  save->add_option("images", a.refs, "IMAGE...")->required();
  save->add_option("-o,--output", a.output, "output file (dir for oci-dir)")->required();
  save->add_option("--format", a.format, "docker-archive (default), oci-archive or oci-dir");
  save->add_flag("-q,--quiet", a.quiet, "no progress output");
  save->callback([&root, args] {
    run_command("save " + args->output, [&] {
      Progress progress(Progress::detect(args->quiet));
      SaveResult r = save_images(store_layout(root), args->refs, args->output, parse_save_format(args->format), &progress);
      progress.message(std::to_string(r.images) + " image(s), " + std::to_string(r.layers) + " layer(s) written to " +
                       args->output);
      return 0;
    });
  });

  auto* rm = app.add_subcommand("rm", "remove containers (unmount, delete rw and init layers)");
  rm->add_flag("-f,--force", a.force, "also running or busy containers");
  rm->add_option("containers", a.refs, "CONTAINER...")->required();
  rm->callback([&root, args] {
    StoreLayout l = store_layout(root);
    int code = 0;
    for (const auto& ref : args->refs) {
      try {
        remove_container(l, find_container(l, ref), args->force);
        std::printf("%s\n", ref.c_str());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "strata: rm %s: %s\n", ref.c_str(), e.what());
        code = 1;
      }
    }
    std::fflush(stdout);
    std::exit(code);
  });
}

}  // namespace strata::cli
