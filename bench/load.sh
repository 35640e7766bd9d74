#!/usr/bin/env bash
# Speed of `strata load` on a ~1 GB (uncompressed), 4-layer OCI image, against
# `umoci unpack` of the same image and the floor `igzip -dc | tar -x` (zcat if igzip is
# missing), in one run, as ratios. Fresh directories per step (ext4 without a journal is
# slow to reuse freshly deleted space). Usage: bench/load.sh [STRATA_BIN]; needs root.
set -euo pipefail
strata=${1:-$(dirname "$0")/../build/tools/strata}
strata=$(realpath "$strata")
work=$(mktemp -d /var/tmp/strata-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
python3 - <<'PY'
import gzip, hashlib, io, json, os, tarfile, zlib
def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
os.makedirs("img/blobs/sha256")
def put(b):
    open("img/blobs/sha256/" + sha(b)[7:], "wb").write(b); return sha(b)
layers, diffs = [], []
for L in range(4):
    bio = io.BytesIO()
    rnd = os.urandom(1 << 16)
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
        for i in range(2500):
            size = 100000 if i % 10 else 5000
            data = (rnd[(i * 7) % 4096:] + bytes(size))[:size]   # part random, part zeros
            ti = tarfile.TarInfo(f"l{L}/d{i % 50}/f{i}"); ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    tar = bio.getvalue(); diffs.append(sha(tar))
    z = gzip.compress(tar, compresslevel=1, mtime=0)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(z), "size": len(z)})
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
                "layers": layers}).encode()
md = put(m)
open("img/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
           "size": len(m), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, open("img/index.json", "w"))
open("layers.txt", "w").write("\n".join(l["digest"][7:] for l in layers))
PY
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
