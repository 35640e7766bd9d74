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
            if kind == "sparse10":  # arg: (real size, map text, data); as GNU tar names it
                size, text, data = arg
                ti.name = "GNUSparseFile.0/" + name
                body = text + b"\0" * (-len(text) % 512) + data
                ti.size, ti.mode = len(body), 0o644
                ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                                  "GNU.sparse.realsize": str(size)}
                t.addfile(ti, io.BytesIO(body))
                continue
            if kind in ("chr", "blk"):
                ti.type = tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = arg
                ti.mode = 0o600
                t.addfile(ti)
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
    # Device numbers are read from the header block itself: headers at every offset of the
    # inflated stream's chunks (after files of odd sizes), plain and gzip.
    "devices": [[(f"f{i}", "file", bytes([65 + i % 26]) * (i * 977 + 3)) for i in range(40)] +
                [(f"c{i}", "chr" if i % 2 else "blk", (i % 250 + 1, i * 7 % 256)) for i in range(120)] +
                [("big", "file", bytes((i * 2654435761 >> 11) & 255 for i in range(300001))),
                 ("c-after", "chr", (1, 3)), ("b-after", "blk", (7, 255))]],
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
    # PAX 1.0: the map in the data, which can lie about its length.
    "sparse10": [[("f", "sparse10", (20000, b"2\n0\n4096\n8192\n10\n", b"K" * 4106))]],
    "sparse10-count-more": [[("f", "sparse10", (20000, b"3\n0\n4096\n8192\n10\n", b"L" * 4106))]],
    "sparse10-count-less": [[("f", "sparse10", (20000, b"1\n0\n4096\n8192\n10\n", b"M" * 4106))]],
    "sparse10-count-huge": [[("f", "sparse10", (20000, b"99999999999999\n0\n10\n", b"N" * 10))]],
    "sparse10-two-blocks": [[("f", "sparse10", (120 * 8192, b"120\n0\n100\n8192\n100\n16384\n100\n24576\n100\n32768\n100\n40960\n100\n49152\n100\n57344\n100\n65536\n100\n73728\n100\n81920\n100\n90112\n100\n98304\n100\n106496\n100\n114688\n100\n122880\n100\n131072\n100\n139264\n100\n147456\n100\n155648\n100\n163840\n100\n172032\n100\n180224\n100\n188416\n100\n196608\n100\n204800\n100\n212992\n100\n221184\n100\n229376\n100\n237568\n100\n245760\n100\n253952\n100\n262144\n100\n270336\n100\n278528\n100\n286720\n100\n294912\n100\n303104\n100\n311296\n100\n319488\n100\n327680\n100\n335872\n100\n344064\n100\n352256\n100\n360448\n100\n368640\n100\n376832\n100\n385024\n100\n393216\n100\n401408\n100\n409600\n100\n417792\n100\n425984\n100\n434176\n100\n442368\n100\n450560\n100\n458752\n100\n466944\n100\n475136\n100\n483328\n100\n491520\n100\n499712\n100\n507904\n100\n516096\n100\n524288\n100\n532480\n100\n540672\n100\n548864\n100\n557056\n100\n565248\n100\n573440\n100\n581632\n100\n589824\n100\n598016\n100\n606208\n100\n614400\n100\n622592\n100\n630784\n100\n638976\n100\n647168\n100\n655360\n100\n663552\n100\n671744\n100\n679936\n100\n688128\n100\n696320\n100\n704512\n100\n712704\n100\n720896\n100\n729088\n100\n737280\n100\n745472\n100\n753664\n100\n761856\n100\n770048\n100\n778240\n100\n786432\n100\n794624\n100\n802816\n100\n811008\n100\n819200\n100\n827392\n100\n835584\n100\n843776\n100\n851968\n100\n860160\n100\n868352\n100\n876544\n100\n884736\n100\n892928\n100\n901120\n100\n909312\n100\n917504\n100\n925696\n100\n933888\n100\n942080\n100\n950272\n100\n958464\n100\n966656\n100\n974848\n100\n", b"O" * 12000))]],
    "sparse-gnu-trailing-hole": [[("f", "sparse", (10000, [(0, 4096), (10000, 0)], b"I" * 4096))]],
}

work = workdir()
ref_store, lazy_store, cache = (os.path.join(work, n) for n in ("ref", "lazy", "cache"))
mounts, failures = FuseMounts(work), []
mount_dir, umount = mounts.new, mounts.umount


def reason(r):
    """The part of a refusal's last line after the layer it names (mount --lazy may warn
    before it, e.g. of a whiteout it skips, where load stops first)."""
    lines = r.stderr.strip().splitlines()
    if r.returncode <= 0 or not lines:
        return f"rc {r.returncode}: {r.stderr.strip()}"
    line = lines[-1].replace("; nothing was imported", "")
    return line[line.find("): ") + 3:] if "): " in line else line


def holes(root):
    """Where each regular file's data and holes are (SEEK_DATA/SEEK_HOLE). Not st_blocks: the
    unpacked copy's count the filesystem's own blocks too (ext4's extent tree of a file with
    many regions)."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if not os.path.isfile(p) or os.path.islink(p):
                continue
            out[os.path.relpath(p, root)] = data_map(p)
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
            want = (listing(ref), holes(ref)) if r.returncode == 0 else reason(r)
            umount(ref)
        for what in ("mount --lazy", "load --lazy + mount"):
            mnt = mount_dir(f"{name}-{len(mounts)}")
            if what == "mount --lazy":
                r = run(STRATA, "--root", cache, "mount", "--lazy", layout, mnt, check=False, timeout=60)
            else:
                r = strata(lazy_store, "load", "--lazy", "-q", "-i", layout, "--tag", image, check=False)
                if r.returncode == 0:
                    r = strata(lazy_store, "mount", image, mnt, check=False)
            got = reason(r) if r.returncode != 0 else (listing(mnt), holes(mnt))
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
    mounts.unmount_all()
    shutil.rmtree(work, ignore_errors=True)
conclude(failures, f"{len(CASES)} cases, plain and gzip")
