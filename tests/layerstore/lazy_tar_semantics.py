#!/usr/bin/python3
"""The crafted tars of tar_semantics/corpus/ through `strata mount --lazy`: each is mounted as
a one-layer image straight from its blob, and the tree through the mount must be the tree
Docker makes of Go's reading of it (recorded in CASE.go.json), as tar_semantics.py checks for
`load`; or the mount is refused with one error line and nothing mounted. A tree that differs,
or a mount of a tar Docker would refuse, fails the test. And the lazy pass refuses exactly what
`load` refuses: a lazy layer `load` could not extract would be one `strata unpack` fails on."""
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("fusermount3")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")
here = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(here, "tar_semantics", "corpus")
work = workdir()
cache = os.path.join(work, "cache")
mnt = os.path.join(work, "mnt")
os.makedirs(mnt)

# docker_tree and strata_tree from tar_semantics.py, without running its load pass.
src = open(os.path.join(here, "tar_semantics.py")).read()
ns = {"__name__": "lazy_tar_semantics", "__file__": os.path.join(here, "tar_semantics.py")}
exec(compile(src[: src.index("failures, accepted, refused")], "tar_semantics.py", "exec"), ns)
docker_tree, strata_tree = ns["docker_tree"], ns["strata_tree"]
shutil.rmtree(ns["work"], ignore_errors=True)

failures, accepted, refused = [], 0, 0
try:
    for tar_path in sorted(glob.glob(os.path.join(corpus, "*.tar"))):
        case = os.path.basename(tar_path)[:-4]
        with open(tar_path[:-4] + ".go.json") as f:
            want, docker_refuses = docker_tree(json.load(f))
        layout = os.path.join(work, case)
        with open(tar_path, "rb") as f:
            one_layer_layout(layout, f.read())
        r = run(STRATA, "--root", cache, "mount", "--lazy", layout, mnt, check=False, timeout=60)
        store = os.path.join(work, "store-" + case)
        loaded = run(STRATA, "--root", store, "load", "-q", "-i", layout, "--tag", "corpus/case:1",
                     check=False, timeout=60)
        shutil.rmtree(store, ignore_errors=True)
        if (loaded.returncode == 0) != (r.returncode == 0):
            failures.append(f"{case}: load {'took' if loaded.returncode == 0 else 'refused'} it "
                            f"({loaded.stderr.strip()}), mount --lazy {'took' if r.returncode == 0 else 'refused'} "
                            f"it ({r.stderr.strip()})")
            if r.returncode == 0:
                subprocess.run(["fusermount3", "-u", mnt])
            continue
        if r.returncode != 0:
            err = r.stderr.strip().splitlines()
            if len(err) != 1 or not err[0].startswith(f"strata: mount {layout}: "):
                failures.append(f"{case}: refused with {len(err)} lines: {err}")
            elif os.path.ismount(mnt):
                failures.append(f"{case}: refused but mounted")
            else:
                refused += 1
                print(f"ok   {case}: refused: {err[0]}")
            continue
        try:
            if want is None:
                failures.append(f"{case}: mounted, but {docker_refuses}")
                continue
            diff = diff_listings(want, strata_tree(mnt))
            if diff:
                failures.append(f"{case}: the tree differs from Go's reading (want != lazy):\n    " + "\n    ".join(diff))
                continue
            accepted += 1
            print(f"ok   {case}: same tree as Go's reading ({len(want)} entries)")
        finally:
            subprocess.run(["fusermount3", "-u", mnt])
finally:
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", mnt])
    shutil.rmtree(work, ignore_errors=True)
if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print(f"PASS ({accepted} read as Go reads them, {refused} refused)")
