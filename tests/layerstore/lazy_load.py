#!/usr/bin/python3
"""`strata load --lazy` and `strata unpack`: the store keeps each layer as the blob exactly as
received plus its index (overlay2/<cache-id>/{lazy,lazy-blob,lazy-index,lazy-digest}, no
diff/, layerdb as for any layer with Docker's size), for gzip layers (umoci), zstd layers
(skopeo) and plain layers (a docker-archive, also read from stdin). What strata-fs shows from
those files, and `strata mount` of the lazy image, equal `strata mount` of the same image
loaded normally; `images` marks the image
lazy; `verify` passes and finds a flipped byte in a lazy-blob; `prune` keeps lazy layers and
their l/ links; `rmi` removes their files; a blob that fails verification leaves the store as
it was. `unpack` then leaves exactly the diff/ dirs and tar-split a normal load leaves (each
layer's tree equal, verify passes, the lazy files gone)."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo", "fusermount3")
FS = os.environ.get("STRATA_FS", "")
if not os.path.exists("/dev/fuse") or not os.path.exists(FS):
    skip("no /dev/fuse or strata-fs not built")

work = workdir()
mounts = []
LAZY_FILES = {"lazy", "lazy-blob", "lazy-index", "lazy-digest"}


def layer_records(root, image):
    """[(chain-id hex, cache-id, overlay2 dir)] bottom first."""
    info = json.loads(strata(root, "inspect", image).stdout)[0]
    out = []
    for layer in info["Layers"]:
        chain = layer["chain_id"].split(":")[1]
        cache = layer["cache_id"]
        out.append((chain, cache, os.path.join(root, "overlay2", cache)))
    return out


def mount_lazy_layers(root, image, name):
    """The image's lazy descriptors as strata-fs lowers (top-most first), read-only."""
    mnt = os.path.join(work, name)
    os.makedirs(mnt)
    lowers = [os.path.join(d, "lazy") for _, _, d in reversed(layer_records(root, image))]
    run(FS, "-o", "lowerdir=" + ":".join(lowers), mnt, timeout=60)
    mounts.append(mnt)
    return mnt


def umount(mnt):
    run("fusermount3", "-u", mnt)
    mounts.remove(mnt)


def check_lazy_store(root, image, media_suffix):
    """Every layer of `image` is lazy exactly as the contract says."""
    for chain, cache, d in layer_records(root, image):
        names = set(os.listdir(d))
        assert LAZY_FILES <= names and "diff" not in names, f"{d}: {sorted(names)}"
        with open(os.path.join(d, "lazy-blob"), "rb") as f:
            digest = "sha256:" + hashlib.sha256(f.read()).hexdigest()
        got_digest, media = open(os.path.join(d, "lazy-digest")).read().split()
        assert got_digest == digest, (got_digest, digest)
        assert media.endswith(media_suffix), media
        desc = open(os.path.join(d, "lazy")).read()
        assert desc == "strata-lazy-layer 1\nindex=lazy-index\nblob=lazy-blob\noffset=0\n", desc
        link = open(os.path.join(d, "link")).read()
        assert os.readlink(os.path.join(root, "overlay2", "l", link)) == f"../{cache}/diff"
        entry = os.path.join(root, "image", "overlay2", "layerdb", "sha256", chain)
        assert not os.path.exists(os.path.join(entry, "tar-split.json.gz")), "a lazy layer has a tar-split"


def make_plain_tar(work):
    src = os.path.join(work, "plain-src")
    os.makedirs(os.path.join(src, "etc"))
    with open(os.path.join(src, "etc", "other"), "w") as f:
        f.write("other\n")
    run("tar", "-C", src, "-cf", src + ".tar", "etc")
    with open(src + ".tar", "rb") as f:
        return f.read()


def layer_sizes(root, image):
    out = []
    for chain, _, _ in layer_records(root, image):
        with open(os.path.join(root, "image", "overlay2", "layerdb", "sha256", chain, "size")) as f:
            out.append(f.read())
    return out


