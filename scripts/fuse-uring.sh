#!/usr/bin/env bash
# The kernel switch for FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING):
#   scripts/fuse-uring.sh status   prints Y or N (or why there is no switch)
#   scripts/fuse-uring.sh on       as root: writes Y; prints the previous value
#   scripts/fuse-uring.sh off      as root: writes N; prints the previous value
#
# With the switch on, every FUSE mount started from then on whose daemon asks for it in INIT
# (strata-fs does unless -o uring=off) gets its requests through per-CPU io_uring queues;
# mounts made earlier keep /dev/fuse. The switch is system-wide and stays until reboot or
# `off`, so turn it on for a benchmark and back off after (`on` prints what to restore).
# Tests never flip it, except the ctest entries labelled `uring`, which set it for their own
# run and restore it after.
set -euo pipefail
switch=/sys/module/fuse/parameters/enable_uring
if [ ! -e "$switch" ]; then
  modprobe fuse 2>/dev/null || true
fi
if [ ! -e "$switch" ]; then
  echo "fuse-uring: $switch does not exist: this kernel has no FUSE over io_uring (needs 6.14+ with CONFIG_FUSE_IO_URING)" >&2
  exit 2
fi
case ${1:-status} in
  status) cat "$switch" ;;
  on|off)
    want=Y; [ "$1" = off ] && want=N
    if [ "$(id -u)" -ne 0 ]; then
      echo "fuse-uring: $1: only root can write $switch" >&2
      exit 1
    fi
    old=$(cat "$switch")
    echo "$want" > "$switch"
    echo "fuse-uring: $switch was $old, now $(cat "$switch")"
    ;;
  *) echo "usage: $0 status|on|off" >&2; exit 2 ;;
esac
