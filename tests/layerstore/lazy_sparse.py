#!/usr/bin/python3
"""Sparse files in lazy layers. Layers made by GNU tar --sparse (PAX sparse formats 0.0, 0.1
and 1.0; plain, gzip and zstd) hold a 64 MiB file with data at both ends, in the middle and at
an odd offset, a file whose only data is at its very end (as /var/log/lastlog), one that is all
hole, one with a trailing hole and a hardlink to the first. Through `mount --lazy` and through
`load --lazy` + `mount` the tree equals `load` + `mount` of the same image (type, mode, owner,
size, content, nlink, mtime, xattrs), holes read as zeros, stat's st_blocks counts the data
and not the holes, and SEEK_DATA/SEEK_HOLE find the same data as in the unpacked file. A
container over the lazy image appends to the sparse file (a copy-up read from the blob): same
output as over the unpacked image, the copy keeps its holes, and `commit` makes the same layer
(diff_id). `save` gives back the layer
tar byte for byte (its diff_id), and `unpack` leaves what load leaves. The old GNU format (--format=gnu, type 'S', which Docker
refuses) is refused by load, load --lazy and mount --lazy alike, with the store unchanged."""
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
need_tools("fusermount3", "zstd", "busybox", "tar")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")

MiB = 1 << 20
work = workdir()
src = os.path.join(work, "src")
ref_store = os.path.join(work, "ref")
lazy_store = os.path.join(work, "lazy")
cache = os.path.join(work, "cache")
mounts = FuseMounts(work)
mount_dir, umount = mounts.new, mounts.umount
failures = []


def write_at(path, size, pieces):
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in pieces:
            f.seek(off)
            f.write(data)


def make_source():
    os.makedirs(os.path.join(src, "bin"))
    os.makedirs(os.path.join(src, "var/log"))
    shutil.copy("/bin/busybox", os.path.join(src, "bin/busybox"))
    for name in ("sh", "cat", "stat", "sha256sum", "echo", "touch"):
        os.symlink("busybox", os.path.join(src, "bin", name))
    write_at(os.path.join(src, "big.img"), 64 * MiB,
             [(0, os.urandom(4096)), (10 * MiB, os.urandom(MiB)), (40 * MiB + 123, b"x" * 8000),
              (64 * MiB - 4096, os.urandom(4096))])
    write_at(os.path.join(src, "var/log/lastlog"), 3 * MiB, [(3 * MiB - 292, os.urandom(292))])
    write_at(os.path.join(src, "holes.bin"), 16 * MiB, [])
    write_at(os.path.join(src, "trail.bin"), 8 * MiB, [(0, b"head" * 1000)])
    os.link(os.path.join(src, "big.img"), os.path.join(src, "big-link.img"))
    with open(os.path.join(src, "plain.txt"), "w") as f:
        f.write("not sparse\n")
    for d, dirs, files in os.walk(src):
        for n in dirs + files:
            os.utime(os.path.join(d, n), (1600000000, 1600000000), follow_symlinks=False)


def gnu_tar(*fmt):
    return subprocess.run(["tar", "--sparse", *fmt, "--sort=name", "--numeric-owner", "--owner=0", "--group=0",
                           "-C", src, "-cf", "-", "."], stdout=subprocess.PIPE, check=True).stdout


def compress(tar, kind):
    if kind == "gzip":
        return subprocess.run(["gzip", "-n", "-c"], input=tar, stdout=subprocess.PIPE, check=True).stdout
    if kind == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=tar, stdout=subprocess.PIPE, check=True).stdout
    return tar


