#include "layerstore/container/exec.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>

#include "layerstore/container/child_exit.hpp"
#include "layerstore/container/command_exec.hpp"
#include "layerstore/container/container_join.hpp"
#include "layerstore/container/pty_relay.hpp"
#include "layerstore/container/signal_forwarding.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {

int wait_status(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return 125;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 125;
}

void die_with_parent(pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die_errno("PR_SET_PDEATHSIG");
  if (getppid() != parent) _exit(125);
}

// The joining child: enters the container, forks the command there (it is then in the
// container's pid namespace) and reports its status. In a session of its own, so a terminal's
// ^C reaches strata exec alone, which passes it on once. With `tty_sock` (-t) the command
// gets a pty of the container's devpts as its controlling terminal (pty_relay.hpp).
[[noreturn]] void joiner(const ContainerNamespaces& ns, const ContainerCommand& cmd, const Confinement& conf,
                         pid_t parent, int tty_sock) {
  die_with_parent(parent);
  if (setsid() < 0) die_errno("setsid");
  join_container_namespaces(ns, true);
  // It holds every capability of the container's user namespace until the command drops them.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  pid_t child = fork();
  if (child < 0) die_errno("fork");
  if (child == 0) {
    // Its parent is outside its pid namespace (getppid() says 0): the death signal alone.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die_errno("PR_SET_PDEATHSIG");
    if (tty_sock >= 0) {
      int slave = open_container_pty(tty_sock);
      if (slave < 0) die_errno("open a pty in the container");
      if (!make_controlling_tty(slave)) die_errno("make the pty the controlling terminal");
    } else if (setsid() < 0) {
      die_errno("setsid");
    }
    exec_container_command(cmd, conf);
  }
  if (tty_sock >= 0) close(tty_sock);  // the command alone holds it: strata exec sees its end
  forward_signals_to(child);
  block_forwarded_signals(false);
  _exit(wait_status(child));
}

}  // namespace

int exec_in_container(const Container& c, const ExecRequest& r) {
  if (r.argv.empty()) throw Error("no command given");
  ContainerNamespaces ns = open_container_namespaces(c);
  Confinement conf = confinement_of(c.cfg);
  ContainerCommand cmd = container_command(c.cfg);
  cmd.argv = r.argv;
  cmd.env = env_with(cmd.env, r.env);
  if (!r.user.empty()) cmd.user = r.user;
  if (!r.workdir.empty()) cmd.workdir = r.workdir;
  cmd.create_workdir = false;  // as docker exec: a missing -w is an error, not made
  cmd.not_found_status = 126;   // docker exec answers a missing command with runc's 126
  if (r.tty) cmd.env = env_with({"TERM=xterm"}, cmd.env);  // as docker exec -t, unless the env has one
  int tty[2] = {-1, -1};
  if (r.tty && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tty) != 0) throw_errno("socketpair");
  UniqueFd tty_sock(tty[0]), tty_child(tty[1]);
  UniqueFd null;
  if (!r.keep_stdin) {
    null = UniqueFd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null) throw_errno("open /dev/null");
  }
  child_command_name() = "exec";
  pid_t parent = getpid();
  block_forwarded_signals(true);
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    block_forwarded_signals(false);
    throw SysError("fork", err);
  }
  if (pid == 0) {
    if (null && dup2(null.get(), 0) != 0) die_errno("dup2");
    joiner(ns, cmd, conf, parent, tty_child.get());
  }
  tty_child.reset();
  forward_signals_to(pid);
  block_forwarded_signals(false);
  // -t: the command opens the pty once in the container and waits for the window size.
  std::optional<RawTerminal> raw;
  std::optional<PtyRelay> relay;
  if (tty_sock) {
    UniqueFd master = receive_pty_master(tty_sock.get());
    if (master) {
      copy_window_size(master.get());
      if (r.keep_stdin) raw.emplace();
      (void)!send(tty_sock.get(), "g", 1, MSG_NOSIGNAL);  // an init gone already: EPIPE, not our death
      relay.emplace(std::move(master), r.keep_stdin);
    }
    tty_sock.reset();
  }
  int status = wait_status(pid);
  forward_signals_to(0);
  if (relay) relay->join();  // the rest of the pty's output
  return status;
}

}  // namespace strata
