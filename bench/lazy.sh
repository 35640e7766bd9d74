#!/usr/bin/env bash
# Lazy layers against unpacking, in one run (issue 15). Images: a ~1 GB (uncompressed) 4-layer
# OCI image from make_oci_image.py, as gzip and as zstd (skopeo), plus a one-layer image holding
# one big file for read throughput. For each variant:
#   - time from the command to the first `ls /` and to the first read of a file deep in the
#     bottom layer: `strata mount --lazy` with a cold index cache, again with the index cached,
#     `strata load` + `strata mount`, and `strata load --lazy` + `strata mount` (the image kept
#     lazy in a store); page cache dropped before each. The three cold rows are the median of
#     N tries (--tries, default 3), taken interleaved (lazy, load, load --lazy, lazy, ...) so a
#     slow spell of the machine hits all three alike; each row prints the tries' range too;
#   - disk used: the blobs + the index cache against the store after load and after load --lazy;
#   - sequential read of the big file through the lazy layer and through the unpacked one.
#   - a container's first read of the deep file, end to end: one `strata run --lazy ARCHIVE`
#     against `strata load` + `strata run` (the image has no programs: the host's static busybox
#     is bound in read-only to run `cat`).
#   - real files (this host's /usr/include and /usr/lib/python3 as one gzip and one one-frame
#     zstd layer) read cold at random and as a whole tree: lazy against unpacked.
# Usage: bench/lazy.sh [--quick] [--tries N] [--start-only] [STRATA_BIN]
#   (root; --quick: a tiny image, a smoke run only; --start-only: the time-to-read rows and the
#   disk only, no big-file throughput, containers or real files)
set -euo pipefail
quick=0 tries=3 start_only=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --quick) quick=1; shift ;;
    --tries) tries=$2; shift 2 ;;
    --start-only) start_only=1; shift ;;
    *) echo "bench/lazy.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $tries =~ ^[1-9][0-9]*$ ]] || { echo "bench/lazy.sh: --tries takes a positive number" >&2; exit 2; }
here=$(dirname "$(realpath "$0")")
strata=$(realpath "${1:-$here/../build/tools/strata}")
[[ $(id -u) == 0 ]] || { echo "bench/lazy.sh: needs root (drop_caches, mounts)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/strata-lazy-bench-XXXXXX)
cleanup() {
  # Every mount below the work dir, whatever made it, before anything is removed.
  awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | while read -r m; do fusermount3 -u "$m" || umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

if ((quick)); then layers=2 files=50 size=10000 big_mib=8; else layers=4 files=2500 size=100000 big_mib=1024; fi
"$here/make_oci_image.py" img-gzip "$layers" "$files" "$size"
skopeo copy -q --dest-compress-format zstd oci:img-gzip:v1 oci:img-zstd:v1
deep="l0/d49/f$((files - 1))"

if ((!start_only)); then
# The big file: 1 MiB blocks, each half random and half text (compresses about 2:1).
python3 - "$big_mib" <<'PY'
import io, os, sys, tarfile
mib = int(sys.argv[1])
text = (b"lazy layers read straight from the compressed blob\n" * 20000)[: 1 << 19]
with open("big.bin", "wb") as f:
    for i in range(mib):
        f.write(os.urandom(1 << 19) + text)
with tarfile.open("big.tar", "w", format=tarfile.PAX_FORMAT) as t:
    t.add("big.bin", arcname="big.bin")
os.unlink("big.bin")
PY
make_one_layer() {  # DIR BLOB-FILE MEDIA-TYPE [TAR: what the blob holds, big.tar by default]
  python3 - "$@" <<'PY'
import hashlib, json, os, sys
out, blob_path, media = sys.argv[1:4]
tar_path = sys.argv[4] if len(sys.argv) > 4 else "big.tar"
os.makedirs(os.path.join(out, "blobs", "sha256"))
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(os.path.join(out, "blobs", "sha256", d), "wb").write(b)
    return "sha256:" + d
h = hashlib.sha256()
with open(tar_path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
blob = open(blob_path, "rb").read()
layer = put(blob)
cfg = json.dumps({"architecture": "amd64", "os": "linux",
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h.hexdigest()]}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
                "layers": [{"mediaType": media, "digest": layer, "size": len(blob)}]}).encode()
md = put(m)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": md, "size": len(m), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]},
          open(os.path.join(out, "index.json"), "w"))
open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
}
gzip -1 -c big.tar > big.tar.gz
zstd -q -3 -c big.tar > big.tar.zst
make_one_layer big-gzip big.tar.gz application/vnd.oci.image.layer.v1.tar+gzip
make_one_layer big-zstd big.tar.zst application/vnd.oci.image.layer.v1.tar+zstd
rm -f big.tar big.tar.gz big.tar.zst

