// Passing the signals a user sends to `strata run` or `strata exec` (INT, TERM, HUP, QUIT, USR1,
// USR2) on to the one child that should get them, hop by hop down to the container's command.
#pragma once

#include <sys/types.h>

namespace strata {

// Blocks (true) or unblocks the forwarded signals. Each hop holds them blocked from before its
// fork until its handler knows the child, so a signal sent meanwhile waits (and is passed on
// once) instead of being lost or killing a half-made container.
void block_forwarded_signals(bool block);

// From now on each forwarded signal this process gets is sent to `pid`; 0 sends it nowhere.
// Does not unblock them.
void forward_signals_to(pid_t pid);

// Passes `sig` on to the same pid as well (the container's init forwards every signal a
// process can catch, not only the ones a user sends to strata).
void forward_also(int sig);

}  // namespace strata
