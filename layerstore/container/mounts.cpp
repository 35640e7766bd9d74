#include "layerstore/container/mounts.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/container/fuse_mount.hpp"
#include "layerstore/error.hpp"
#include "layerstore/store/image_db.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/store_lock.hpp"

namespace strata {

namespace {

std::string absolute(const std::string& p) {
  char buf[PATH_MAX];
  if (realpath(p.c_str(), buf)) return buf;
  throw_errno(p);
}

// Live: reuse. Stale (daemon killed): detach, say so, mount again. Returns true when mounted.
bool check_existing(const std::string& target, const NoteFn& note) {
  switch (mount_state(target)) {
    case MountState::Mounted:
      return true;
    case MountState::Stale:
      note("stale mount at " + target + " (strata-fs is gone); detaching it and mounting again");
      unmount_path(target, true);
      return false;
    case MountState::NotMounted:
      return false;
  }
  return false;
}

}  // namespace

std::string image_mount_dir(const StoreLayout& l, const std::string& image_id) {
  return l.root + "/mnt/" + digest_hex(image_id);
}

std::string mount_image(const StoreLayout& l, const std::string& image, const std::string& dir, const NoteFn& note) {
  if (!store_exists(l)) throw Error("no such image: " + image);
  RangeLock store = read_lock_store(l);
  ImageDb idb(l);
  LayerDb db(l);
  std::string id = idb.resolve(image, Repositories::load(l));
  auto chains = chain_ids(config_diff_ids(idb.config(id)));
  if (chains.empty()) throw Error("image has no layers");
  auto top = db.get(chains.back());
  if (!top) throw Error("top layer " + chains.back() + " is missing from the store");
  std::string target = dir.empty() ? image_mount_dir(l, id) : dir;
  mkdirs(target, 0755);
  target = absolute(target);
  if (check_existing(target, note)) return target;
  OverlayMountSpec s;
  s.lowers = mount_lowers(l, layer_lowers(l, top->cache_id));
  s.target = target;
  s.rootless = geteuid() != 0;
  mount_overlay(l, s);
  return target;
}

std::string umount_image(const StoreLayout& l, const std::string& arg) {
  std::string target;
  bool is_default = false;
  struct stat st;
  if (stat(arg.c_str(), &st) == 0 || errno == ENOTCONN) {
    char cwd[PATH_MAX];
    target = arg.front() == '/' ? arg : std::string(getcwd(cwd, sizeof cwd) ? cwd : ".") + "/" + arg;
    char buf[PATH_MAX];
    if (realpath(target.c_str(), buf)) target = buf;
  } else {
    ImageDb idb(l);
    std::string id = idb.resolve(arg, Repositories::load(l));
    target = image_mount_dir(l, id);
    is_default = true;
  }
  if (target.rfind(l.root + "/mnt/", 0) == 0) is_default = true;
  if (mount_state(target) == MountState::NotMounted) throw Error(target + " is not mounted");
  // As root, umount2 would take down any mount named here (/home, /proc...).
  if (!is_strata_mount(target))
    throw Error(target + " is not a strata mount (strata umount only unmounts what strata mount made)");
  unmount_path(target, mount_state(target) == MountState::Stale);
  if (is_default) rmdir(target.c_str());
  return target;
}

std::string mount_container(const StoreLayout& l, const Container& c, const NoteFn& note) {
  RangeLock store = write_lock_store(l, false);  // writes merged/ and work/; creates a Docker root's lock
  std::string target = c.merged(l);
  mkdirs(target, 0755);
  if (check_existing(target, note)) return target;
  OverlayMountSpec s;
  s.lowers = container_lowers(l, c);
  s.upper = c.rw_dir(l) + "/diff";
  s.work = c.rw_dir(l) + "/work";
  s.target = target;
  s.rootless = geteuid() != 0;
  mount_overlay(l, s);
  return target;
}

void umount_container(const StoreLayout& l, const Container& c) {
  std::string target = c.merged(l);
  MountState st = mount_state(target);
  if (st == MountState::NotMounted) throw Error("container " + c.name + " is not mounted");
  unmount_path(target, st == MountState::Stale);
  rmdir(target.c_str());
}

namespace {

// argv of process `pid` (empty when it is gone or not ours to read).
std::vector<std::string> process_argv(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  for (size_t at = 0; at < all.size();) {
    size_t end = all.find('\0', at);
    if (end == std::string::npos) end = all.size();
    out.push_back(all.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// The value of `key=` in a comma-separated option string ("" when absent).
std::string option_value(const std::string& opts, const std::string& key) {
  for (size_t at = 0; at <= opts.size();) {
    size_t end = opts.find(',', at);
    if (end == std::string::npos) end = opts.size();
    std::string o = opts.substr(at, end - at);
    if (o.rfind(key + "=", 0) == 0) return o.substr(key.size() + 1);
    at = end + 1;
  }
  return "";
}

}  // namespace

std::vector<std::string> image_mounts(const StoreLayout& l, const std::string& image_id) {
  ImageDb idb(l);
  LayerDb db(l);
  auto chains = chain_ids(config_diff_ids(idb.config(image_id)));
  if (chains.empty()) return {};
  auto top = db.get(chains.back());
  if (!top) return {};
  std::string top_lower = mount_lowers(l, layer_lowers(l, top->cache_id)).front();
  std::vector<std::string> out;
  DIR* proc = opendir("/proc");
  if (!proc) return {};
  while (dirent* e = readdir(proc)) {
    std::string pid = e->d_name;
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    auto argv = process_argv(pid);
    if (argv.size() < 3) continue;
    std::string exe = argv[0].substr(argv[0].rfind('/') + 1);
    if (exe != "strata-fs") continue;
    std::string opts;
    for (size_t i = 1; i + 1 < argv.size(); ++i)
      if (argv[i] == "-o") opts = argv[i + 1];
    std::string lowers = option_value(opts, "lowerdir");
    if (option_value(opts, "fsname") != "strata" || !option_value(opts, "upperdir").empty() ||
        lowers.substr(0, lowers.find(':')) != top_lower)
      continue;
    // Lowers are relative to the store's overlay2 dir (the daemon has left it for / since);
    // a short link is 26 random characters, so the same one means this store's layer.
    if (is_strata_mount(argv.back())) out.push_back(argv.back());
  }
  closedir(proc);
  return out;
}

void release_image_mounts(const StoreLayout& l, const std::string& image_id, const std::string& name, bool force) {
  for (const auto& dir : image_mounts(l, image_id)) {
    if (!force) throw Error("image " + name + " is mounted at " + dir + ": strata umount " + dir + " first, or rmi -f");
    unmount_path(dir, false);
    if (dir.rfind(l.root + "/mnt/", 0) == 0) rmdir(dir.c_str());
  }
}

}  // namespace strata