MEDIA = {"plain": "application/vnd.oci.image.layer.v1.tar",
         "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
         "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}


def layout_of(name, tar, kind):
    path = os.path.join(work, "layouts", name)
    one_layer_layout(path, compress(tar, kind), "sha256:" + hashlib.sha256(tar).hexdigest(), MEDIA[kind])
    return path


SPARSE = ("big.img", "var/log/lastlog", "holes.bin", "trail.bin")


def sparse_facts(root):
    """Per sparse file: size, whether its blocks are fewer than its size needs, its data map,
    and the bytes at a few places inside holes."""
    out = {}
    for rel in SPARSE:
        p = os.path.join(root, rel)
        st = os.stat(p)
        with open(p, "rb") as f:
            f.seek(5 * MiB)
            hole = f.read(4096)
            f.seek(st.st_size - 1)
            last = f.read(1)
        out[rel] = (st.st_size, st.st_blocks * 512 < st.st_size, data_map(p), hole, last)
    return out


def check_view(what, root, want_listing, want_facts):
    d = diff_listings(want_listing, listing(root))
    if d:
        failures.append(f"{what}: differs from load + mount:\n    " + "\n    ".join(d[:20]))
        return
    got = sparse_facts(root)
    for rel in SPARSE:
        if got[rel] != want_facts[rel]:
            failures.append(f"{what}: {rel}: {got[rel][:3]} != {want_facts[rel][:3]} (size, holes, data map)")
            return
    with open(os.path.join(root, "holes.bin"), "rb") as f:
        if f.read(MiB) != b"\0" * MiB:
            failures.append(f"{what}: holes.bin does not read as zeros")
            return
    if os.stat(os.path.join(root, "holes.bin")).st_blocks != 0:
        failures.append(f"{what}: holes.bin has blocks")
        return
    print(f"ok   {what}")


def strata_mount(store, image, name):
    mnt = mount_dir(name)
    strata(store, "mount", image, mnt)
    return mnt


CONTAINER = ("echo appended >> /big.img && sha256sum /big.img /var/log/lastlog && stat -c '%s' /big.img"
             " && if [ $(($(stat -c '%b' /big.img) * 512)) -lt $((8 * 1024 * 1024)) ]; then echo holes kept; fi")

PIN = " && touch -d '2020-01-02 03:04:05' /big.img /"

try:
    make_source()
    formats = {"0.0": ("--format=posix", "--sparse-version=0.0"),
               "0.1": ("--format=posix", "--sparse-version=0.1"),
               "1.0": ("--format=posix", "--sparse-version=1.0")}
    n = 0
    for fmt, args in formats.items():
        tar = gnu_tar(*args)
        assert b"GNU.sparse" in tar, f"GNU tar {args} wrote no sparse entries"
        for kind in ("plain", "gzip", "zstd"):
            n += 1
            name = f"sparse-{fmt}-{kind}"
            layout = layout_of(name, tar, kind)
            image = f"sp/{name.replace('.', '')}:1"
            strata(ref_store, "load", "-q", "-i", layout, "--tag", image)
            ref = strata_mount(ref_store, image, name + "-ref")
            want, want_facts = listing(ref), sparse_facts(ref)
            assert want_facts["big.img"][1], "the unpacked big.img has no holes"
            r = run(STRATA, "--root", cache, "mount", "--lazy", layout, mount_dir(name + "-lazymount"),
                    check=False, timeout=120)
            if r.returncode != 0:
                failures.append(f"{name}: mount --lazy: {r.stderr.strip()}")
            else:
                check_view(f"{name}: mount --lazy", mounts[-1], want, want_facts)
                umount(mounts[-1])
            r = strata(lazy_store, "load", "--lazy", "-q", "-i", layout, "--tag", image, check=False)
            if r.returncode != 0:
                failures.append(f"{name}: load --lazy: {r.stderr.strip()}")
                umount(ref)
                continue
            lazy = strata_mount(lazy_store, image, name + "-lazyload")
            check_view(f"{name}: load --lazy + mount", lazy, want, want_facts)
            umount(lazy)
            umount(ref)
            if kind == "plain":
                continue
            # A container appends to the sparse file: copy-up reads it from the blob.
            # commit of it: the same layer (times pinned, the copy's holes written as holes).
            outs, committed = [], []
            for store in (ref_store, lazy_store):
                r = strata(store, "run", "--name", "c", image, "/bin/sh", "-c", CONTAINER + PIN, check=False,
                           timeout=120)
                outs.append((r.returncode, r.stdout, r.stderr.strip()))
                strata(store, "commit", "-q", "c", image + "-c")
                strata(store, "rm", "c")
                committed.append(json.loads(strata(store, "inspect", image + "-c").stdout)[0]["Layers"][-1]["diff_id"])
            if outs[0] != outs[1] or outs[1][0] != 0 or "holes kept" not in outs[1][1]:
                failures.append(f"{name}: container: unpacked {outs[0]} != lazy {outs[1]}")
            elif committed[0] != committed[1]:
                failures.append(f"{name}: commit over the lazy layer {committed[1]} != over the unpacked one {committed[0]}")
            else:
                print(f"ok   {name}: container copy-up of the sparse file, the same committed layer")
            # save decompresses the blob into a docker-archive: the layer tar as it was.
            out = os.path.join(work, name + ".tar")
            strata(lazy_store, "save", image, "-o", out, "-q")
            with tarfile.open(out) as t:
                manifest = json.load(t.extractfile("manifest.json"))
                layer = t.extractfile(manifest[0]["Layers"][0]).read()
            if layer != tar:
                failures.append(f"{name}: save gives another layer tar")
            # unpack extracts the blob as load does.
            strata(lazy_store, "unpack", image)
            unpacked = strata_mount(lazy_store, image, name + "-unpacked")
            check_view(f"{name}: unpack + mount", unpacked, want, want_facts)
            umount(unpacked)

    # The old GNU format: type 'S', which Go returns as is and Docker refuses.
    tar = gnu_tar("--format=gnu")
    layout = layout_of("gnu-old", tar, "gzip")
    before = tree_hash(lazy_store), tree_hash(ref_store)
    results = [strata(ref_store, "load", "-q", "-i", layout, check=False),
               strata(lazy_store, "load", "--lazy", "-q", "-i", layout, check=False),
               run(STRATA, "--root", cache, "mount", "--lazy", layout, mount_dir("gnu-old"), check=False)]
    for r in results:
        err = r.stderr.strip().splitlines()
        if r.returncode == 0 or len(err) != 1 or "GNU sparse files are not supported" not in err[0]:
            failures.append(f"gnu-old: {r.args[1:]} not refused with one line naming GNU sparse files: {err}")
    if (tree_hash(lazy_store), tree_hash(ref_store)) != before:
        failures.append("gnu-old: a refused load changed a store")
    if os.path.ismount(mounts[-1]):
        failures.append("gnu-old: mounted")
    print(f"ok   gnu-old: refused: {results[1].stderr.strip()}")
finally:
    mounts.unmount_all()
    shutil.rmtree(work, ignore_errors=True)
conclude(failures, f"{n} sparse layers")
