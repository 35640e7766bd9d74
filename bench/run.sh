#!/usr/bin/env bash
# Side-by-side benchmark of kernel overlayfs, fuse-overlayfs and strata-fs on the same
# layered tree: bench/run.sh [--quick] [--json FILE] [--reps N] [--only KEYS] [--perf DIR]
# [--features] [--variant NAME=OPTS]... [--rootless] (bench/run.sh --help lists every option;
# --list lists the workloads and the columns). Needs root, also for --rootless (which runs the
# mounts and workloads as an unprivileged user and drops the caches for it).
# Builds strata first (scripts/build.sh), then runs bench/overlay_bench.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for a in "$@"; do
  case $a in -h|--help|--list) exec /usr/bin/python3 "$here/overlay_bench.py" "$@";; esac
done
why=()
[ "$(id -u)" -eq 0 ] || why+=("needs root (kernel overlay mounts, drop_caches)")
command -v fuse-overlayfs >/dev/null || why+=("fuse-overlayfs is not installed (apt-get install fuse-overlayfs, or scripts/deps.sh)")
command -v fusermount3 >/dev/null || why+=("fusermount3 is not installed (apt-get install fuse3)")
[ -x /usr/bin/python3 ] || why+=("/usr/bin/python3 is missing")
[ -w /proc/sys/vm/drop_caches ] || why+=("/proc/sys/vm/drop_caches is not writable (cold runs need it; is /proc/sys read-only in this container?)")
[ -e /dev/fuse ] || why+=("/dev/fuse is missing")
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || why+=("kernel overlayfs is not available (modprobe overlay)")
if [ ${#why[@]} -gt 0 ]; then
  printf 'bench/run.sh: cannot run: %s\n' "${why[@]}" >&2
  exit 2
fi
# The whole build can fail on work in progress elsewhere in the tree; the benchmark only
# needs strata-fs, so fall back to building that target alone.
if ! "$here/../scripts/build.sh" >&2; then
  echo "bench/run.sh: scripts/build.sh failed; building only strata-fs" >&2
  cmake --build "$here/../${STRATA_BUILD_DIR:-build}" --target strata-fs >&2
fi
exec /usr/bin/python3 "$here/overlay_bench.py" "$@"
