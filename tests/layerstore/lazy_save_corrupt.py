#!/usr/bin/python3
"""`strata save` of a lazy image whose lazy-blob was damaged after the load: one line naming
the damaged lazy-blob and `strata verify`, and no archive left, for a docker-archive (the blob
decompressed as it streams) and an oci-archive (the blob as it is). Before, the docker-archive
case said only "corrupt gzip data (CRC32 mismatch)": nothing told which of the store's files
was bad or what to run."""
import gzip
import hashlib
import io
import os
import shutil
import sys
import tarfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

work = workdir()
try:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        data = b"".join(b"line %d of a text file that compresses well\n" % i for i in range(100000))
        f = tarfile.TarInfo("text")
        f.size, f.mode = len(data), 0o644
        t.addfile(f, io.BytesIO(data))
    tar = buf.getvalue()
    layout = os.path.join(work, "img")
    one_layer_layout(layout, gzip.compress(tar, 9), "sha256:" + hashlib.sha256(tar).hexdigest(),
                     "application/vnd.oci.image.layer.v1.tar+gzip")
    root = os.path.join(work, "root")
    strata(root, "load", "--lazy", "-q", "-i", layout, "--tag", "bad/img:v1")
    blobs = [os.path.join(root, "overlay2", d, "lazy-blob") for d in os.listdir(os.path.join(root, "overlay2"))
             if os.path.exists(os.path.join(root, "overlay2", d, "lazy-blob"))]
    assert len(blobs) == 1, blobs
    with open(blobs[0], "r+b") as f:
        size = f.seek(0, 2)
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0x55]))

    for fmt in ("docker-archive", "oci-archive"):
        out = os.path.join(work, fmt + ".tar")
        r = strata(root, "save", "--format", fmt, "-o", out, "bad/img:v1", check=False)
        errors = [line for line in r.stderr.splitlines() if line.startswith("strata:")]
        assert r.returncode != 0, f"{fmt}: save of a damaged lazy blob succeeded"
        assert len(errors) == 1 and errors[0].startswith("strata: save " + out + ": "), r.stderr
        assert blobs[0] in errors[0] and "strata verify" in errors[0], f"{fmt}: {errors[0]}"
        assert not os.path.exists(out), f"{fmt}: {out} left behind"
        print(f"ok {fmt}: {errors[0]}")
finally:
    shutil.rmtree(work, ignore_errors=True)
