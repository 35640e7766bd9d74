#!/usr/bin/env bash
# Speed of `strata load` on a ~1 GB (uncompressed), 4-layer OCI image, against
# `umoci unpack` of the same image and the floor `igzip -dc | tar -x` (zcat if igzip is
# missing), in one run, as ratios. Fresh directories per step (ext4 without a journal is
# slow to reuse freshly deleted space). Usage: bench/load.sh [STRATA_BIN]; needs root.
set -euo pipefail
here=$(dirname "$(realpath "$0")")
strata=${1:-$(dirname "$0")/../build/tools/strata}
strata=$(realpath "$strata")
work=$(mktemp -d /var/tmp/strata-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$here/make_oci_image.py" img 4 2500 100000
inflate="zcat"
command -v igzip >/dev/null && inflate="igzip -dc"
echo "image: $(du -sh img | cut -f1) compressed, 4 layers; floor uses: $inflate | tar -x"
sync
now() { date +%s.%N; }
t0=$(now); "$strata" --root "$work/store" load -q -i img >/dev/null; t1=$(now)
umoci unpack --image img:v1 "$work/umoci" >/dev/null 2>&1; t2=$(now)
for d in $(cat layers.txt); do mkdir -p "floor/$d"; $inflate "img/blobs/sha256/$d" | tar -x -C "floor/$d"; done; t3=$(now)
python3 - "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
t0, t1, t2, t3 = map(float, sys.argv[1:])
s, u, f = t1 - t0, t2 - t1, t3 - t2
print(f"strata load   {s:6.2f} s")
print(f"umoci unpack  {u:6.2f} s   umoci/strata = {u / s:.2f}x (target >= 2)")
print(f"floor         {f:6.2f} s   strata/floor = {s / f:.2f}x (target <= 1.3)")
PY
