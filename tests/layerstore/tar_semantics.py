#!/usr/bin/python3
"""Layer tars mean what they mean to Docker. Each crafted tar in tar_semantics/corpus/ is
loaded as a one-layer image; what Go's archive/tar reads from it (recorded once in
CASE.go.json by tar_oracle/main.go) and Docker's extraction rules give the tree Docker
would show. strata must either show exactly that tree (and rebuild the layer byte for byte
from tar-split: `strata verify`), or refuse the load with one error line and the store
unchanged. A tree that differs, or a load Docker would refuse, fails the test."""
import glob
import hashlib
import json
import os
import posixpath
import shutil
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tar_semantics")
work = workdir()
root = os.path.join(work, "store")
PRIVATE = ("trusted.overlay.", "user.overlay.", "user.containers.", "security.selinux")
# Cases Docker extracts that strata must load too (elsewhere a refusal passes, e.g. where
# libarchive and Go disagree): real PAX sparse files, crafted and as GNU tar writes them.
MUST_LOAD = {"pax-sparse-0.0", "pax-sparse-0.1", "pax-sparse-1.0", "pax-sparse-1.0-holes",
             "gnu-tar-sparse-0.0", "gnu-tar-sparse-0.1", "gnu-tar-sparse-1.0"}


def docker_tree(reading):
    """The tree Docker's extraction makes of Go's reading, or (None, why) where it refuses."""
    if reading["error"]:
        return None, "Go's archive/tar: " + reading["error"]
    tree = {}
    for e in reading["entries"]:
        t = e["type"]
        if t == "g":
            continue  # pax global header: Docker ignores it
        if t not in "0123456":
            return None, f"Docker: unhandled tar header type {t!r}"
        name = posixpath.normpath("/" + e["name"]).lstrip("/")
        if not name or name == ".":
            continue
        if ".." in name.split("/"):
            return None, "Docker: breakout"
        parts = name.split("/")
        for i in range(1, len(parts)):
            tree.setdefault("/".join(parts[:i]), ["dir", 0o755, 0, 0, {}])
        xattrs = {k: v.encode() for k, v in e["xattrs"].items() if not k.startswith(PRIVATE)}
        perm = e["mode"] & 0o7777
        if t == "0":
            tree[name] = ["file", perm, e["uid"], e["gid"], xattrs, e["data_len"], e["sha256"], e["mtime"]]
        elif t == "1":
            target = posixpath.normpath("/" + e["linkname"]).lstrip("/")
            if target not in tree:
                return None, "Docker: hardlink to a missing file"
            tree[name] = tree[target]
        elif t == "2":
            tree[name] = ["symlink", e["linkname"]]
        elif t == "5":
            tree[name] = ["dir", perm, e["uid"], e["gid"], xattrs]
        else:
            return None, "device nodes and fifos are not in this corpus"
    return tree, None


def strata_tree(diff):
    tree = {}
    for dirpath, dirnames, filenames in os.walk(diff):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, diff)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                tree[rel] = ["symlink", os.readlink(p)]
                continue
            xattrs = {x: os.getxattr(p, x) for x in os.listxattr(p, follow_symlinks=False)
                      if not x.startswith(PRIVATE)}
            head = [stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, xattrs]
            if stat.S_ISDIR(st.st_mode):
                tree[rel] = ["dir"] + head
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                tree[rel] = ["file"] + head + [st.st_size, digest, int(st.st_mtime)]
            else:
                tree[rel] = ["other", stat.S_IFMT(st.st_mode)]
    return tree


failures, accepted, refused = [], 0, 0
cases = sorted(glob.glob(os.path.join(here, "corpus", "*.tar")))
if not cases:
    raise AssertionError(f"no corpus in {here}/corpus")
# A first load creates the store's skeleton, so "unchanged" below compares like with like.
one_layer_layout(os.path.join(work, "warm-up"), open(os.path.join(here, "corpus", "plain-tree.tar"), "rb").read())
strata(root, "load", "-q", "-i", os.path.join(work, "warm-up"), "--tag", "warm-up:1")
for tar_path in cases:
    case = os.path.basename(tar_path)[:-4]
    with open(tar_path[:-4] + ".go.json") as f:
        reading = json.load(f)
    with open(tar_path, "rb") as f:
        tar = f.read()
    want, docker_refuses = docker_tree(reading)
    layout = os.path.join(work, case)
    one_layer_layout(layout, tar)
    before = tree_hash(root)
    r = strata(root, "load", "-q", "-i", layout, "--tag", f"corpus/{case.lower()}:1", check=False)
    if r.returncode != 0:
        err = r.stderr.strip().splitlines()
        if case in MUST_LOAD:
            failures.append(f"{case}: refused, but Docker extracts it: {err}")
        elif len(err) != 1:
            failures.append(f"{case}: refused with {len(err)} lines: {err}")
        elif tree_hash(root) != before:
            failures.append(f"{case}: refused but the store changed")
        else:
            refused += 1
            print(f"ok   {case}: refused: {err[0]}")
        continue
    if want is None:
        failures.append(f"{case}: loaded, but {docker_refuses}")
        continue
    got = strata_tree(image_layers(root, f"corpus/{case.lower()}:1")[0])
    diff = diff_listings(want, got)
    if diff:
        failures.append(f"{case}: the tree differs from Go's reading (want != strata):\n    " + "\n    ".join(diff))
        continue
    v = strata(root, "verify", f"corpus/{case.lower()}:1", check=False)
    if v.returncode != 0:
        failures.append(f"{case}: the layer does not rebuild from tar-split: {v.stderr.strip()}")
        continue
    accepted += 1
    print(f"ok   {case}: same tree as Go's reading ({len(want)} entries), verified")

shutil.rmtree(work, ignore_errors=True)
if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print(f"PASS ({accepted} read as Go reads them, {refused} refused)")
