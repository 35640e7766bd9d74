#!/usr/bin/env bash
# strata demo, for a fresh Debian 12 machine (run as root): builds strata, makes a small
# two-layer image from Debian's busybox-static with umoci, loads it, mounts it read-only
# with strata-fs, then runs a shell command in it as an unprivileged user (user namespaces,
# no setuid helper). Idempotent: uses a temporary store and cleans up its mounts.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
scripts/build.sh
build=${STRATA_BUILD_DIR:-build}
strata=$top/$build/tools/strata
export STRATA_FS=$top/$build/fs/strata-fs
user=strata-demo

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

work=$(mktemp -d /tmp/strata-demo.XXXXXX)
chmod 755 "$work"
cleanup() {
  { grep -o " $work[^ ]*" /proc/self/mountinfo 2>/dev/null || true; } | sort -r | while read -r m; do
    fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

step "1. a small image from busybox-static, two layers, built with umoci"
img=$work/img
umoci init --layout "$img"
umoci new --image "$img:1"
umoci unpack --image "$img:1" "$work/b" >/dev/null
r=$work/b/rootfs
mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root"
cp /bin/busybox "$r/bin/"
for x in $(busybox --list); do [ "$x" = busybox ] || ln -s busybox "$r/bin/$x"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
printf 'root:x:0:\n' >"$r/etc/group"
chmod 1777 "$r/tmp"
umoci repack --image "$img:1" "$work/b"
rm -rf "$work/b"
umoci unpack --image "$img:1" "$work/b" >/dev/null
echo "Hello from a strata container" >"$work/b/rootfs/etc/motd"
umoci repack --image "$img:1" "$work/b"
rm -rf "$work/b"
umoci config --image "$img:1" --config.cmd /bin/sh --config.env PATH=/bin
echo "built $img:1"

step "2. as an unprivileged user ($user): load it into a private store"
id -u "$user" >/dev/null 2>&1 || useradd -m "$user"
# Debian's /dev/fuse is mode 600; a normal user needs it to mount strata-fs.
chmod 666 /dev/fuse
chown -R "$user" "$work"
as_user() { runuser -u "$user" -- env STRATA_FS="$STRATA_FS" "$@"; }
store=$work/store
S() { as_user "$strata" --root "$store" "$@"; }
printf '$ strata load -i %s --tag demo/busybox:1\n' "$img"
S load -i "$img" --tag demo/busybox:1
S images

step "3. mount the image read-only (strata-fs, lowers = the layers' short links) and look inside"
mnt=$(S mount demo/busybox:1)
echo "mounted at $mnt"
as_user ls -l "$mnt" | head -20
as_user cat "$mnt/etc/motd"
S umount demo/busybox:1

step "4. run a shell command in it, as $user (user, mount, pid, uts, ipc namespaces)"
printf '$ strata run --rm --hostname demo demo/busybox:1 sh -c ...\n'
S run --rm --hostname demo demo/busybox:1 sh -c \
  'cat /etc/motd; echo "I am $(id -un) (uid $(id -u)) on $(hostname), pid $$"; echo "ps:"; ps; exit 3' || echo "exit status: $?"

step "5. change files in a container, see the diff, commit it and run the new image"
S run --name demo1 demo/busybox:1 sh -c 'echo changed >/etc/motd; rm /bin/vi; echo new >/root/new.txt'
printf '$ strata diff demo1\n'
S diff demo1
S commit demo1 demo/busybox:2 >/dev/null
S run --rm demo/busybox:2 sh -c 'cat /etc/motd /root/new.txt; ls /bin/vi 2>&1 || true'
S rm demo1
S ps -a
echo
echo "done: the temporary store and its mounts are removed on exit"
