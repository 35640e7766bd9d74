#include "layerstore/container/signal_forwarding.hpp"

#include <signal.h>

namespace strata {

namespace {

volatile sig_atomic_t g_forward_pid = 0;
constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

void forward_signal(int sig) {
  if (g_forward_pid > 0) kill(g_forward_pid, sig);
}

}  // namespace

void block_forwarded_signals(bool block) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kForwarded) sigaddset(&set, s);
  sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

void forward_also(int sig) {
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

void forward_signals_to(pid_t pid) {
  g_forward_pid = pid;
  if (pid == 0) return;
  for (int s : kForwarded) forward_also(s);
}

}  // namespace strata
