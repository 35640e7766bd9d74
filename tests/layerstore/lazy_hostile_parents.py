#!/usr/bin/python3
"""Hostile layers against the lazy table of contents: whatever `load` + `mount` shows (or the
reason it refuses), `mount --lazy` and `load --lazy` + `mount` must show (or refuse with the
same one line). The cases attack how the lazy index resolves paths below symlinked parents
(a symlink replaced later in the same tar, ".." after a followed symlink, chains at the
40-link limit, hardlinks and whiteouts through symlinks) and sparse maps (overlapping or
out-of-order regions, regions past the size, holes at the start and end)."""
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
need_tools("fusermount3")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")


def make(entries):
    """entries: (name, kind, arg[, pax]) with kind file (arg: bytes), dir, sym (target),
    hard (target), sparse (arg: (size, [(offset, length)], data), PAX 0.1 headers)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            name, kind, arg = e[:3]
            ti = tarfile.TarInfo(name)
            ti.mtime = 1600000000
            if kind == "file":
                ti.size, ti.mode = len(arg), 0o644
                t.addfile(ti, io.BytesIO(arg))
                continue
            if kind == "sparse":
                size, regions, data = arg
                ti.size, ti.mode = len(data), 0o644
                ti.pax_headers = {"GNU.sparse.size": str(size), "GNU.sparse.numblocks": str(len(regions)),
                                  "GNU.sparse.map": ",".join(f"{o},{n}" for o, n in regions)}
                t.addfile(ti, io.BytesIO(data))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, arg, 0o777
            elif kind == "hard":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, arg, 0o644
            t.addfile(ti)
    return buf.getvalue()


def layout_of(path, blobs_in, gz):
    """An OCI layout (untagged) of layer tars, bottom-most first, gzip-compressed if `gz`."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def put(b):
        d = hashlib.sha256(b).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(b)
        return "sha256:" + d

    diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in blobs_in]
    stored = [gzip.compress(b, mtime=0) if gz else b for b in blobs_in]
    layers = [(put(b), len(b)) for b in stored]
    media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(config), "size": len(config)},
                           "layers": [{"mediaType": media, "digest": d, "size": n} for d, n in layers]}).encode()
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                      "digest": put(manifest), "size": len(manifest)}]}, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')


BASE = [("a/b/f", "file", b"a/b/f\n"), ("a/f", "file", b"a/f\n"), ("x", "file", b"x\n"), ("d/x", "file", b"d/x\n"),
        ("d/y", "file", b"d/y\n"), ("e/z", "file", b"e/z\n")]