# Real files, read as programs read them: a one-layer image of this host's /usr/include and
# /usr/lib/python3 (text and code, ~12,000 files, ~170 MB; --quick: /usr/include/linux), as
# gzip -6 and as zstd -3 in one frame (as podman and skopeo write zstd layers); read cold
# through mount --lazy and through the same image loaded and mounted: 300 of its files in a
# random order (the same order each run), then the whole tree with tar.
real_src=(usr/include usr/lib/python3); ((quick)) && real_src=(usr/include/linux)
tar -cf real.tar -C / "${real_src[@]}"
gzip -6 -c real.tar > real.tar.gz
zstd -q -3 -c real.tar > real.tar.zst
make_one_layer real-gzip real.tar.gz application/vnd.oci.image.layer.v1.tar+gzip real.tar
make_one_layer real-zstd real.tar.zst application/vnd.oci.image.layer.v1.tar+zstd real.tar
python3 - <<'PY' > real-files.txt
import random, tarfile
names = [m.name for m in tarfile.open("real.tar") if m.isfile()]
for n in random.Random(15).sample(names, min(300, len(names))):
    print(n)
PY
real_bytes=$(stat -c %s real.tar); real_files=$(tar -tf real.tar | wc -l)
rm -f real.tar real.tar.gz real.tar.zst
fi

