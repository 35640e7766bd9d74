#pragma once
// `-t`: the container's command gets a pty of the container's own devpts (so `tty`, ttyname and
// /dev/pts/N inside name it, as runc does), made by the container init after pivot_root. The
// master goes to the monitor over a unix socket (SCM_RIGHTS); the monitor relays it to its
// stdout, its stdin into it, and its terminal's window size (again on each SIGWINCH).
#include <thread>

#include "layerstore/archive/unique_fd.hpp"

namespace strata {

// Container init side (no exceptions: it runs in a forked child): opens /dev/ptmx, sends the
// master over `sock`, waits until the monitor has set the window size, and returns the slave.
// -1 with errno set on failure.
int open_container_pty(int sock);

// The command's side (forked from the init, no exceptions): a session of its own with `slave`
// as its controlling terminal (job control, ^C) and as stdin, stdout and stderr. False with
// errno set on failure.
bool make_controlling_tty(int slave);

// Monitor side: the master sent by the init, or an empty fd when the init died first.
UniqueFd receive_pty_master(int sock);

// Copies the window size of this process's terminal (stdin, else stdout) onto `master`.
void copy_window_size(int master);

// The caller's terminal in raw mode for as long as this lives (when stdin is a terminal), so
// keys such as ^C and ^D reach the container's line discipline, not ours.
class RawTerminal {
 public:
  RawTerminal();
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  bool active_ = false;
  struct Saved;
  Saved* saved_ = nullptr;
};

// A thread relaying master -> stdout and (keep_stdin) stdin -> master, and SIGWINCH to the
// master's window size, until the last slave closes (the container is gone). join() waits.
class PtyRelay {
 public:
  PtyRelay(UniqueFd master, bool keep_stdin);
  ~PtyRelay();
  void join();

 private:
  UniqueFd master_;
  bool keep_stdin_;
  std::thread thread_;
  void loop();
};

}  // namespace strata