CHAIN40 = [("t", "dir", None)] + [(f"c{i}", "sym", f"c{i + 1}") for i in range(1, 40)] + [("c40", "sym", "t")]
CHAIN41 = [("t", "dir", None)] + [(f"c{i}", "sym", f"c{i + 1}") for i in range(1, 41)] + [("c41", "sym", "t")]
# Each case: the layers, bottom-most first (a case of one list is one layer).
CASES = {
    # A symlinked parent replaced later in the same tar: by a directory, by a file.
    "sym-then-dir": [[("d", "dir", None), ("l", "sym", "d"), ("l/f", "file", b"1\n"), ("l", "dir", None),
                      ("l/g", "file", b"2\n")]],
    "sym-then-file": [[("d", "dir", None), ("l", "sym", "d"), ("l/f", "file", b"1\n"), ("l", "file", b"f\n")]],
    "dir-then-sym": [[("d", "dir", None), ("e", "dir", None), ("d/f", "file", b"1\n"), ("d", "sym", "e"),
                      ("d/g", "file", b"2\n")]],
    "sym-retargeted": [[("d", "dir", None), ("e", "dir", None), ("l", "sym", "d"), ("l/f", "file", b"1\n"),
                        ("l", "sym", "e"), ("l/g", "file", b"2\n"), ("h", "hard", "l/g")]],
    # ".." after a followed symlink is the target's parent, not the symlink's.
    "dotdot-after-link": [[("a/b/c", "dir", None), ("a/s", "sym", "b/c"), ("a/u", "sym", "s/.."),
                           ("a/u/y", "file", b"y\n")]],
    "dotdot-chain": [[("p/q/r", "dir", None), ("s1", "sym", "p/q/r"), ("s2", "sym", "s1/../.."),
                      ("s2/w", "file", b"w\n")]],
    "hardlink-dotdot": [[("a/b/c/f", "file", b"a/b/c/f\n"), ("a/b/f", "file", b"a/b/f\n"), ("a/f", "file", b"a/f\n"),
                         ("a/s", "sym", "b/c"), ("h", "hard", "a/s/../f")]],
    "dot-link": [[("l", "sym", "."), ("l/l/l/f", "file", b"f\n"), ("m", "sym", "./l/"), ("m/m/g", "file", b"g\n")]],
    "dotdot-at-root": [[("l", "sym", "sub/../.."), ("sub", "dir", None), ("l/f", "file", b"f\n")]],
    "chain-40": [CHAIN40 + [("c1/f", "file", b"f\n")]],
    "chain-41": [CHAIN41 + [("c1/f", "file", b"f\n")]],
    "hardlink-below-link": [[("d/f", "file", b"f\n"), ("l", "sym", "d"), ("l/h", "hard", "d/f"),
                             ("l/k", "hard", "l/h")]],
    "hardlink-to-symlink": [[("d", "dir", None), ("s", "sym", "d"), ("h", "hard", "s"), ("h/f", "file", b"f\n")]],
    "self-loop": [[("l", "sym", "l"), ("l/f", "file", b"f\n")]],
    "link-to-dotdot-root": [[("l", "sym", ".."), ("l/f", "file", b"f\n")]],
    # Whiteouts and opaque markers below symlinked parents, over a lower layer.
    "whiteout-via-link": [BASE, [("l", "sym", "d"), ("l/.wh.x", "file", b""), ("m", "sym", "."),
                                 ("m/.wh.x", "file", b""), ("n", "sym", "a/b/.."), ("n/.wh.f", "file", b"")]],
    "opaque-via-link": [BASE, [("l", "sym", "e"), ("l/.wh..wh..opq", "file", b""), ("l/new", "file", b"n\n")]],
    "whiteout-then-dir": [BASE, [("l", "sym", "d"), ("l/.wh.y", "file", b""), ("l", "dir", None),
                                 ("l/q", "file", b"q\n")]],
    "whiteout-dangling-link": [BASE, [("l", "sym", "e"), ("l/.wh.z", "file", b"")]],
    "opaque-dangling-link": [BASE, [("l", "sym", "e"), ("l/.wh..wh..opq", "file", b"")]],
    "whiteout-link-to-lower-dir": [BASE, [("l", "sym", "d"), ("l/.wh.x", "file", b""), ("k", "sym", "l"),
                                          ("k/.wh.y", "file", b"")]],
    "whiteout-of-link-parent": [BASE, [("l", "sym", "d"), ("l/n", "file", b"n\n"), (".wh.l", "file", b"")]],
    # Entries after a large file: in a gzip layer they start inside later deflate blocks.
    "after-big-file": [[("big", "file", bytes((i * 2654435761 >> 13) & 255 for i in range(600000))),
                        ("d", "dir", None), ("l", "sym", "d"), ("l/f", "file", b"after big\n"),
                        ("s", "sparse", (1 << 20, [(4096, 70000), (900000, 5)], b"J" * 70005)),
                        ("l/h", "hard", "s")]],
    # Sparse maps (PAX 0.1): holes at the start and the end, regions out of order, overlapping,
    # past the size, a map longer than the data.
    "sparse-holes-ends": [[("f", "sparse", (3 * 65536, [(65536, 4096)], b"A" * 4096))]],
    "sparse-unordered": [[("f", "sparse", (65536, [(40960, 4096), (0, 4096)], b"B" * 4096 + b"C" * 4096))]],
    "sparse-overlap": [[("f", "sparse", (65536, [(0, 8192), (4096, 8192)], b"D" * 8192 + b"E" * 8192))]],
    "sparse-past-size": [[("f", "sparse", (8192, [(4096, 8192)], b"F" * 8192))]],
    "sparse-short-data": [[("f", "sparse", (65536, [(0, 4096), (8192, 4096)], b"G" * 4096))]],
    "sparse-zero-regions": [[("f", "sparse", (1 << 20, [], b""))]],
    "sparse-empty-region": [[("f", "sparse", (20000, [(0, 0), (10000, 100), (20000, 0)], b"H" * 100))]],
    # As GNU tar --sparse writes a file that ends in a hole: a last, empty region at its size.
    "sparse-gnu-trailing-hole": [[("f", "sparse", (10000, [(0, 4096), (10000, 0)], b"I" * 4096))]],
}

