"""A two-layer gzip Debian 12 image for the lazy distro test (python3 stdlib only): the cached
minbase rootfs (distro_lib) as the bottom layer, and on it the layer `strata commit` makes of a
container that ran `apt-get update && apt-get install procps less` (apt's lists kept, as most
Dockerfiles leave them). Saved as an OCI layout whose blobs are gzip (`gzip -n`), the form
registries serve; cached under distro_lib's cache dir by the rootfs digest and this recipe,
rebuilt when a file of it is missing or does not match its digest."""
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

from distro_lib import (APT_TIMEOUT, CACHE_DIR, SUITE, _sha256_file, apt_mirror, debian_rootfs, docker_archive, log,  # noqa: E402
                        need_mirror, run)

# Bump when the second layer's recipe changes: the cache key changes with it.
LAYER2_SCRIPT = r'''
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends procps less
'''
BUILD_TAG = "strata-test/debian-procps:12"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _blob(layout, digest):
    return os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])


def _write_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return f"sha256:{digest}", len(data)


def _gzip_layers(layout):
    """Replaces each plain layer blob of the layout's one manifest by `gzip -n` of it."""
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    (desc,) = index["manifests"]
    with open(_blob(layout, desc["digest"])) as f:
        manifest = json.load(f)
    for layer in manifest["layers"]:
        if layer["mediaType"] != OCI_LAYER:
            raise AssertionError(f"save wrote a {layer['mediaType']} layer, expected plain tars")
        plain = _blob(layout, layer["digest"])
        packed = plain + ".gz"
        with open(plain, "rb") as src, open(packed, "wb") as dst:
            subprocess.run(["gzip", "-n", "-6", "-c"], stdin=src, stdout=dst, check=True)
        digest = _sha256_file(packed)
        os.rename(packed, os.path.join(layout, "blobs", "sha256", digest))
        os.unlink(plain)
        layer.update(mediaType=OCI_LAYER_GZIP, digest=f"sha256:{digest}",
                     size=os.path.getsize(os.path.join(layout, "blobs", "sha256", digest)))
    os.unlink(_blob(layout, desc["digest"]))
    desc["digest"], desc["size"] = _write_blob(layout, json.dumps(manifest, separators=(",", ":")).encode())
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)


def _layout_ok(layout, meta):
    for name, digest in meta["blobs"].items():
        path = os.path.join(layout, "blobs", "sha256", name)
        if not os.path.exists(path) or _sha256_file(path) != digest:
            return False
    return True


def _build(strata, work, rootfs, rootfs_digest, out, tag):
    archive = os.path.join(work, "debian-base.tar")
    docker_archive(rootfs, rootfs_digest, archive, tag + "-base")
    store = os.path.join(work, "build-store")

    def s(*args, timeout=180):
        return run(strata, "--root", store, *args, timeout=timeout)
    s("load", "-q", "-i", archive)
    name = "lazy-image-build"
    try:
        s("run", "--name", name, tag + "-base", "bash", "-c", LAYER2_SCRIPT, timeout=APT_TIMEOUT)
        s("commit", name, tag)
        s("save", "-q", "--format", "oci-dir", "-o", out, tag)
    finally:
        run(strata, "--root", store, "rm", "-f", name, check=False, timeout=120)
    _gzip_layers(out)
    shutil.rmtree(store, ignore_errors=True)
    os.unlink(archive)


def debian_gzip_layout(strata, work):
    """Path of the cached two-layer gzip OCI layout (load it with --tag: its index.json names
    BUILD_TAG only as containerd's annotation), built with `strata` when missing. Skips (77)
    when the mirror does not answer."""
    mirror = apt_mirror()
    need_mirror(mirror)
    rootfs, rootfs_digest = debian_rootfs(mirror)
    key = hashlib.sha256(json.dumps([rootfs_digest, LAYER2_SCRIPT, BUILD_TAG, "gzip -n -6"]).encode()).hexdigest()[:12]
    layout = os.path.join(CACHE_DIR, f"debian-{SUITE}-2layer-gzip-{key}")
    meta_path = layout + ".json"
    with open(os.path.join(CACHE_DIR, f"debian-{SUITE}-2layer.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(meta_path) as f:
                if _layout_ok(layout, json.load(f)):
                    log(f"image: cached {layout}")
                    return layout
            log(f"image: {layout} does not match {meta_path}: rebuilding")
        except (OSError, ValueError, KeyError):
            pass
        for n in os.listdir(CACHE_DIR):  # older keys and partial builds
            if n.startswith(f"debian-{SUITE}-2layer-gzip-"):
                p = os.path.join(CACHE_DIR, n)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        log("image: load the rootfs, apt-get install procps less, commit, save, gzip (about a minute)")
        t = time.monotonic()
        build = tempfile.mkdtemp(prefix="strata-lazy-image-", dir=work)
        partial = os.path.join(CACHE_DIR, os.path.basename(layout) + ".partial")
        _build(strata, build, rootfs, rootfs_digest, partial, BUILD_TAG)
        shutil.rmtree(build, ignore_errors=True)
        blobs = {n: _sha256_file(os.path.join(partial, "blobs", "sha256", n))
                 for n in os.listdir(os.path.join(partial, "blobs", "sha256"))}
        os.rename(partial, layout)
        with open(meta_path + ".tmp", "w") as f:
            json.dump({"blobs": blobs, "built": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
        os.rename(meta_path + ".tmp", meta_path)
        log(f"image: built in {time.monotonic() - t:.0f} s")
        return layout


if __name__ == "__main__":  # for bench/lazy_distro.sh and by hand: print the layout's path
    print(debian_gzip_layout(os.environ.get("STRATA_BIN", "strata"), tempfile.gettempdir()))
