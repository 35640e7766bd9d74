#!/usr/bin/python3
"""The should-fail corpus: hostile or broken inputs, generated here with python's tarfile.
Each must fail with exit != 0, one error line naming the input and the reason, and leave the
store byte-for-byte as it was (the whole tree is hashed before and after)."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
work = workdir()


from bad_input_corpus import GOOD, cases, layout, make_tar, refusal_problems  # noqa: E402

root = os.path.join(work, "store")
good = layout(os.path.join(work, "good"), [make_tar(GOOD)])
strata(root, "load", "-q", "-i", good, "--tag", "good:1")
failures = []


def expect_failure(name, reason, args, path):
    before = tree_hash(root)
    r = strata(root, "load", "-q", *args, check=False)
    after = tree_hash(root)
    problems = refusal_problems(r, lambda line: path in line, reason)
    if before != after:
        problems.append("store changed")
    if problems:
        failures.append(f"{name}: " + "; ".join(problems))
    else:
        print(f"ok   {name}: {r.stderr.strip()}")


for name, reason, tars, kw in cases:
    p = layout(os.path.join(work, name), tars, **kw)
    expect_failure(name, reason, ["-i", p], p)

# A docker-archive that ends early (tar of a good image, cut in the middle).
da = os.path.join(work, "good-docker.tar")
with tarfile.open(da, "w") as t:
    t.add(good, arcname=".")
data = open(da, "rb").read()
cut = os.path.join(work, "cut.tar")
with open(cut, "wb") as f:
    f.write(data[: len(data) // 2 + 100])
expect_failure("archive-ends-early", "ends early", ["-i", cut], cut)

# A full disk: a 4 MiB tmpfs store, then an image with a 16 MiB layer.
small = os.path.join(work, "small")
os.makedirs(small)
run("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", small)
try:
    saved_root = root
    root = os.path.join(small, "store")
    strata(root, "load", "-q", "-i", good, "--tag", "good:1")
    big = layout(os.path.join(work, "big"), [make_tar([("big", "file", os.urandom(16 << 20))])])
    expect_failure("disk-full", "No space left", ["-i", big], big)
    # load --lazy copies the 16 MiB blob into the store: the same full disk, the same refusal.
    expect_failure("disk-full-lazy", "No space left", ["--lazy", "-i", big], big)
    root = saved_root
finally:
    run("umount", small, check=False)

shutil.rmtree(work, ignore_errors=True)
if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print(f"PASS ({len(cases) + 3} cases)")
