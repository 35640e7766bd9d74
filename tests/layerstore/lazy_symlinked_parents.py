#!/usr/bin/python3
"""Entries below a symlinked parent in lazy layers. `load` extracts an entry whose parent path
goes through a symlink of the layer by following it beneath the layer root
(openat2(RESOLVE_BENEATH)): relative targets, "..", chains of symlinks, missing parents made
through them, hardlinks and whiteouts through them, a directory entry's mtime set through
them. A lazy layer must show what `load` leaves: each crafted one-layer image is loaded and
mounted (`strata mount`), and mounted with `mount --lazy` and `load --lazy` + `mount`; the
trees must be equal. What extraction refuses (an absolute or escaping target, a symlink loop,
a dangling symlink, a symlink to a file as a parent, a hardlink through an escaping symlink)
the lazy paths refuse too, with one line giving the same reason, the store unchanged."""
import io
import os
import shutil
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("fusermount3")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")


def make(entries):
    """entries: (name, kind, arg[, mtime]) with kind file (arg: bytes), dir, sym (target),
    hard (target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            name, kind, arg = e[:3]
            ti = tarfile.TarInfo(name)
            ti.mtime = e[3] if len(e) > 3 else 1600000000
            if kind == "file":
                ti.size = len(arg)
                ti.mode = 0o644
                t.addfile(ti, io.BytesIO(arg))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, arg, 0o777
            elif kind == "hard":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, arg, 0o644
            t.addfile(ti)
    return buf.getvalue()


ACCEPTED = {
    "relative": [("d", "dir", None), ("l", "sym", "d"), ("l/f", "file", b"through l\n"),
                 ("l/sub/g", "file", b"parent made through l\n"), ("h", "hard", "l/f"),
                 ("l/e", "dir", None, 1500000000)],
    "dotdot": [("a/b", "dir", None), ("a/up", "sym", ".."), ("a/up/x", "file", b"x\n"),
               ("a/b/s", "sym", "../b"), ("a/b/s/y", "file", b"y\n"), ("a/b/t", "sym", "./../../a/./b/"),
               ("a/b/t/z", "file", b"z\n")],
    "chain": [("d2/in", "dir", None), ("l1", "sym", "l2"), ("l2", "sym", "d2/in"), ("l1/f", "file", b"chain\n"),
              ("l3", "sym", "l1/"), ("l3/deep/g", "file", b"g\n"), ("h", "hard", "l3/deep/g")],
    "whiteouts": [("d/old", "file", b"old\n"), ("d/keep", "file", b"keep\n"), ("l", "sym", "d"),
                  ("l/.wh.old", "file", b""), ("l/.wh.lower", "file", b""), ("m", "sym", "d/keep"),
                  ("m/.wh.x", "file", b""), ("o", "dir", None), ("p", "sym", "o"), ("p/.wh..wh..opq", "file", b"")],
    "dir-mtime": [("d", "dir", None, 1400000000), ("l", "sym", "d"), ("l/e", "dir", None, 1300000000),
                  ("d/e", "dir", None, 1250000000), ("x", "dir", None, 1200000000), ("y", "sym", "x"),
                  ("y/sub", "dir", None, 1100000000), ("x/sub", "dir", None, 1000000000)],
    "replaced": [("d1", "dir", None), ("d2", "dir", None), ("d1/f", "file", b"1\n"), ("l", "sym", "d1"),
                 ("l/g", "file", b"g\n"), ("d2/x", "file", b"x\n"), ("k", "hard", "l/f")],
}
# Directories whose mtime comes from their first entry (through a symlink or not).
MTIMES = {"relative": ["d/e"], "dir-mtime": ["d", "d/e", "x", "x/sub"]}
REFUSED = {
    "absolute": ([("l", "sym", "/etc"), ("l/f", "file", b"x")], "symlinked parent"),
    "escape": ([("a", "dir", None), ("a/l", "sym", "../.."), ("a/l/f", "file", b"x")], "symlinked parent"),
    "loop": ([("a", "sym", "b"), ("b", "sym", "a"), ("a/f", "file", b"x")], "symlinked parent"),
    "dangling": ([("l", "sym", "missing"), ("l/f", "file", b"x")], "No such file"),
    "dangling-deep": ([("l", "sym", "missing"), ("l/a/f", "file", b"x")], "No such file"),
    "to-file": ([("f", "file", b"x"), ("l", "sym", "f"), ("l/g", "file", b"y")], "not a directory"),
    "hardlink-escape": ([("s", "sym", "/etc"), ("h", "hard", "s/passwd")], "outside the layer"),
    "hardlink-dangling": ([("s", "sym", "nowhere"), ("h", "hard", "s/f")], "No such file"),
    "hardlink-to-dir": ([("d/e", "dir", None), ("s", "sym", "d"), ("h", "hard", "s/e")], "Operation not permitted"),
}

work = workdir()
ref_store, lazy_store, cache = (os.path.join(work, n) for n in ("ref", "lazy", "cache"))
mounts, failures = FuseMounts(work), []
mount_dir, umount = mounts.new, mounts.umount


def reason(r):
    """The part of a one-line refusal after the layer it names."""
    lines = r.stderr.strip().splitlines()
    if r.returncode == 0 or len(lines) != 1:
        return None
    line = lines[0].replace("; nothing was imported", "")
    return line[line.find("): ") + 3:] if "): " in line else line


try:
    for name, entries in ACCEPTED.items():
        layout = os.path.join(work, "layouts", name)
        one_layer_layout(layout, make(entries))
        image = f"sym/{name}:1"
        strata(ref_store, "load", "-q", "-i", layout, "--tag", image)
        ref = mount_dir(name + "-ref")
        strata(ref_store, "mount", image, ref)
        want = listing(ref)
        for rel in MTIMES.get(name, []):
            want[rel].append(int(os.lstat(os.path.join(ref, rel)).st_mtime))
        for what, argv in (("mount --lazy", [STRATA, "--root", cache, "mount", "--lazy", layout]),
                           ("load --lazy + mount", None)):
            mnt = mount_dir(f"{name}-{len(mounts)}")
            if argv:
                r = run(*argv, mnt, check=False, timeout=60)
            else:
                r = strata(lazy_store, "load", "--lazy", "-q", "-i", layout, "--tag", image, check=False)
                if r.returncode == 0:
                    r = strata(lazy_store, "mount", image, mnt, check=False)
            if r.returncode != 0:
                failures.append(f"{name}: {what}: {r.stderr.strip()}")
                continue
            got = listing(mnt)
            for rel in MTIMES.get(name, []):
                if rel in got:
                    got[rel].append(int(os.lstat(os.path.join(mnt, rel)).st_mtime))
            d = diff_listings(want, got)
            umount(mnt)
            if d:
                failures.append(f"{name}: {what} differs from load + mount:\n    " + "\n    ".join(d))
            else:
                print(f"ok   {name}: {what} ({len(want)} entries)")
        umount(ref)

    for name, (entries, why) in REFUSED.items():
        layout = os.path.join(work, "layouts", name)
        one_layer_layout(layout, make(entries))
        before = tree_hash(ref_store), tree_hash(lazy_store)
        want = reason(strata(ref_store, "load", "-q", "-i", layout, check=False))
        got = [reason(strata(lazy_store, "load", "--lazy", "-q", "-i", layout, check=False)),
               reason(run(STRATA, "--root", cache, "mount", "--lazy", layout, mount_dir(name), check=False))]
        if want is None or why not in want:
            failures.append(f"{name}: load did not refuse it with '{why}': {want}")
        elif got != [want, want]:
            failures.append(f"{name}: load says {want!r}; load --lazy, mount --lazy say {got}")
        elif (tree_hash(ref_store), tree_hash(lazy_store)) != before or os.path.ismount(mounts[-1]):
            failures.append(f"{name}: a refusal changed a store or mounted")
        else:
            print(f"ok   {name}: refused by all: {want}")
finally:
    mounts.unmount_all()
    shutil.rmtree(work, ignore_errors=True)
conclude(failures, f"{len(ACCEPTED)} trees, {len(REFUSED)} refusals")
