#!/usr/bin/python3
"""strata pull --lazy from Debian's docker-registry on loopback, gzip (OCI and Docker schema-2
manifests) and zstd layers: each layer is kept as the blob the registry sent (its sha256 the
manifest's digest, lazy-digest naming the manifest's media type) with its index, no diff/;
distribution/ is recorded as for a normal pull; verify passes; a second pull --lazy downloads
nothing; `unpack` then gives the rootfs `umoci unpack` gives. A blob the registry serves
corrupted is refused with one line and leaves the store as it was."""
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
reg = None
try:
    reg = Registry(work)
    layout, ref = umoci_image_with_reference(work)
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:oci")
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:docker", "--format", "v2s2")
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:zstd", "--dest-compress-format", "zstd")

    for tag in ("oci", "docker", "zstd"):
        root = os.path.join(work, "store-" + tag)
        name = f"{reg.addr}/team/app:{tag}"
        manifest = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + name).stdout)
        out = strata(root, "pull", "--lazy", name)
        assert "4 kept lazy" in out.stderr, out.stderr
        info = inspect(root, name)
        for lay, desc in zip(info["Layers"], manifest["layers"]):
            d = os.path.join(root, "overlay2", lay["cache_id"])
            names = set(os.listdir(d))
            assert {"lazy", "lazy-blob", "lazy-index", "lazy-digest"} <= names and "diff" not in names, names
            with open(os.path.join(d, "lazy-blob"), "rb") as f:
                assert sha(f.read()) == desc["digest"], desc
            assert open(os.path.join(d, "lazy-digest")).read().split() == [desc["digest"], desc["mediaType"]]
            dd = os.path.join(root, "image/overlay2/distribution/diffid-by-digest/sha256", desc["digest"][7:])
            assert open(dd).read() == lay["diff_id"]
        assert "OK" in strata(root, "verify").stdout
        again = strata(root, "pull", "--lazy", name)
        assert "0 layer(s) downloaded" in again.stderr and "downloading" not in again.stderr, again.stderr
        strata(root, "unpack", name)
        d = diff_listings(ref, rootfs_listing(root, name, os.path.join(work, "m-" + tag)))
        assert not d, f"{tag}: unpacked differs from umoci unpack:\n" + "\n".join(d[:20])
        assert "OK" in strata(root, "verify").stdout
        print(f"{tag}: pulled lazy, verified, unpacked: ok")

    # The registry's copy of the biggest layer corrupted: refused, the store unchanged.
    blobs = os.path.join(reg.storage, "docker/registry/v2/blobs/sha256")
    oci = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false",
                         f"docker://{reg.addr}/team/app:oci").stdout)
    big = max(oci["layers"], key=lambda x: x["size"])["digest"][7:]
    data = os.path.join(blobs, big[:2], big, "data")
    with open(data, "r+b") as f:
        f.seek(os.path.getsize(data) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x20]))
    root = os.path.join(work, "store-bad")
    src = os.path.join(work, "other-src")
    os.makedirs(os.path.join(src, "etc"))
    with open(os.path.join(src, "etc", "other"), "w") as f:
        f.write("other\n")
    run("tar", "-C", src, "-cf", src + ".tar", "etc")
    other = os.path.join(work, "other")
    one_layer_layout(other, open(src + ".tar", "rb").read())
    strata(root, "load", "-q", "--lazy", "-i", other, "--tag", "other:1")  # a store, none of app's layers
    before = tree_hash(root)
    r = strata(root, "pull", "-q", "--lazy", f"{reg.addr}/team/app:oci", check=False)
    one_line_error(r, "team/app:oci", "nothing was imported")
    assert tree_hash(root) == before, "a refused pull --lazy changed the store"
    print("PASS")
finally:
    teardown(work, reg)
