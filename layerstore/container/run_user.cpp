#include "layerstore/container/run_user.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "layerstore/error.hpp"

namespace strata {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, sep);) out.push_back(x);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

bool all_digits(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

std::vector<std::vector<std::string>> read_db(const std::string& path) {
  std::vector<std::vector<std::string>> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') out.push_back(split(line, ':'));
  return out;
}

void write_proc(pid_t pid, const char* file, const std::string& text) {
  std::string p = "/proc/" + std::to_string(pid) + "/" + file;
  int fd = open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw_errno("open " + p);
  ssize_t n = write(fd, text.data(), text.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) throw SysError("write " + p + " \"" + text + "\"", err);
}

void run_helper(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) throw_errno("wait for " + argv[0]);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) throw Error(argv[0] + " failed");
}

}  // namespace

std::optional<std::pair<unsigned long, unsigned long>> subordinate_range(const std::string& file, uid_t uid) {
  struct passwd* pw = getpwuid(uid);
  std::string name = pw ? pw->pw_name : "";
  for (const auto& f : read_db(file)) {
    if (f.size() < 3 || !all_digits(f[1]) || !all_digits(f[2])) continue;
    if (f[0] == name || f[0] == std::to_string(uid)) return std::make_pair(std::stoul(f[1]), std::stoul(f[2]));
  }
  return std::nullopt;
}

ExecUser resolve_exec_user(const std::string& spec, const std::string& passwd, const std::string& group) {
  ExecUser u;
  if (spec.empty()) return u;
  std::string user = spec.substr(0, spec.find(':'));
  std::string grp = spec.find(':') == std::string::npos ? "" : spec.substr(spec.find(':') + 1);
  auto users = read_db(passwd);
  bool found = false;
  std::string name;
  for (const auto& f : users) {
    if (f.size() < 6) continue;
    if (f[0] == user || (all_digits(user) && f[2] == user)) {
      u.uid = static_cast<uid_t>(std::stoul(f[2]));
      u.gid = all_digits(f[3]) ? static_cast<gid_t>(std::stoul(f[3])) : 0;
      u.home = f[5].empty() ? "/" : f[5];
      name = f[0];
      found = true;
      break;
    }
  }
  if (!found) {
    if (!all_digits(user)) throw Error("unable to find user " + user + ": no matching entries in passwd file");
    u.uid = static_cast<uid_t>(std::stoul(user));
    u.gid = u.uid == 0 ? 0 : u.uid;
    u.home = "/";
  }
  auto groups = read_db(group);
  if (!grp.empty()) {
    bool g_found = false;
    for (const auto& f : groups)
      if (f.size() >= 3 && (f[0] == grp || (all_digits(grp) && f[2] == grp))) {
        u.gid = static_cast<gid_t>(std::stoul(f[2]));
        g_found = true;
        break;
      }
    if (!g_found) {
      if (!all_digits(grp)) throw Error("unable to find group " + grp + ": no matching entries in group file");
      u.gid = static_cast<gid_t>(std::stoul(grp));
    }
  } else if (!name.empty()) {
    for (const auto& f : groups)
      if (f.size() >= 4 && all_digits(f[2]))
        for (const auto& m : split(f[3], ','))
          if (m == name && static_cast<gid_t>(std::stoul(f[2])) != u.gid) u.groups.push_back(static_cast<gid_t>(std::stoul(f[2])));
  }
  return u;
}

std::string map_user_namespace(pid_t pid) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  auto sub_uid = subordinate_range("/etc/subuid", uid);
  auto sub_gid = subordinate_range("/etc/subgid", uid);
  if (sub_uid && sub_gid && access("/usr/bin/newuidmap", X_OK) == 0 && access("/usr/bin/newgidmap", X_OK) == 0) {
    try {
      std::string p = std::to_string(pid);
      run_helper({"newuidmap", p, "0", std::to_string(uid), "1", "1", std::to_string(sub_uid->first),
                  std::to_string(sub_uid->second)});
      run_helper({"newgidmap", p, "0", std::to_string(gid), "1", "1", std::to_string(sub_gid->first),
                  std::to_string(sub_gid->second)});
      return "newuidmap";
    } catch (const Error&) {
      // fall through to the single mapping (it may already be partly written: then it fails below)
    }
  }
  write_proc(pid, "uid_map", "0 " + std::to_string(uid) + " 1\n");
  write_proc(pid, "setgroups", "deny");
  write_proc(pid, "gid_map", "0 " + std::to_string(gid) + " 1\n");
  return "single";
}

}  // namespace strata
