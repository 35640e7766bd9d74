#!/usr/bin/env bash
# Real programs over lazy layers (issue 15), against the same image unpacked. The image is the
# two-layer gzip Debian 12 of tests/distro/lazy_image.py (minbase, then a committed apt-get
# install procps less with apt's lists; built from this machine's apt mirror and cached in
# /var/cache/strata-tests), loaded into one store with `load --lazy` and into another with
# `load`. Each row is a fresh `strata run --rm` over each store in turn (lazy, unpacked, lazy,
# ...), N tries each (--tries, default 3), the median and range in ms and the ratio of the
# medians. Each container starts with a new strata-fs, so its chunk cache is cold; the blobs
# and layer files stay in the page cache, as on a machine that just loaded the image.
# Rows: `true` (start and exit), `dpkg -V` (every package file read and hashed), `tar` of / into
# sha256sum (every file read), `find /` (names and attributes only), `apt-get update && apt-get
# install nano` (the mirror; installs over the image, copy-ups included).
# Usage: bench/lazy_distro.sh [--tries N] [STRATA_BIN]   (root; needs the apt mirror)
set -euo pipefail
tries=3
while [[ ${1:-} == --* ]]; do
  case $1 in
    --tries) tries=$2; shift 2 ;;
    *) echo "bench/lazy_distro.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $tries =~ ^[1-9][0-9]*$ ]] || { echo "bench/lazy_distro.sh: --tries takes a positive number" >&2; exit 2; }
here=$(dirname "$(realpath "$0")")
strata=$(realpath "${1:-$here/../build/tools/strata}")
[[ $(id -u) == 0 ]] || { echo "bench/lazy_distro.sh: needs root (mmdebstrap, containers)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/strata-lazy-distro-XXXXXX)
cleanup() {
  awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | while read -r m; do fusermount3 -u "$m" || umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

img=strata-bench/debian-procps:12
layout=$(STRATA_BIN=$strata python3 "$here/../tests/distro/lazy_image.py" | tail -1)
[[ -d $layout ]] || { echo "bench/lazy_distro.sh: no image ($layout)" >&2; exit 1; }
for store in lazy unpacked; do
  flag=$([[ $store == lazy ]] && echo --lazy || true)
  "$strata" --root "$work/$store" load -q $flag --tag "$img" -i "$layout" >/dev/null
done

now() { date +%s%N; }
# The median and range of the numbers on stdin: "MEDIAN MIN-MAX".
stats() { sort -n | awk '{v[NR] = $1} END {printf "%d %d-%d", v[int((NR + 1) / 2)], v[1], v[NR]}'; }

row() {
  local name=$1 script=$2 store t0 i
  declare -A ms=([lazy]="" [unpacked]="")
  for ((i = 0; i < tries; i++)); do
    for store in lazy unpacked; do
      t0=$(now)
      "$strata" --root "$work/$store" run --rm "$img" bash -c "$script" >/dev/null 2>&1 ||
        { echo "bench/lazy_distro.sh: $name failed over the $store store" >&2; exit 1; }
      ms[$store]+="$(( ($(now) - t0) / 1000000 ))"$'\n'
    done
  done
  local l u
  l=$(printf '%s' "${ms[lazy]}" | stats)
  u=$(printf '%s' "${ms[unpacked]}" | stats)
  printf '| %s | %s ms | %s | %s ms | %s | %.2fx |\n' "$name" "${l% *}" "${l#* }" "${u% *}" "${u#* }" \
    "$(echo "${l% *} / ${u% *}" | bc -l)"
}

echo "| workload (strata run --rm) | lazy median | range | unpacked median | range | ratio |"
echo "| --- | --- | --- | --- | --- | --- |"
row "true" "true"
row "dpkg -V" "dpkg -V"
row "tar of / into sha256sum" "tar -C / --one-file-system -cf - . 2>/dev/null | sha256sum"
row "find /" "find / -xdev | wc -l"
row "apt-get update && apt-get install nano" \
  "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nano"
