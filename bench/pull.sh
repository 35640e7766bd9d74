#!/usr/bin/env bash
# Speed of `strata pull` of a ~300 MB (uncompressed), 3-layer image from Debian's
# docker-registry on loopback, against `skopeo copy docker://... oci:DIR` followed by
# `umoci unpack` of the same image, in one run, as a ratio (target >= 2x). Fresh
# directories per step. Usage: bench/pull.sh [STRATA_BIN]; needs root, docker-registry,
# skopeo, umoci.
set -euo pipefail
here=$(dirname "$(realpath "$0")")
strata=${1:-$(dirname "$0")/../build/tools/strata}
strata=$(realpath "$strata")
work=$(mktemp -d /var/tmp/strata-bench-pull-XXXXXX)
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
"$here/make_oci_image.py" img 3 1000 110000
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\nhttp:\n  addr: 127.0.0.1:%s\n' "$work" "$port" > reg.yml
docker-registry serve reg.yml >reg.log 2>&1 & reg_pid=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
skopeo copy -q --dest-tls-verify=false oci:img:v1 "docker://127.0.0.1:$port/bench/big:1"
echo "image: $(du -sh img | cut -f1) compressed in 3 layers, ~330 MB uncompressed; registry 127.0.0.1:$port"
sync
now() { date +%s.%N; }
t0=$(now); "$strata" --root "$work/store" pull -q "127.0.0.1:$port/bench/big:1" >/dev/null; t1=$(now)
skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$port/bench/big:1" oci:skopeo-oci:1; t2=$(now)
umoci unpack --image skopeo-oci:1 umoci-bundle >/dev/null 2>&1; t3=$(now)
python3 - "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
t0, t1, t2, t3 = map(float, sys.argv[1:])
s, c, u = t1 - t0, t2 - t1, t3 - t2
print(f"strata pull              {s:6.2f} s")
print(f"skopeo copy + umoci      {c + u:6.2f} s  (copy {c:.2f} + unpack {u:.2f})   ratio = {(c + u) / s:.2f}x (target >= 2)")
PY
