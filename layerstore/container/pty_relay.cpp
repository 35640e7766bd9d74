#include "layerstore/container/pty_relay.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace strata {

namespace {

int g_winch_wr = -1;  // SIGWINCH -> the relay thread (a self-pipe: the handler only writes)

void on_winch(int) {
  int saved = errno;
  if (g_winch_wr >= 0) (void)!write(g_winch_wr, "w", 1);
  errno = saved;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pfd {fd, POLLOUT, 0};
        poll(&pfd, 1, -1);
        continue;
      }
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

int open_container_pty(int sock) {
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return -1;
  int slave = -1;
  if (unlockpt(master) == 0) slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    int e = errno;
    close(master);
    errno = e;
    return -1;
  }
  char byte = 't';
  struct iovec iov {&byte, 1};
  alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &master, sizeof(int));
  ssize_t sent;
  while ((sent = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  close(master);
  // The monitor answers once the window size is set, so the command's first `stty size` sees it.
  ssize_t got = -1;
  if (sent == 1)
    while ((got = read(sock, &byte, 1)) < 0 && errno == EINTR) {
    }
  if (got != 1) {
    close(slave);
    errno = EPIPE;
    return -1;
  }
  return slave;
}

bool make_controlling_tty(int slave) {
  if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) != 0) return false;
  for (int fd = 0; fd < 3; ++fd)
    if (dup2(slave, fd) != fd) return false;
  return true;
}

UniqueFd receive_pty_master(int sock) {
  char byte;
  struct iovec iov {&byte, 1};
  alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  ssize_t n;
  while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n != 1) return UniqueFd();
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cm), sizeof fd);
      return UniqueFd(fd);
    }
  }
  return UniqueFd();
}

void copy_window_size(int master) {
  struct winsize ws {};
  if (ioctl(0, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
}

struct RawTerminal::Saved {
  struct termios tio;
};

RawTerminal::RawTerminal() {
  if (!isatty(0)) return;
  saved_ = new Saved;
  if (tcgetattr(0, &saved_->tio) != 0) return;
  struct termios raw = saved_->tio;
  cfmakeraw(&raw);
  active_ = tcsetattr(0, TCSADRAIN, &raw) == 0;
}

RawTerminal::~RawTerminal() {
  if (active_) tcsetattr(0, TCSADRAIN, &saved_->tio);
  delete saved_;
}

PtyRelay::PtyRelay(UniqueFd master, bool keep_stdin) : master_(std::move(master)), keep_stdin_(keep_stdin) {
  thread_ = std::thread([this] { loop(); });
}

PtyRelay::~PtyRelay() { join(); }

void PtyRelay::join() {
  if (thread_.joinable()) thread_.join();
}

void PtyRelay::loop() {
  // A reader of our stdout that went away: write() fails with EPIPE here instead of killing us.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
  int winch[2];
  if (pipe2(winch, O_CLOEXEC | O_NONBLOCK) != 0) winch[0] = winch[1] = -1;
  UniqueFd winch_rd(winch[0]), winch_wr(winch[1]);
  g_winch_wr = winch_wr.get();
  struct sigaction sa {}, old {};
  sa.sa_handler = on_winch;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGWINCH, &sa, &old);
  copy_window_size(master_.get());  // a resize between the init's pty and this thread
  bool in_open = keep_stdin_;
  char buf[16384];
  for (;;) {
    struct pollfd p[3] = {{master_.get(), POLLIN, 0}, {winch_rd.get(), POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}};
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents) {
      ssize_t n = read(master_.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EIO: no slave is open any more, the container is gone
      if (!write_all(1, buf, static_cast<size_t>(n))) break;
    }
    if (p[1].revents) {
      while (read(winch_rd.get(), buf, sizeof buf) > 0) {
      }
      copy_window_size(master_.get());
    }
    if (p[2].revents) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // End of the caller's input: the terminal's end-of-file character, as a user's ^D.
        struct termios t {};
        char eof = tcgetattr(master_.get(), &t) == 0 ? static_cast<char>(t.c_cc[VEOF]) : '\x04';
        write_all(master_.get(), &eof, 1);
        in_open = false;
      } else if (!write_all(master_.get(), buf, static_cast<size_t>(n))) {
        in_open = false;
      }
    }
  }
  sigaction(SIGWINCH, &old, nullptr);
  g_winch_wr = -1;
}

}  // namespace strata