try:
    layout = os.path.join(work, "img")
    build_umoci_image(layout)
    zstd_layout = os.path.join(work, "img-zstd")
    run("skopeo", "copy", "--dest-compress-format", "zstd", f"oci:{layout}:v1", f"oci:{zstd_layout}:v1")
    archive = os.path.join(work, "img.tar")
    run("skopeo", "copy", f"oci:{layout}:v1", f"docker-archive:{archive}:lazy/test:v1")

    # The reference: loaded normally, mounted by `strata mount`.
    ref_root = os.path.join(work, "ref")
    strata(ref_root, "load", "-q", "-i", layout, "--tag", "lazy/test:v1")
    ref_mnt = os.path.join(work, "ref-mnt")
    os.makedirs(ref_mnt)
    strata(ref_root, "mount", "lazy/test:v1", ref_mnt)
    mounts.append(ref_mnt)
    ref = listing(ref_mnt)
    umount(ref_mnt)
    ref_sizes = layer_sizes(ref_root, "lazy/test:v1")
    ref_layers = [listing(os.path.join(d, "diff")) for _, _, d in layer_records(ref_root, "lazy/test:v1")]

    for name, src, suffix in (("gzip", layout, "+gzip"), ("zstd", zstd_layout, "+zstd"),
                              ("docker-archive", archive, ".tar"), ("stdin", "-", ".tar")):
        root = os.path.join(work, "lazy-" + name)
        if src == "-":
            with open(archive, "rb") as f:
                r = run(STRATA, "--root", root, "load", "--lazy", stdin=f)
        else:
            r = strata(root, "load", "--lazy", "-i", src, "--tag", "lazy/test:v1")
        assert "kept lazy" in r.stderr, r.stderr
        check_lazy_store(root, "lazy/test:v1", suffix)
        assert layer_sizes(root, "lazy/test:v1") == ref_sizes, (layer_sizes(root, "lazy/test:v1"), ref_sizes)
        rows = json.loads(strata(root, "images", "--format", "json").stdout)
        assert [(x["LazyLayers"], x["Layers"]) for x in rows] == [(4, 4)], rows
        r = strata(root, "images")
        assert "LAZY" in r.stdout and "4/4 layers" in r.stdout and "strata unpack" in r.stderr, r.stdout + r.stderr
        assert "OK: 1 image(s), 4 layer(s)" in strata(root, "verify").stdout
        mnt = mount_lazy_layers(root, "lazy/test:v1", "mnt-" + name)
        d = diff_listings(ref, listing(mnt))
        assert not d, f"{name}: the lazy layers show another tree than load + mount:\n" + "\n".join(d[:30])
        umount(mnt)
        mnt = os.path.join(work, "strata-mnt-" + name)
        os.makedirs(mnt)
        strata(root, "mount", "lazy/test:v1", mnt)
        mounts.append(mnt)
        d = diff_listings(ref, listing(mnt))
        assert not d, f"{name}: strata mount of the lazy image differs from load + mount:\n" + "\n".join(d[:30])
        umount(mnt)
        print(f"{name}: lazy store as the contract says, same tree as load + mount, verify ok")

    root = os.path.join(work, "lazy-gzip")
    # prune keeps lazy layers and their links (which dangle until unpack).
    strata(root, "prune")
    check_lazy_store(root, "lazy/test:v1", "+gzip")
    assert "OK" in strata(root, "verify").stdout
    # A second load --lazy of the same image reuses every layer as it is.
    r = strata(root, "load", "--lazy", "-i", layout, "--tag", "lazy/again:v1")
    assert r.stderr.count("already present (lazy)") == 4, r.stderr

    # A blob that fails verification: refused with one line, the store unchanged.
    bad = os.path.join(work, "img-bad")
    shutil.copytree(layout, bad)
    corrupt_biggest_blob(bad)
    empty_root = os.path.join(work, "lazy-bad")
    other = os.path.join(work, "other")
    one_layer_layout(other, make_plain_tar(work))
    strata(empty_root, "load", "--lazy", "-q", "-i", other, "--tag", "other:1")  # a store, none of bad's layers
    before = tree_hash(empty_root)
    r = strata(empty_root, "load", "--lazy", "-q", "-i", bad, check=False)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith(f"strata: load {bad}: "), r.stderr
    assert "nothing was imported" in lines[0], lines
    assert tree_hash(empty_root) == before, "a refused load --lazy changed the store"

    # verify finds a flipped byte in a lazy-blob: gzip (the CRC fails first) and plain.
    for src, want in ((layout, "lazy-blob: corrupt gzip data"), (archive, "lazy-blob hashes to")):
        flip_root = os.path.join(work, "lazy-flip")
        strata(flip_root, "load", "--lazy", "-q", "-i", src, "--tag", "lazy/test:v1")
        flip_recs = layer_records(flip_root, "lazy/test:v1")
        blob = os.path.join(flip_recs[0][2], "lazy-blob")
        with open(blob, "r+b") as f:
            f.seek(os.path.getsize(blob) // 2)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x01]))
        r = strata(flip_root, "verify", check=False)
        assert r.returncode == 1 and f"layer {flip_recs[0][0][:12]}: {want}" in r.stdout, r.stdout + r.stderr
        shutil.rmtree(flip_root)
    print("prune, reuse, a corrupted blob and a flipped byte: ok")

    # unpack: the diff/ dirs and tar-split a normal load leaves, lazy files gone.
    zroot = os.path.join(work, "lazy-zstd")
    # What a crash during an unpack leaves: a half-extracted staging dir (removed, the layer
    # unpacked from scratch).
    stale = os.path.join(root, "overlay2", ".staging", "unpack-" + layer_records(root, "lazy/test:v1")[0][1])
    os.makedirs(os.path.join(stale, "diff", "bin"))
    for unpack_root in (root, zroot):
        r = strata(unpack_root, "unpack", "lazy/test:v1")
        assert "4 layer(s) unpacked" in r.stderr, r.stderr
        for i, (chain, cache, d) in enumerate(layer_records(unpack_root, "lazy/test:v1")):
            names = set(os.listdir(d))
            assert "diff" in names and not names & LAZY_FILES, f"{d}: {sorted(names)}"
            dl = diff_listings(ref_layers[i], listing(os.path.join(d, "diff")))
            assert not dl, f"layer {i + 1} unpacked differs from a normal load:\n" + "\n".join(dl[:30])
            entry = os.path.join(unpack_root, "image", "overlay2", "layerdb", "sha256", chain)
            assert os.path.exists(os.path.join(entry, "tar-split.json.gz"))
            link = open(os.path.join(d, "link")).read()
            assert os.path.isdir(os.path.join(unpack_root, "overlay2", "l", link))
        assert layer_sizes(unpack_root, "lazy/test:v1") == ref_sizes
        assert "OK" in strata(unpack_root, "verify").stdout
        rows = json.loads(strata(unpack_root, "images", "--format", "json").stdout)
        assert all(x["LazyLayers"] == 0 for x in rows), rows
        assert "LAZY" not in strata(unpack_root, "images").stdout
        mnt = os.path.join(work, "unpacked-mnt-" + os.path.basename(unpack_root))
        os.makedirs(mnt)
        strata(unpack_root, "mount", "lazy/test:v1", mnt)
        mounts.append(mnt)
        d = diff_listings(ref, listing(mnt))
        assert not d, "the unpacked image differs from load + mount:\n" + "\n".join(d[:30])
        umount(mnt)
        # Once more: nothing left to do.
        r = strata(unpack_root, "unpack", "lazy/test:v1")
        assert "0 layer(s) unpacked" in r.stderr and "4 already unpacked" in r.stderr, r.stderr
    assert not os.path.exists(stale), "unpack left the stale staging dir"
    # A crash after diff/ was renamed in, before the lazy files were removed: the layer is
    # unpacked (verify checks its diff/), and the next unpack removes the leftovers.
    top = layer_records(root, "lazy/test:v1")[-1][2]
    for f in LAZY_FILES:
        with open(os.path.join(top, f), "w") as out:
            out.write("left over\n")
    assert "OK" in strata(root, "verify").stdout
    r = strata(root, "unpack", "lazy/test:v1")
    assert "4 already unpacked" in r.stderr and not set(os.listdir(top)) & LAZY_FILES, os.listdir(top)
    print("unpack: same layers as load, verify ok, crash leftovers cleaned")

    # rmi removes the lazy layers' files and links.
    sroot = os.path.join(work, "lazy-stdin")
    cache_dirs = [d for _, _, d in layer_records(sroot, "lazy/test:v1")]
    strata(sroot, "rmi", "lazy/test:v1")
    left = [d for d in cache_dirs if os.path.exists(d)]
    assert not left, f"rmi left {left}"
    assert os.listdir(os.path.join(sroot, "overlay2", "l")) == []
    print("PASS")
finally:
    for m in mounts:
        subprocess.run(["fusermount3", "-u", m])
    shutil.rmtree(work, ignore_errors=True)
