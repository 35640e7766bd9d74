#!/usr/bin/python3
"""Crafted lazy indexes. An index file is read from a cache dir (`mount --lazy`) or a store
(`lazy-index`), places another user or a damaged disk can leave anything in. Its header
claims sizes; the loader must check them against what the file really holds before taking
memory for them. Each strata command here runs under a 1 GiB address-space limit, and the
crafted index claims a body of almost 4 GiB in a file of a few hundred bytes:

- in the mount --lazy cache: the next mount notes it ignores it, rebuilds it, and mounts;
- a version 1 index (what strata wrote before sparse files) in a store is read as before;
- as a store layer's lazy-index: `strata mount` and `run` fail with one line naming the
  index, `verify` reports the layer, nothing crashes."""
import io
import os
import resource
import shutil
import struct
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("fusermount3")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def lstrata(root, *args):
    return subprocess.run([STRATA, "--root", root, *args], capture_output=True, text=True, timeout=120,
                          preexec_fn=limited)


def crafted(index_bytes):
    """The same header with a body size of 4 GiB - 1, the body a tiny zstd frame."""
    body = subprocess.run(["zstd", "-q", "-c", "--no-content-size"], input=b"x" * 100,
                          stdout=subprocess.PIPE, check=True).stdout
    head = bytearray(index_bytes[:48])
    head[32:40] = struct.pack("<Q", (4 << 30) - 1)
    head[40:48] = struct.pack("<Q", len(body))
    return bytes(head) + body


need_tools("zstd")
work = workdir()
cache, store = os.path.join(work, "cache"), os.path.join(work, "store")
mnt = os.path.join(work, "mnt")
os.makedirs(mnt)
failures = []
try:
    layout = os.path.join(work, "img")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("hello")
        ti.size = 6
        t.addfile(ti, io.BytesIO(b"hello\n"))
    one_layer_layout(layout, buf.getvalue())

    # The mount --lazy cache.
    r = lstrata(cache, "mount", "--lazy", layout, mnt)
    assert r.returncode == 0, r.stderr
    run("fusermount3", "-u", mnt)
    index_dir = os.path.join(cache, "lazy", "index")
    (name,) = os.listdir(index_dir)
    path = os.path.join(index_dir, name)
    good = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(crafted(good))
    r = lstrata(cache, "mount", "--lazy", layout, mnt)
    if r.returncode != 0 or "ignoring cached index" not in r.stderr:
        failures.append(f"cache: a crafted cached index was not ignored and rebuilt: {r.returncode} {r.stderr.strip()}")
    elif open(os.path.join(mnt, "hello")).read() != "hello\n":
        failures.append("cache: the rebuilt mount does not show the file")
    else:
        print(f"ok   cache: {r.stderr.strip()}")
    if os.path.ismount(mnt):
        run("fusermount3", "-u", mnt)

    # A store layer's lazy-index.
    strata(store, "load", "--lazy", "-q", "-i", layout, "--tag", "c/x:1")
    ov = os.path.join(store, "overlay2")
    (cid,) = [n for n in os.listdir(ov) if os.path.isfile(os.path.join(ov, n, "lazy-index"))]
    ipath = os.path.join(ov, cid, "lazy-index")
    good = open(ipath, "rb").read()
    # What strata wrote before sparse files: version 1, the same body for a layer without one.
    with open(ipath, "wb") as f:
        f.write(good[:8] + struct.pack("<I", 1) + good[12:])
    r = lstrata(store, "mount", "c/x:1", mnt)
    if r.returncode != 0 or open(os.path.join(mnt, "hello")).read() != "hello\n":
        failures.append(f"store: a version 1 index is not read: {r.stderr.strip()}")
    else:
        print("ok   store: a version 1 index mounts")
    if os.path.ismount(mnt):
        run("fusermount3", "-u", mnt)
    with open(ipath, "wb") as f:
        f.write(crafted(good))
    r = lstrata(store, "mount", "c/x:1", mnt)
    err = r.stderr.strip().splitlines()
    if r.returncode == 0 or len(err) != 1 or "lazy-index" not in err[0] or "corrupt" not in err[0]:
        failures.append(f"store: mount over a crafted lazy-index: {r.returncode} {err}")
    else:
        print(f"ok   store: mount refused: {err[0]}")
    if os.path.ismount(mnt):
        run("fusermount3", "-u", mnt)
        failures.append("store: mounted")
    r = lstrata(store, "verify")
    if r.returncode == 0 or "lazy-index" not in r.stdout + r.stderr:
        failures.append(f"store: verify does not report the crafted lazy-index: {r.returncode} {r.stdout} {r.stderr}")
    else:
        print("ok   store: verify reports it")
finally:
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", mnt])
    shutil.rmtree(work, ignore_errors=True)
if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print("PASS")
