#!/usr/bin/python3
"""strata push of images loaded with `load --lazy` to Debian's docker-registry on loopback:
each layer goes up as the blob it was loaded as (the registry stores the layout's digests, no
recompression), with its media type: gzip layers in a Docker schema-2 manifest, zstd layers in
an OCI manifest (schema 2 has no zstd type); the config is the local image's, and a plain pull
of what was pushed gives the same image id and the rootfs `umoci unpack` gives; an image pulled
lazily and pushed to another repository of the registry is mounted there with the same layer
descriptors (zstd stays zstd). A lazy blob
changed on disk after loading is not sent: the push fails with one line naming `strata verify`."""
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403


def layout_layers(layout):
    """(digest, mediaType) of each layer of the layout's only image."""
    index = json.load(open(os.path.join(layout, "index.json")))
    with open(os.path.join(layout, "blobs/sha256", index["manifests"][0]["digest"][7:]), "rb") as f:
        return [(l["digest"], l["mediaType"]) for l in json.loads(f.read())["layers"]]


need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
reg = None
try:
    reg = Registry(work)
    layout, ref = umoci_image_with_reference(work)
    zlayout = os.path.join(work, "img-zstd")
    run("skopeo", "copy", "-q", "--dest-compress-format", "zstd", f"oci:{layout}:v1", f"oci:{zlayout}:v1")

    for name, src, want_type in ((
            "gzip", layout, "application/vnd.docker.distribution.manifest.v2+json"),
            ("zstd", zlayout, "application/vnd.oci.image.manifest.v1+json")):
        root = os.path.join(work, "store-" + name)
        strata(root, "load", "-q", "--lazy", "-i", src, "--tag", "app:1")
        local = inspect(root, "app:1")
        dest = f"{reg.addr}/team/{name}:1"
        strata(root, "push", "app:1", dest)
        manifest = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + dest).stdout)
        assert manifest["mediaType"] == want_type, f"{name}: pushed a {manifest['mediaType']}"
        assert manifest["config"]["digest"] == local["Id"], f"{name}: config {manifest['config']} != {local['Id']}"
        pushed = [l["digest"] for l in manifest["layers"]]
        loaded = [d for d, _ in layout_layers(src)]
        assert pushed == loaded, f"{name}: pushed blobs {pushed} != the layout's {loaded}"
        for l, (_, t) in zip(manifest["layers"], layout_layers(src)):
            want = t if name == "zstd" else "application/vnd.docker.image.rootfs.diff.tar.gzip"
            assert l["mediaType"] == want, f"{name}: layer type {l['mediaType']}, want {want}"
        back = os.path.join(work, "back-" + name)
        strata(back, "pull", "-q", "--tls-verify=false", dest)
        assert inspect(back, dest)["Id"] == local["Id"], f"{name}: pulled back as another image"
        d = diff_listings(ref, rootfs_listing(back, dest, os.path.join(work, "m-" + name)))
        assert not d, f"{name}: pushed image differs from umoci unpack:\n" + "\n".join(d[:20])
        print(f"{name}: pushed the loaded blobs: ok")

    # pull --lazy of the zstd image, pushed to another repository of the same registry: each
    # blob is mounted from where it was pulled (nothing uploaded), still named zstd.
    root = os.path.join(work, "store-pulled")
    strata(root, "pull", "-q", "--lazy", f"{reg.addr}/team/zstd:1")
    out = strata(root, "push", f"{reg.addr}/team/zstd:1", f"{reg.addr}/copy/zstd:1")
    assert out.stderr.count("mounted from team/zstd") == 4, out.stderr
    first = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.addr}/team/zstd:1").stdout)
    copy = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.addr}/copy/zstd:1").stdout)
    assert copy["mediaType"] == first["mediaType"] and copy["layers"] == first["layers"], f"{copy} != {first}"
    print("zstd pulled lazily, pushed by mounting: ok")

    # A lazy blob changed after loading (a store that never pushed: it has to send the blob):
    # refused, nothing pushed under that tag.
    root = os.path.join(work, "store-bad")
    strata(root, "load", "-q", "--lazy", "-i", layout, "--tag", "app:1")
    lay = max(inspect(root, "app:1")["Layers"], key=lambda x: os.path.getsize(
        os.path.join(root, "overlay2", x["cache_id"], "lazy-blob")))
    blob = os.path.join(root, "overlay2", lay["cache_id"], "lazy-blob")
    with open(blob, "r+b") as f:
        f.seek(os.path.getsize(blob) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x20]))
    r = strata(root, "push", "-q", "app:1", f"{reg.addr}/team/bad:1", check=False)
    one_line_error(r, "strata verify")
    r = run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.addr}/team/bad:1", check=False)
    assert r.returncode != 0, "a push with a changed lazy blob left a manifest"
    print("PASS")
finally:
    teardown(work, reg)
