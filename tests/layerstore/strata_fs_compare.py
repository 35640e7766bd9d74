#!/usr/bin/python3
"""The layers strata loads, mounted read-only by strata-fs (fuse-overlayfs-compatible CLI),
must show the same tree as `umoci unpack` of the same image (and so as kernel overlayfs)."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "fusermount3")
fs = os.environ.get("STRATA_FS", "")
if not fs or not os.path.exists(fs):
    skip("strata-fs not built")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")
work = workdir()
mnt = os.path.join(work, "mnt")
mounted = False
try:
    layout, ref = umoci_image_with_reference(work)
    root = os.path.join(work, "store")
    strata(root, "load", "-q", "-i", layout, "--tag", "fs/test:v1")
    os.makedirs(mnt)
    empty = os.path.join(work, "empty")
    os.makedirs(empty)
    lowers = ":".join(list(reversed(image_layers(root, "fs/test:v1"))) + [empty])
    r = run(fs, "-o", f"lowerdir={lowers}", mnt, check=False, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"strata-fs failed to mount: {r.stderr.strip()}")
    mounted = True
    for _ in range(50):
        if os.path.ismount(mnt):
            break
        time.sleep(0.1)
    d = diff_listings(ref, listing(mnt))
    assert not d, "strata-fs mount differs from umoci unpack:\n" + "\n".join(d[:30])
    print("PASS")
finally:
    if mounted:
        subprocess.run(["fusermount3", "-u", mnt])
    shutil.rmtree(work, ignore_errors=True)
