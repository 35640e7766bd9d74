#!/usr/bin/python3
"""zstd layers with skippable frames (magic 0x184D2A50..5F: metadata a tool may put before,
between or after the data frames; libzstd, the zstd CLI and Docker's decoder step over them)
load, load --lazy and mount as the tar they hold. A blob *starting* with a skippable frame was
taken for an uncompressed tar (only the data-frame magic was recognised) and refused by load
and load --lazy alike ("invalid tar header (bad header checksum)")."""
import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("zstd", "fusermount3")
FS = os.environ.get("STRATA_FS", "")
if not os.path.exists("/dev/fuse") or not os.path.exists(FS):
    skip("no /dev/fuse or strata-fs not built")

work = workdir()
mounts = []


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout


def skippable(n, magic_low=0):
    return struct.pack("<II", 0x184D2A50 | magic_low, n) + b"S" * n


try:
    files = {f"f{i}": os.urandom(2000) + bytes([65 + i]) * 300000 for i in range(3)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            f = tarfile.TarInfo(name)
            f.size, f.mode = len(data), 0o644
            t.addfile(f, io.BytesIO(data))
    tar = buf.getvalue()
    half = len(tar) // 2
    whole, first, second = zstd(tar), zstd(tar[:half]), zstd(tar[half:])
    blobs = {"leading": skippable(100) + whole, "leading-5f": skippable(0, 0xF) + first + second,
             "between": first + skippable(70000) + second, "trailing": whole + skippable(5)}
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    for name, blob in blobs.items():
        layout = os.path.join(work, "img-" + name)
        one_layer_layout(layout, blob, diff_id, "application/vnd.oci.image.layer.v1.tar+zstd")
        for lazy in ([], ["--lazy"]):
            root = os.path.join(work, "root-" + name + "".join(lazy))
            r = strata(root, "load", *lazy, "-q", "-i", layout, "--tag", "z/img:v1", check=False)
            assert r.returncode == 0, f"{name} {lazy}: {r.stderr.strip()}"
            mnt = os.path.join(work, "mnt-" + name + "".join(lazy))
            os.makedirs(mnt)
            strata(root, "mount", "z/img:v1", mnt)
            mounts.append(mnt)
            for f, data in files.items():
                with open(os.path.join(mnt, f), "rb") as got:
                    assert got.read() == data, f"{name} {lazy}: {f} differs"
            run("fusermount3", "-u", mnt)
            mounts.remove(mnt)
            assert "OK: 1 image(s), 1 layer(s)" in strata(root, "verify").stdout
        print(f"ok {name}: load and load --lazy show the tar")
finally:
    for m in mounts:
        subprocess.run(["fusermount3", "-u", m], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
