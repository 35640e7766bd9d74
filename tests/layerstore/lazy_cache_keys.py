#!/usr/bin/python3
"""mount --lazy's cache finds each layer's own index, and a layer the config misdescribes is
refused on the first mount as on every other.
- Two docker-archives holding one tar compressed two ways into gzip blobs of the same size
  (level 1, and level 9 padded with a gzip file name): their indexes were cached under one
  name (diff_id, size, compression), the second archive's replaced the first's, and the first
  archive, recorded as verified, was then read through the other blob's checkpoints: a read in
  the middle of a file gave EIO. Each archive must read right, mounted in turn.
- An image naming one blob for two layers with two diff_ids (the second wrong): the first
  mount verified the blob once, for the first diff_id, and mounted; the second mount refused
  it, as load does. Both mounts must refuse it."""
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403
from bad_input_corpus import GOOD, layout, make_tar  # noqa: E402

need_root()
need_tools("fusermount3")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")

work = workdir()
cache = os.path.join(work, "cache")
mnt = os.path.join(work, "mnt")
os.makedirs(mnt)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def lazy_mount(path):
    return run(STRATA, "--root", cache, "mount", "--lazy", path, mnt, check=False, timeout=120)


try:
    # 9 MB of half-compressible data: several gzip checkpoints (2 MiB of output apart).
    rnd = random.Random(1)
    big = b"".join(rnd.randbytes(3000) + b"A" * 3000 for _ in range(1500))
    tar = make_tar(GOOD + [("etc/big", "file", big)])
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()

    def deflate(level):
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        return c.compress(tar) + c.flush()

    def gz(deflated, name=b""):
        header = b"\x1f\x8b\x08" + bytes([8 if name else 0]) + b"\0\0\0\0\0\xff" + name
        return header + deflated + struct.pack("<II", zlib.crc32(tar), len(tar) & 0xFFFFFFFF)

    longer, shorter = sorted((deflate(1), deflate(9)), key=len, reverse=True)
    blobs = {"a": gz(longer), "b": gz(shorter, b"x" * (len(longer) - len(shorter) - 1) + b"\0")}
    assert len(blobs["a"]) == len(blobs["b"]) and blobs["a"] != blobs["b"]
    assert gzip.decompress(blobs["a"]) == tar == gzip.decompress(blobs["b"])
    archives = {}
    for k, blob in blobs.items():
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                          "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        manifest = json.dumps([{"Config": "config.json", "RepoTags": [f"t/{k}:1"], "Layers": ["layer.tar.gz"]}]).encode()
        archives[k] = os.path.join(work, f"{k}.tar")
        with tarfile.open(archives[k], "w") as t:
            for name, data in (("manifest.json", manifest), ("config.json", cfg), ("layer.tar.gz", blob)):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))

    for k in ("a", "b", "a", "b"):
        r = lazy_mount(archives[k])
        if r.returncode != 0:
            failures.append(f"docker-archive {k}: {r.stderr!r}")
            continue
        try:
            fd = os.open(os.path.join(mnt, "etc/big"), os.O_RDONLY)
            try:
                got = os.pread(fd, 4096, 8_000_000)  # a fresh mount: starts at a checkpoint
                check(got == big[8_000_000:8_004_096], f"docker-archive {k}: other bytes at 8 MB")
            finally:
                os.close(fd)
        except OSError as e:
            failures.append(f"docker-archive {k}: a read at 8 MB: {e}")
        finally:
            run("fusermount3", "-u", mnt)

    # One blob, two layers, the second's diff_id wrong.
    def twice(ctx):
        ctx["layers"].append(dict(ctx["layers"][0]))
        ctx["diff_ids"].append("sha256:" + hashlib.sha256(b"not this layer").hexdigest())

    img = layout(os.path.join(work, "twice"), [make_tar(GOOD)], compress="plain", mutate=twice)
    for attempt in ("first", "second"):
        r = lazy_mount(img)
        check(r.returncode != 0 and "layer 2" in r.stderr and "diff_id mismatch" in r.stderr,
              f"one blob with a wrong second diff_id, {attempt} mount: exit {r.returncode}, {r.stderr!r}")
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", mnt])
finally:
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", mnt])
    shutil.rmtree(work, ignore_errors=True)

conclude(failures, "lazy cache keys")
