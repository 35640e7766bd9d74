#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with ctest.
# Tests that need root, /dev/fuse or kernel overlayfs and cannot have them are reported as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
build=${STRATA_BUILD_DIR:-build}
cd "$build"
ctest --output-on-failure --timeout 600 -j"${STRATA_TEST_JOBS:-2}" "$@"