now() { date +%s.%N; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
ms() { python3 -c "import sys; print(f'{(float(sys.argv[2]) - float(sys.argv[1])) * 1000:8.0f}')" "$1" "$2"; }
mb_s() { python3 -c "import sys; print(f'{int(sys.argv[3]) / (float(sys.argv[2]) - float(sys.argv[1])) / 1e6:8.0f}')" "$1" "$2" "$3"; }
du_b() { du -sb "$@" | awk '{s += $1} END {print s}'; }
umount_all() { awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | while read -r m; do fusermount3 -u "$m"; done; }

# One timed start: sets a (ms to the first ls) and b (ms to the first read of the deep file).
# $1 names the run, the rest is the mount command (the mount point is appended).
start() {
  local mnt=$work/mnt-$1; shift
  mkdir -p "$mnt"
  cold
  local t0 t1 t2
  t0=$(now)
  "$@" "$mnt" >/dev/null || return 1
  ls "$mnt" >/dev/null
  t1=$(now)
  cat "$mnt/$deep" >/dev/null
  t2=$(now)
  a=$(ms "$t0" "$t1") b=$(ms "$t0" "$t2")
}

# The generated layers hold long runs of text and zeros that zstd packs past load's default cap
# (100x + 64 MiB: one layer is 84.8 MB from 176 KB); every strata command here gets the same
# higher cap, so each path does the same work.
cap=(--max-expansion 1000)
# The median of a row's tries and their range: "MEDIAN_LS MEDIAN_READ MIN-MAX_READ", or failed.
summary() {  # "LS READ" pairs, one per try
  python3 - "$@" <<'PY'
import statistics, sys
if "failed" in sys.argv[1:]:
    print(f"{'failed':>9} {'failed':>9}")
else:
    ls = [float(p.split()[0]) for p in sys.argv[1:]]
    rd = [float(p.split()[1]) for p in sys.argv[1:]]
    print(f"{statistics.median(ls):9.0f} {statistics.median(rd):9.0f}   {min(rd):.0f}-{max(rd):.0f}")
PY
}
median_of() { python3 -c 'import statistics, sys; print(statistics.median(float(p.split()[1]) for p in sys.argv[1:]))' "$@"; }
row() { printf '%-6s %-34s %s\n' "$1" "$2" "$3"; }

printf '%-6s %-34s %9s %9s   %s\n' variant run "ls / ms" "read ms" "read: range of $tries tries"
for v in gzip zstd; do
  img=$work/img-$v
  cache=$work/cache-$v
  store=$work/store-$v
  lstore=$work/lstore-$v
  load_and_mount() { "$strata" --root "$store" load "${cap[@]}" -q -i "$img" --tag bench/lazy:v1 >/dev/null && "$strata" --root "$store" mount bench/lazy:v1 "$1"; }
  lazy_load_and_mount() { "$strata" --root "$lstore" load --lazy "${cap[@]}" -q -i "$img" --tag bench/lazy:v1 >/dev/null && "$strata" --root "$lstore" mount bench/lazy:v1 "$1"; }
  cold_runs=() load_runs=() lazy_load_runs=() warm_runs=()
  for ((i = 0; i < tries; i++)); do  # interleaved, each from an empty cache or store
    rm -rf "$cache" "$store" "$lstore"
    start "$v-cold" "$strata" --root "$cache" mount --lazy "${cap[@]}" "$img"
    cold_runs+=("$a $b"); umount_all
    start "$v-load" load_and_mount
    load_runs+=("$a $b"); umount_all
    if start "$v-load-lazy" lazy_load_and_mount; then lazy_load_runs+=("$a $b"); else lazy_load_runs+=(failed); fi
    umount_all
  done
  for ((i = 0; i < tries; i++)); do  # the index the last cold try cached
    start "$v-warm" "$strata" --root "$cache" mount --lazy "${cap[@]}" "$img"
    warm_runs+=("$a $b"); umount_all
  done
  row "$v" "mount --lazy, cold index" "$(summary "${cold_runs[@]}")"
  row "$v" "mount --lazy, index cached" "$(summary "${warm_runs[@]}")"
  row "$v" "load + mount" "$(summary "${load_runs[@]}")"
  row "$v" "load --lazy + mount" "$(summary "${lazy_load_runs[@]}")"
  cold_ms=$(median_of "${cold_runs[@]}") warm_ms=$(median_of "${warm_runs[@]}") load_ms=$(median_of "${load_runs[@]}")
  blobs=$(du_b "$img/blobs"); index=$(du_b "$cache/lazy/index"); unpacked=$(du_b "$store")
  echo "$v: disk: store after load --lazy $(($(du_b "$lstore") >> 20)) MiB"
  echo "$v: disk: blobs $((blobs >> 20)) MiB + index $((index >> 10)) KiB ($(python3 -c "print(f'{$index / $blobs * 100:.2f}')")% of the blobs; target <= 3%) vs store after load $((unpacked >> 20)) MiB"
  python3 -c "print(f'$v: lazy cold / load = {$cold_ms / $load_ms:.2f} (medians; target <= 0.5); cached: {$warm_ms:.0f} ms (target <= 500)')"
  ((start_only)) && continue

  # Read throughput of the big file: lazy against unpacked, page cache dropped first.
  bcache=$work/bcache-$v bstore=$work/bstore-$v
  bmnt=$work/bmnt-$v-lazy; mkdir -p "$bmnt"
  "$strata" --root "$bcache" mount --lazy "${cap[@]}" "$work/big-$v" "$bmnt" >/dev/null
  size=$(stat -c %s "$bmnt/big.bin"); cold
  t0=$(now); cat "$bmnt/big.bin" >/dev/null; t1=$(now)
  lazy_rate=$(mb_s "$t0" "$t1" "$size")
  umount_all
  umnt=$work/bmnt-$v-unpacked; mkdir -p "$umnt"
  "$strata" --root "$bstore" load "${cap[@]}" -q -i "$work/big-$v" --tag bench/big:v1 >/dev/null
  "$strata" --root "$bstore" mount bench/big:v1 "$umnt" >/dev/null
  cold
  t0=$(now); cat "$umnt/big.bin" >/dev/null; t1=$(now)
  echo "$v: big file ($((size >> 20)) MiB) sequential read, cold: lazy $lazy_rate MB/s (target >= 300 for gzip), unpacked $(mb_s "$t0" "$t1" "$size") MB/s"
  umount_all
done

((start_only)) && exit 0
# A container reading the deep file, from the command to its exit: load --lazy + run against
# load + run, page cache dropped before each.
bb=$(command -v busybox)
printf '%-6s %-34s %9s\n' variant run "total ms"
for v in gzip zstd; do
  for mode in load run-lazy; do  # load + run, against one `run --lazy ARCHIVE`
    rstore=$work/rstore-$v-$mode
    cold
    t0=$(now)
    if [[ $mode == load ]]; then
      label="load + run cat deep"
      "$strata" --root "$rstore" load "${cap[@]}" -q -i "$work/img-$v" --tag bench/lazy:v1 >/dev/null &&
        "$strata" --root "$rstore" run --rm -v "$bb:/busybox:ro" bench/lazy:v1 /busybox cat "/$deep" >/dev/null
    else
      label="run --lazy ARCHIVE cat deep"
      "$strata" --root "$rstore" run --rm --lazy "${cap[@]}" -v "$bb:/busybox:ro" "$work/img-$v" /busybox cat "/$deep" >/dev/null
    fi && t1=$(now) && printf '%-6s %-34s %9s\n' "$v" "$label" "$(ms "$t0" "$t1")" ||
      printf '%-6s %-34s %9s\n' "$v" "$label" failed
  done
done

# Real files read cold (see above): lazy gzip, lazy zstd (one frame) and unpacked.
printf '%-30s %12s %12s\n' "real files ($((real_bytes >> 20)) MiB, $real_files entries)" "300 random" "tar of all"
real_reads() {  # MOUNTPOINT: sets r (ms for the random files) and w (ms for the whole tree)
  local t0 t1 t2 t3
  cold; t0=$(now)
  while IFS= read -r f; do cat "$1/$f" >/dev/null; done < real-files.txt
  t1=$(now)
  cold; t2=$(now)
  tar -C "$1" -cf - usr | cat >/dev/null
  t3=$(now)
  r=$(ms "$t0" "$t1") w=$(ms "$t2" "$t3")
}
declare -A real_r real_w
for v in gzip zstd; do
  rmnt=$work/real-$v; mkdir -p "$rmnt"
  "$strata" --root "$work/real-cache" mount --lazy "$work/real-$v" "$rmnt" >/dev/null
  real_reads "$rmnt"; real_r[$v]=$r real_w[$v]=$w
  umount_all
done
umnt=$work/real-unpacked; mkdir -p "$umnt"
"$strata" --root "$work/real-store" load -q -i "$work/real-gzip" --tag bench/real:v1 >/dev/null
"$strata" --root "$work/real-store" mount bench/real:v1 "$umnt" >/dev/null
real_reads "$umnt"; real_r[unpacked]=$r real_w[unpacked]=$w
umount_all
for v in gzip zstd unpacked; do
  case $v in unpacked) label="unpacked (load + mount)" ;; *) label="mount --lazy, $v" ;; esac
  printf '%-30s %9s ms %9s ms\n' "$label" "${real_r[$v]}" "${real_w[$v]}"
done
python3 -c "
r = {'gzip': ${real_r[gzip]}, 'zstd': ${real_r[zstd]}, 'u': ${real_r[unpacked]}}
w = {'gzip': ${real_w[gzip]}, 'zstd': ${real_w[zstd]}, 'u': ${real_w[unpacked]}}
for v in ('gzip', 'zstd'):
    print(f'real files, lazy {v} / unpacked: random {r[v] / r[\"u\"]:.2f}x, whole tree {w[v] / w[\"u\"]:.2f}x')
"
