#!/usr/bin/env bash
# The real-client row: podman `dpkg -i` of python3 and its dependencies in a Debian 12 container,
# on native overlay (kernel overlayfs), mount_program=fuse-overlayfs and mount_program=strata-fs,
# interleaved in one run: bench/podman_dpkg.sh [--reps N] [--json FILE] [--keep]
# (--help for more). Needs root, podman, runc, mmdebstrap, fuse-overlayfs and the apt mirror;
# exits 77 with the reason when one is missing. Uses $STRATA_FS, else build/fs/strata-fs (built
# first when missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../${STRATA_BUILD_DIR:-build}
if [ -z "${STRATA_FS:-}" ] && [ ! -x "$build/fs/strata-fs" ]; then
  "$here/../scripts/build.sh" >&2 || cmake --build "$build" --target strata-fs >&2
fi
exec /usr/bin/python3 "$here/podman_dpkg.py" "$@"
