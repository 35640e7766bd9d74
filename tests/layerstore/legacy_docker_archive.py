#!/usr/bin/python3
"""legacy docker-archive: the `docker save` form of Docker <= 24 (`<v1id>/layer.tar` per layer,
`<id>.json` configs, `manifest.json` + `repositories`), holding two images that share layers.
Made here from a umoci-built image (skopeo only writes the newer form); `strata load` must load
both images, reuse the shared layers, and show the same tree as `umoci unpack`."""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci")
work = workdir()


def blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":")[1]), "rb") as f:
        return f.read()


def add(tar, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 1500000000
    tar.addfile(ti, io.BytesIO(data))


layout, ref = umoci_image_with_reference(work)

index = json.loads(blob(layout, "sha256:" + json.load(open(os.path.join(layout, "index.json")))["manifests"][0]["digest"].split(":")[1]))
config = json.loads(blob(layout, index["config"]["digest"]))
layer_tars = [gzip.decompress(blob(layout, d["digest"])) for d in index["layers"]]
assert [("sha256:" + hashlib.sha256(t).hexdigest()) for t in layer_tars] == config["rootfs"]["diff_ids"]

archive = os.path.join(work, "legacy.tar")
with tarfile.open(archive, "w", format=tarfile.USTAR_FORMAT) as tar:
    v1ids = []
    for i, lt in enumerate(layer_tars):
        v1id = hashlib.sha256(f"v1-{i}".encode()).hexdigest()
        v1ids.append(v1id)
        add(tar, f"{v1id}/VERSION", b"1.0")
        add(tar, f"{v1id}/json", json.dumps({"id": v1id}).encode())
        add(tar, f"{v1id}/layer.tar", lt)
    manifest = []
    # Image "full" has every layer; image "base" only the first ones (its own config).
    for tag, n in (("legacy/full:1", len(layer_tars)), ("legacy/base:1", len(layer_tars) - 1)):
        cfg = dict(config)
        cfg["rootfs"] = {"type": "layers", "diff_ids": config["rootfs"]["diff_ids"][:n]}
        cfg["history"] = [{"created_by": f"layer {i}"} for i in range(n)]
        raw = json.dumps(cfg).encode()
        name = hashlib.sha256(raw).hexdigest() + ".json"
        add(tar, name, raw)
        manifest.append({"Config": name, "RepoTags": [tag], "Layers": [f"{v}/layer.tar" for v in v1ids[:n]]})
    add(tar, "manifest.json", json.dumps(manifest).encode())
    add(tar, "repositories", json.dumps({"legacy/full": {"1": v1ids[-1]}}).encode())

root = os.path.join(work, "store")
out = strata(root, "load", "-i", archive).stdout
assert "Loaded image: legacy/full:1" in out and "Loaded image: legacy/base:1" in out, out
images = strata(root, "images").stdout
assert "legacy/full" in images and "legacy/base" in images, images
full = image_layers(root, "legacy/full:1")
base = image_layers(root, "legacy/base:1")
assert full[:-1] == base, "the shared layers must be stored once"  # base layer first
with OverlayMount(full, os.path.join(work, "m")) as mnt:
    d = diff_listings(ref, listing(mnt))
assert not d, "\n".join(d[:20])
assert "OK" in strata(root, "verify").stdout
print("PASS")
