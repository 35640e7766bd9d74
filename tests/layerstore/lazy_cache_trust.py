#!/usr/bin/python3
"""A cached lazy index does not vouch for a blob file nobody verified. `strata mount --lazy`
reads blobs in place and caches each layer's index by the blob's digest; a later mount that
finds the index must still know the blob file in front of it is the verified one. Before,
any archive naming a cached digest was served unverified: a blob of the same size with other
bytes under a known digest (a tampered copy, an attacker's archive naming a popular base
layer) showed its own content as the verified layer's. Here:
- the same bytes in another file (a copied OCI layout) mount from the cache, the digest
  checked once and the index not rebuilt;
- other bytes under the digest, in another file or rewritten in place after caching, are
  refused as a cold mount refuses them (digest mismatch; for a docker-archive, which names no
  digest, diff_id mismatch), nothing mounted;
- strata-fs itself refuses a lazy layer descriptor whose blob file is not the one strata
  verified (verified=DEV:INO:SIZE:MTIME_NS:CTIME_NS), the file swapped between the two."""
import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403
from bad_input_corpus import GOOD, layer_blob, layout, make_tar, read_then_unmount  # noqa: E402

need_root()
need_tools("fusermount3")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")

STRATA_FS = os.environ.get("STRATA_FS", "strata-fs")
work = workdir()
cache = os.path.join(work, "cache")
mnt = os.path.join(work, "mnt")
os.makedirs(mnt)
failures = []
GENUINE = b"genuine content of a verified layer\n"
FORGED = b"FORGED! content, same size, no sig\n\n"
assert len(GENUINE) == len(FORGED)
ENTRIES = GOOD + [("etc/motd", "file", GENUINE)]


def check(cond, what):
    if not cond:
        failures.append(what)


def lazy_mount(path):
    return run(STRATA, "--root", cache, "mount", "--lazy", path, mnt, check=False, timeout=60)






def refused(r, path, reason, what):
    check(r.returncode != 0 and reason in r.stderr and f"strata: mount {path}: " in r.stderr,
          f"{what}: exit {r.returncode}, stderr {r.stderr!r} (want a refusal naming {reason!r})")
    if os.path.ismount(mnt):
        failures.append(f"{what}: mounted")
        subprocess.run(["fusermount3", "-u", mnt])


try:
    for compress in ("plain", "gzip"):
        good = layout(os.path.join(work, f"good-{compress}"), [make_tar(ENTRIES)], compress=compress)
        r = lazy_mount(good)
        check(r.returncode == 0 and read_then_unmount(mnt, "etc/motd") == GENUINE, f"{compress}: the good image: {r.stderr!r}")
        index = glob.glob(os.path.join(cache, "lazy/index/sha256-*"))
        index_mtimes = {p: os.stat(p).st_mtime_ns for p in index}

        # The same bytes elsewhere: served from the cached index once the digest is checked.
        copy = os.path.join(work, f"copy-{compress}")
        shutil.copytree(good, copy)
        r = lazy_mount(copy)
        check(r.returncode == 0 and read_then_unmount(mnt, "etc/motd") == GENUINE, f"{compress}: a copy of the good image: {r.stderr!r}")
        check({p: os.stat(p).st_mtime_ns for p in index} == index_mtimes, f"{compress}: the copy rebuilt the index")

        # Other bytes under the same digest, same size: another archive naming it.
        def forge(ctx):
            d = ctx["layers"][0]["digest"]
            blob = ctx["blobs"][d]
            if compress == "plain":
                forged = blob.replace(GENUINE, FORGED)
            else:  # the forged tar, compressed to the genuine blob's size exactly
                import gzip as gz
                forged = gz.compress(make_tar(GOOD + [("etc/motd", "file", FORGED)]), mtime=0)
                forged = forged[: len(blob)].ljust(len(blob), b"\0")
            assert forged != blob and len(forged) == len(blob)
            ctx["override"] = {d: forged}

        evil = layout(os.path.join(work, f"evil-{compress}"), [make_tar(ENTRIES)], compress=compress, mutate=forge)
        refused(lazy_mount(evil), evil, "digest mismatch", f"{compress}: a forged blob under a cached digest")

        # The verified file itself rewritten in place after its index was cached, then put back.
        blob = layer_blob(good)
        with open(blob, "rb") as f:
            original = f.read()
        with open(layer_blob(evil), "rb") as f:
            forged = f.read()
        with open(blob, "r+b") as f:
            f.write(forged)
        refused(lazy_mount(good), good, "digest mismatch", f"{compress}: the cached blob rewritten in place")
        with open(blob, "r+b") as f:
            f.write(original)
        r = lazy_mount(good)
        check(r.returncode == 0 and read_then_unmount(mnt, "etc/motd") == GENUINE, f"{compress}: the blob put back: {r.stderr!r}")

    # A docker-archive names no blob digest: its layers are keyed and verified by diff_id.
    store = os.path.join(work, "store")
    strata(store, "load", "-q", "-i", good, "--tag", "t/good:1")
    archive = os.path.join(work, "good.tar")
    strata(store, "save", "-o", archive, "t/good:1")
    r = lazy_mount(archive)
    check(r.returncode == 0 and read_then_unmount(mnt, "etc/motd") == GENUINE, f"docker-archive: {r.stderr!r}")
    with open(archive, "rb") as f:
        data = f.read()
    check(data.count(GENUINE) == 1, "docker-archive: the file's bytes are not in the archive once")
    evil_archive = os.path.join(work, "evil.tar")
    with open(evil_archive, "wb") as f:
        f.write(data.replace(GENUINE, FORGED))
    refused(lazy_mount(evil_archive), evil_archive, "diff_id mismatch", "docker-archive: forged layer bytes")

    # strata-fs: a descriptor names the identity strata verified; another file is refused.
    blob = layer_blob(good)
    index = os.path.join(cache, "lazy/index", "sha256-" + os.path.basename(blob))
    st = os.stat(blob)
    ident = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def descriptor(ident_fields):
        p = os.path.join(work, "layer.desc")
        with open(p, "w") as f:
            f.write(f"strata-lazy-layer 1\nindex={index}\nblob={blob}\noffset=0\n"
                    f"verified={':'.join(str(x) for x in ident_fields)}\n")
        return p

    r = run(STRATA_FS, "-o", f"lowerdir={descriptor(ident)}", mnt, check=False, timeout=60)
    check(r.returncode == 0 and read_then_unmount(mnt, "etc/motd") == GENUINE, f"strata-fs, the verified file: {r.stderr!r}")
    changed = ident[:4] + [ident[4] + 1]
    r = run(STRATA_FS, "-o", f"lowerdir={descriptor(changed)}", mnt, check=False, timeout=60)
    check(r.returncode != 0 and "changed or replaced since its blob was verified" in r.stderr,
          f"strata-fs, another file: exit {r.returncode}, stderr {r.stderr!r}")
    if os.path.ismount(mnt):
        failures.append("strata-fs mounted a blob file that is not the verified one")
        subprocess.run(["fusermount3", "-u", mnt])
finally:
    for m in [mnt]:
        if os.path.ismount(m):
            subprocess.run(["fusermount3", "-u", m])
    shutil.rmtree(work, ignore_errors=True)

conclude(failures, "lazy cache trust")
