#!/usr/bin/python3
"""`strata mount --lazy`: the image served straight from its archive's blobs must show the
same tree as `strata load` + `strata mount` of the same image (every path's type, mode,
owner, size, content, link target, xattrs, link count, mtime), for gzip layers (umoci), zstd
layers (skopeo) and plain layers inside a docker-archive file. The image has whiteouts,
an opaque dir, hardlinks, symlinks, devices, a set-uid file and a big file that is mostly
zeros. The second mount uses the cached indexes (not rebuilt); a corrupted blob is refused
with one line and nothing mounted or cached."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo", "fusermount3")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")

work = workdir()
mounts = []


def extra(r):
    # Mostly zeros with data at both ends and in the middle: crosses many checkpoints.
    with open(os.path.join(r, "big.bin"), "wb") as f:
        f.write(os.urandom(3 << 20))
        f.write(b"\0" * (20 << 20))
        f.write(b"middle" * 100000)
        f.write(b"\0" * (8 << 20))
        f.write(os.urandom(1 << 20))
    os.makedirs(os.path.join(r, "deep/a/b/c"))
    with open(os.path.join(r, "deep/a/b/c/file"), "w") as f:
        f.write("deep\n" * 1000)
    os.link(os.path.join(r, "deep/a/b/c/file"), os.path.join(r, "deep/a/hard"))
    os.unlink(os.path.join(r, "etc/hello"))  # a whiteout of a lower file
    shutil.rmtree(os.path.join(r, "data"))   # a whiteout of a lower dir
    os.makedirs(os.path.join(r, "data"))      # ... made again: opaque in this layer
    with open(os.path.join(r, "data/new"), "w") as f:
        f.write("new\n")


def lazy_mount(cache, src, name):
    mnt = os.path.join(work, name)
    os.makedirs(mnt)
    r = run(STRATA, "--root", cache, "mount", "--lazy", src, mnt, check=False, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"mount --lazy {src} failed: {r.stderr.strip()}")
    mounts.append(mnt)
    assert r.stdout.strip() == mnt, r.stdout
    return mnt


def index_files(cache):
    d = os.path.join(cache, "lazy", "index")
    return {n: os.stat(os.path.join(d, n)).st_mtime_ns for n in os.listdir(d)} if os.path.isdir(d) else {}


try:
    layout = os.path.join(work, "img")
    build_umoci_image(layout, extra_layer=extra)
    # The reference: the image loaded and unpacked into a store, mounted by `strata mount`.
    store = os.path.join(work, "store")
    strata(store, "load", "-q", "-i", layout, "--tag", "lazy/test:v1")
    ref_mnt = os.path.join(work, "ref-mnt")
    os.makedirs(ref_mnt)
    strata(store, "mount", "lazy/test:v1", ref_mnt)
    mounts.append(ref_mnt)
    ref = listing(ref_mnt)
    assert "big.bin" in ref and "etc/hello" not in ref and "data/new" in ref and "data/keep" not in ref, sorted(ref)

    zstd_layout = os.path.join(work, "img-zstd")
    run("skopeo", "copy", "--dest-compress-format", "zstd", f"oci:{layout}:v1", f"oci:{zstd_layout}:v1")
    archive = os.path.join(work, "img.tar")
    run("skopeo", "copy", f"oci:{layout}:v1", f"docker-archive:{archive}:lazy/test:v1")

    cache = os.path.join(work, "cache")
    for name, src in (("gzip", layout), ("zstd", zstd_layout), ("docker-archive", archive)):
        mnt = lazy_mount(cache, src, "lazy-" + name)
        d = diff_listings(ref, listing(mnt))
        assert not d, f"lazy mount of the {name} image differs from load + mount:\n" + "\n".join(d[:30])
        run("fusermount3", "-u", mnt)
        mounts.remove(mnt)
        print(f"{name}: same tree as load + mount")

    # Second mount: the cached indexes serve it; none is rebuilt.
    before = index_files(cache)
    assert len(before) >= 3 * 4 - 4, before  # gzip and zstd by digest; the archive's by diff_id
    mnt = lazy_mount(cache, zstd_layout, "lazy-again")
    assert index_files(cache) == before, "an index was rebuilt on the second mount"
    d = diff_listings(ref, listing(mnt))
    assert not d, "second lazy mount differs:\n" + "\n".join(d[:30])
    run("fusermount3", "-u", mnt)
    mounts.remove(mnt)

    # A relative --root, run from elsewhere: strata-fs (which runs in /) is given absolute
    # paths. Before, it was handed the descriptors' relative paths ("lowerdir
    # /rel-cache/lazy/mounts/...: No such file or directory").
    rel_mnt = os.path.join(work, "rel-mnt")
    os.makedirs(rel_mnt)
    r = run(STRATA, "--root", "rel-cache", "mount", "--lazy", layout, rel_mnt, check=False, timeout=300, cwd=work)
    assert r.returncode == 0, r.stderr
    mounts.append(rel_mnt)
    d = diff_listings(ref, listing(rel_mnt))
    assert not d, "lazy mount with a relative --root differs:\n" + "\n".join(d[:30])

    # A corrupted blob: refused, one line, nothing mounted, no index cached for it.
    bad = os.path.join(work, "img-bad")
    shutil.copytree(zstd_layout, bad)
    biggest = os.path.basename(corrupt_biggest_blob(bad))
    fresh = os.path.join(work, "fresh-cache")
    bad_mnt = os.path.join(work, "bad-mnt")
    os.makedirs(bad_mnt)
    r = run(STRATA, "--root", fresh, "mount", "--lazy", bad, bad_mnt, check=False, timeout=120)
    assert r.returncode != 0, "a corrupted blob was mounted"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"strata: mount {bad}: "), r.stderr
    assert not os.path.ismount(bad_mnt)
    assert "sha256-" + biggest not in index_files(fresh), "an index was cached for a corrupted blob"
    print("PASS")
finally:
    for m in mounts:
        subprocess.run(["fusermount3", "-u", m])
    shutil.rmtree(work, ignore_errors=True)