work = workdir()
ref_store, lazy_store, cache = (os.path.join(work, n) for n in ("ref", "lazy", "cache"))
mounts, failures = [], []


def mount_dir(name):
    mnt = os.path.join(work, "mnt", name)
    os.makedirs(mnt)
    mounts.append(mnt)
    return mnt


def umount(mnt):
    subprocess.run(["fusermount3", "-u", mnt], check=False)


def reason(r):
    """The part of a refusal's last line after the layer it names (mount --lazy may warn
    before it, e.g. of a whiteout it skips, where load stops first)."""
    lines = r.stderr.strip().splitlines()
    if r.returncode <= 0 or not lines:
        return f"rc {r.returncode}: {r.stderr.strip()}"
    line = lines[-1].replace("; nothing was imported", "")
    return line[line.find("): ") + 3:] if "): " in line else line


def holes(root, blocks):
    """Where each regular file's data and holes are (SEEK_DATA/SEEK_HOLE), and (if `blocks`)
    its st_blocks: a lazy file's are computed for 4 KiB blocks, which the unpacked copy on
    ext4 has; only sparse files' are compared (a small plain file's differ by design)."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if not os.path.isfile(p) or os.path.islink(p):
                continue
            fd = os.open(p, os.O_RDONLY)
            try:
                size, spans, off = os.fstat(fd).st_size, [], 0
                while off < size:
                    try:
                        d = os.lseek(fd, off, os.SEEK_DATA)
                    except OSError:
                        break
                    h = os.lseek(fd, d, os.SEEK_HOLE)
                    spans.append((d, h))
                    off = h
                out[os.path.relpath(p, root)] = spans + ([os.fstat(fd).st_blocks] if blocks else [])
            finally:
                os.close(fd)
    return out


try:
    for (name, layers), gz in [(c, gz) for gz in (False, True) for c in CASES.items()]:
        if gz:
            name += ".gz"  # the gzip index pass finds its own entry boundaries
        layout = os.path.join(work, "layouts", name)
        layout_of(layout, [make(entries) for entries in layers], gz)
        image = f"hostile/{name}:1"
        r = strata(ref_store, "load", "-q", "-i", layout, "--tag", image, check=False)
        if r.returncode != 0:
            want = reason(r)
        else:
            ref = mount_dir(name + "-ref")
            r = strata(ref_store, "mount", image, ref, check=False)
            want = (listing(ref), holes(ref, name.startswith("sparse"))) if r.returncode == 0 else reason(r)
            umount(ref)
        for what in ("mount --lazy", "load --lazy + mount"):
            mnt = mount_dir(f"{name}-{len(mounts)}")
            if what == "mount --lazy":
                r = run(STRATA, "--root", cache, "mount", "--lazy", layout, mnt, check=False, timeout=60)
            else:
                r = strata(lazy_store, "load", "--lazy", "-q", "-i", layout, "--tag", image, check=False)
                if r.returncode == 0:
                    r = strata(lazy_store, "mount", image, mnt, check=False)
            got = reason(r) if r.returncode != 0 else (listing(mnt), holes(mnt, name.startswith("sparse")))
            if r.returncode == 0:
                umount(mnt)
            if isinstance(want, str) or isinstance(got, str):
                if want != got:
                    failures.append(f"{name}: {what}: load + mount gives {str(want)[:300]!r}, this {str(got)[:300]!r}")
                else:
                    print(f"ok   {name}: {what}: refused alike: {want}")
                continue
            d = diff_listings(want[0], got[0]) + [f"{k}: data spans {want[1].get(k)} != {got[1].get(k)}"
                                                  for k in sorted(set(want[1]) | set(got[1]))
                                                  if want[1].get(k) != got[1].get(k)]
            if d:
                failures.append(f"{name}: {what} differs from load + mount:\n    " + "\n    ".join(d))
            else:
                print(f"ok   {name}: {what} ({len(want[0])} entries)")
finally:
    for m in mounts:
        if os.path.ismount(m):
            umount(m)
    shutil.rmtree(work, ignore_errors=True)
if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print(f"PASS ({len(CASES)} cases, plain and gzip)")
