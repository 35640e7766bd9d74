#include "layerstore/container/container.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <set>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/container/fuse_mount.hpp"
#include "layerstore/container/lifecycle.hpp"
#include "layerstore/container/process_identity.hpp"
#include "layerstore/error.hpp"
#include "layerstore/store/image_db.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/store_lock.hpp"
#include "layerstore/timestamp.hpp"

namespace strata {

using nlohmann::json;

namespace {

std::vector<std::string> list_names(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = opendir(path.c_str());
  if (!d) return out;
  while (auto* e = readdir(d))
    if (e->d_name[0] != '.') out.push_back(e->d_name);
  closedir(d);
  return out;
}

std::string generate_name(const std::string& id) {
  static const char* adj[] = {"brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet", "sharp", "witty"};
  static const char* noun[] = {"ant", "bee", "crane", "dingo", "eel", "fox", "gnu", "heron", "ibis", "lynx"};
  unsigned v = std::stoul(id.substr(0, 6), nullptr, 16);
  return std::string(adj[v % 10]) + "_" + noun[(v / 10) % 10] + "_" + id.substr(6, 4);
}

bool valid_name(const std::string& n) {
  if (n.empty() || !isalnum(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

// Docker's init layer (daemon/initlayer): what every container needs before it starts.
void write_init_content(const std::string& diff) {
  for (const char* d : {"/dev", "/dev/pts", "/dev/shm", "/proc", "/sys", "/etc"})
    if (mkdir((diff + d).c_str(), 0755) != 0 && errno != EEXIST) throw_errno("mkdir " + diff + d);
  for (const char* f : {"/.dockerenv", "/etc/resolv.conf", "/etc/hosts", "/etc/hostname", "/dev/console"}) {
    int fd = open((diff + f).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    if (fd < 0) throw_errno("create " + diff + f);
    fchmod(fd, 0755);
    close(fd);
  }
  if (symlink("/proc/mounts", (diff + "/etc/mtab").c_str()) != 0) throw_errno("symlink " + diff + "/etc/mtab");
}

// overlay2/<dir>/{diff,work,link,lower} + l/<link>, like the graph driver's Create.
void make_layer_dir(const StoreLayout& l, const std::string& dir_name, const std::string& lower) {
  std::string dir = l.overlay2() + "/" + dir_name;
  if (mkdir(dir.c_str(), 0710) != 0) throw_errno("mkdir " + dir);
  for (const char* sub : {"/diff", "/work"})
    if (mkdir((dir + sub).c_str(), 0755) != 0) throw_errno("mkdir " + dir + sub);
  std::string link = random_link_id();
  UniqueFd fd = open_dir(dir);
  write_file_at(fd.get(), "link", link, 0644);
  if (!lower.empty()) write_file_at(fd.get(), "lower", lower, 0644);
  if (symlink(("../" + dir_name + "/diff").c_str(), (l.links() + "/" + link).c_str()) != 0)
    throw_errno("symlink " + l.links() + "/" + link);
}

std::string join_lowers(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ":") + x;
  return s;
}

json string_array(const std::vector<std::string>& v) { return json(v); }

std::string hosts_file(const std::string& hostname) {
  return "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
         "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t" + hostname + "\n";
}

std::string host_resolv_conf() {
  try {
    return read_file("/etc/resolv.conf");
  } catch (const Error&) {
    return "nameserver 8.8.8.8\n";
  }
}

void remove_layer_dir(const StoreLayout& l, const std::string& dir_name) {
  std::string dir = l.overlay2() + "/" + dir_name;
  if (!path_exists(dir)) return;
  if (path_exists(dir + "/link")) unlink((l.links() + "/" + read_file(dir + "/link")).c_str());
  remove_tree_forced(dir);
}

}  // namespace

// The container's init as recorded by strata run.
static ProcessRef recorded_init(const json& cfg) {
  const json& st = cfg.contains("State") ? cfg["State"] : json::object();
  ProcessRef p;
  if (st.contains("Pid") && st["Pid"].is_number_integer()) p.pid = st["Pid"].get<pid_t>();
  if (st.contains("PidStartTime") && st["PidStartTime"].is_number_unsigned())
    p.start_time = st["PidStartTime"].get<std::uint64_t>();
  return p;
}

std::string containers_root(const StoreLayout& l) { return l.root + "/containers"; }

std::string Container::status() const {
  const json& st = cfg.contains("State") ? cfg["State"] : json::object();
  if (st.value("Running", false)) {
    if (process_running(recorded_init(cfg))) return "Up";
    return "Exited (unknown: strata run was killed)";
  }
  if (!st.value("StartedAt", std::string()).empty())
    return "Exited (" + std::to_string(st.value("ExitCode", 0)) + ")";
  return "Created";
}

Container create_container(const StoreLayout& l, const ContainerSpec& spec) {
  resolve_confinement(spec.security);  // a bad --cap-add or --security-opt fails before anything is made
  if (!store_exists(l)) throw Error("no such image: " + spec.image);
  RangeLock store = write_lock_store(l, false);
  ImageDb idb(l);
  LayerDb db(l);
  std::string image_id = idb.resolve(spec.image, Repositories::load(l));
  std::string config_bytes = idb.config(image_id);
  auto chains = chain_ids(config_diff_ids(config_bytes));
  if (chains.empty()) throw Error("image " + spec.image + " has no layers");
  auto top = db.get(chains.back());
  if (!top) throw Error("image " + spec.image + ": top layer " + chains.back() + " is missing from the store");

  Container c;
  c.id = random_hex_id();
  c.mount_id = random_hex_id();
  c.image_id = image_id;
  c.name = spec.name.empty() ? generate_name(c.id) : spec.name;
  if (!valid_name(c.name)) throw Error("invalid container name \"" + c.name + "\" (letters, digits, _ . -)");
  mkdirs(containers_root(l), 0710);
  RangeLock index = lock_index(l.lock_file());
  for (const auto& other : list_containers(l))
    if (other.name == c.name) throw Error("the name \"" + c.name + "\" is already used by container " + other.id.substr(0, 12));

  json image_cfg = json::parse(config_bytes);
  json icfg = image_cfg.contains("config") && image_cfg["config"].is_object() ? image_cfg["config"] : json::object();
  auto arr = [&](const char* k) {
    std::vector<std::string> v;
    if (icfg.contains(k) && icfg[k].is_array())
      for (const auto& x : icfg[k]) v.push_back(x.get<std::string>());
    return v;
  };
  std::vector<std::string> entrypoint = spec.entrypoint ? *spec.entrypoint : arr("Entrypoint");
  // As Docker's merge: an --entrypoint (even "") drops the image's Cmd too, since that Cmd
  // was meant as the arguments of the image's own entrypoint.
  std::vector<std::string> cmd = spec.cmd.empty() && !spec.entrypoint ? arr("Cmd") : spec.cmd;
  std::vector<std::string> env = arr("Env");
  for (const auto& kv : spec.env) {
    std::string key = kv.substr(0, kv.find('='));
    std::erase_if(env, [&](const std::string& e) { return e.substr(0, e.find('=')) == key; });
    env.push_back(kv.find('=') == std::string::npos ? kv + "=" : kv);
  }
  std::string hostname = spec.hostname.empty() ? c.id.substr(0, 12) : spec.hostname;
  std::string workdir = spec.workdir.empty() ? icfg.value("WorkingDir", std::string()) : spec.workdir;
  std::string user = spec.user.empty() ? icfg.value("User", std::string()) : spec.user;
  std::vector<std::string> argv = entrypoint;
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  if (argv.empty()) throw Error("no command specified (the image has no Entrypoint or Cmd)");

  std::string cdir = c.dir(l);
  std::string mounts = l.layerdb_mounts() + "/" + c.id;
  try {
    // Layers first, then the mounts entry that indexes them, then the container dir.
    make_layer_dir(l, c.mount_id + "-init", join_lowers(layer_lowers(l, top->cache_id)));
    write_init_content(l.overlay2() + "/" + c.mount_id + "-init/diff");
    make_layer_dir(l, c.mount_id, join_lowers(layer_lowers(l, c.mount_id + "-init")));
    std::string tmp = l.layerdb_tmp() + "/mount-" + c.id;
    mkdirs(tmp, 0700);
    UniqueFd tfd = open_dir(tmp);
    write_file_at(tfd.get(), "mount-id", c.mount_id, 0644);
    write_file_at(tfd.get(), "init-id", c.mount_id + "-init", 0644);
    write_file_at(tfd.get(), "parent", chains.back(), 0644);
    mkdirs(l.layerdb_mounts(), 0700);
    if (rename(tmp.c_str(), mounts.c_str()) != 0) throw_errno("rename " + tmp);

    if (mkdir(cdir.c_str(), 0710) != 0) throw_errno("mkdir " + cdir);
    UniqueFd cfd = open_dir(cdir);
    write_file_at(cfd.get(), "hostname", hostname + "\n", 0644);
    write_file_at(cfd.get(), "hosts", hosts_file(hostname), 0644);
    write_file_at(cfd.get(), "resolv.conf", host_resolv_conf(), 0644);
    c.cfg = {{"ID", c.id},
             {"Created", rfc3339_now()},
             {"Path", argv[0]},
             {"Args", string_array({argv.begin() + 1, argv.end()})},
             {"Config",
              {{"Hostname", hostname},
               {"User", user},
               {"Env", env},
               {"Cmd", cmd},
               {"Entrypoint", entrypoint.empty() ? json(nullptr) : json(entrypoint)},
               {"WorkingDir", workdir},
               {"Image", spec.image}}},
             {"Image", image_id},
             {"Name", "/" + c.name},
             {"Driver", "overlay2"},
             {"State", {{"Running", false}, {"Pid", 0}, {"ExitCode", 0}, {"StartedAt", ""}, {"FinishedAt", ""}}},
             {"HostnamePath", cdir + "/hostname"},
             {"HostsPath", cdir + "/hosts"},
             {"ResolvConfPath", cdir + "/resolv.conf"},
             {"Volumes", spec.volumes},
             {"HostConfig", host_config_json(spec.security)},
             {"MountId", c.mount_id}};
    write_file_at(cfd.get(), "config.v2.json", c.cfg.dump(), 0600);
  } catch (...) {
    remove_tree_forced(cdir);
    remove_tree_forced(mounts);
    remove_tree_forced(l.layerdb_tmp() + "/mount-" + c.id);
    remove_layer_dir(l, c.mount_id);
    remove_layer_dir(l, c.mount_id + "-init");
    throw;
  }
  return c;
}

static std::optional<Container> load_container(const StoreLayout& l, const std::string& id) {
  std::string p = containers_root(l) + "/" + id + "/config.v2.json";
  if (!path_exists(p)) return std::nullopt;
  Container c;
  c.cfg = json::parse(read_file(p), nullptr, false);
  if (!c.cfg.is_object()) throw Error("containers/" + id + "/config.v2.json is not valid JSON");
  c.id = id;
  c.name = c.cfg.value("Name", std::string("/"));
  if (!c.name.empty() && c.name[0] == '/') c.name.erase(0, 1);
  c.image_id = c.cfg.value("Image", std::string());
  std::string mid = l.layerdb_mounts() + "/" + id + "/mount-id";
  c.mount_id = path_exists(mid) ? read_file(mid) : c.cfg.value("MountId", std::string());
  return c;
}

std::vector<Container> list_containers(const StoreLayout& l) {
  std::vector<Container> out;
  for (const auto& id : list_names(containers_root(l)))
    if (auto c = load_container(l, id)) out.push_back(*c);
  std::sort(out.begin(), out.end(), [](const Container& a, const Container& b) {
    return a.cfg.value("Created", std::string()) > b.cfg.value("Created", std::string());
  });
  return out;
}

Container find_container(const StoreLayout& l, const std::string& ref) {
  std::vector<Container> all = list_containers(l);
  for (const auto& c : all)
    if (c.id == ref || c.name == ref) return c;
  std::vector<const Container*> hits;
  for (const auto& c : all)
    if (!ref.empty() && c.id.compare(0, ref.size(), ref) == 0) hits.push_back(&c);
  if (hits.size() == 1) return *hits[0];
  if (hits.size() > 1) throw Error("container id prefix \"" + ref + "\" is ambiguous");
  throw Error("no such container: " + ref);
}

void save_container(const StoreLayout& l, const Container& c) {
  write_file_atomic(c.dir(l) + "/config.v2.json", c.cfg.dump(), 0600);
}

std::vector<std::string> container_lowers(const StoreLayout& l, const Container& c) {
  return mount_lowers(l, layer_lowers(l, c.mount_id + "-init"));
}

std::vector<std::string> container_lower_dirs(const StoreLayout& l, const Container& c) {
  std::vector<std::string> out;
  for (const auto& x : container_lowers(l, c)) out.push_back(x.front() == '/' ? x : l.overlay2() + "/" + x);
  return out;
}

void remove_container(const StoreLayout& l, const Container& c, bool force) {
  if (c.status() == "Up") {
    if (!force) throw Error("container " + c.name + " is running (stop it or use -f)");
    // The init is pid 1 of the container's pid namespace: when it goes, the kernel kills the
    // rest, strata run sees it and strata-fs unmounts.
    ProcessRef init = recorded_init(c.cfg);
    if (signal_process(init, SIGKILL)) wait_process_gone(init, std::chrono::seconds(10));
    // Its monitor then stops strata-fs and records the exit: removing the layers before that
    // left strata-fs to unmount a deleted mount point ("fuse: failed to unmount").
    wait_exit_recorded(l, c);
  }
  // A container dockerd created may be the first thing strata writes on its root: the lock
  // file is created then, as for the other writing commands.
  RangeLock store = write_lock_store(l, true);
  std::string merged = c.merged(l);
  if (!c.mount_id.empty() && mount_state(merged) != MountState::NotMounted) {
    if (!force && mount_state(merged) == MountState::Mounted) {
      try {
        unmount_path(merged);
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (busy? use -f)");
      }
    } else {
      unmount_path(merged, true);
    }
  }
  // Unindex first: a crash leaves orphan overlay2 dirs that prune removes, never an
  // entry pointing at half-deleted layers.
  std::string mounts = l.layerdb_mounts() + "/" + c.id;
  if (path_exists(mounts)) {
    std::string trash = l.layerdb_tmp() + "/rm-mount-" + c.id;
    remove_tree_forced(trash);
    if (rename(mounts.c_str(), trash.c_str()) != 0) throw_errno("remove " + mounts);
    remove_tree_forced(trash);
  }
  if (!c.mount_id.empty()) {
    remove_layer_dir(l, c.mount_id);
    remove_layer_dir(l, c.mount_id + "-init");
  }
  remove_tree_forced(c.dir(l));
}

std::vector<std::string> images_used_by_containers(const StoreLayout& l) {
  std::set<std::string> ids;
  for (const auto& c : list_containers(l)) ids.insert(c.image_id);
  return {ids.begin(), ids.end()};
}

}  // namespace strata
