#!/usr/bin/env bash
# Installs every Debian package strata needs to build, test, demo and benchmark.
# Idempotent: does nothing (not even apt-get update) when all are present.
set -euo pipefail

packages=(
  # build
  cmake g++ make pkg-config ninja-build
  libfuse3-dev fuse3 libspdlog-dev libfmt-dev nlohmann-json3-dev libarchive-dev
  libssl-dev libcurl4-openssl-dev libcli11-dev libisal-dev libzstd-dev zlib1g-dev
  libgtest-dev libgmock-dev libacl1-dev libseccomp-dev libcap-dev liburing-dev
  # tests: oracle helpers, rootless runs, real image tools
  attr acl uidmap util-linux kmod python3 strace
  umoci skopeo busybox-static docker-registry tar-split zstd isal apache2-utils openssl
  # tests/distro: a Debian rootfs from the apt mirror, podman with strata-fs as mount_program
  mmdebstrap podman runc
  # tests/docker: dockerd as the judge of Docker's store layout
  docker.io
  # fuzz: libFuzzer targets with ASan/UBSan (the `fuzz` ctest label)
  clang
  # side-by-side benchmarks
  fuse-overlayfs unionfs-fuse
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "strata: missing packages (${missing[*]}) and not root: install them or run as root" >&2
    exit 1
  fi
else
  SUDO=
fi
echo "strata: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
