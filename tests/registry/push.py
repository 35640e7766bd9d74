#!/usr/bin/python3
"""strata push to Debian's docker-registry on loopback: an image loaded from an OCI layout is
pushed (every layer rebuilt from tar-split and gzipped on the fly), then `skopeo inspect`
shows the local config and diff_ids and `skopeo copy` + `umoci unpack` give the same rootfs.
Pushing again skips every blob (HEAD); pushing to another repository mounts them."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
reg = None
try:
    reg = Registry(work)
    layout, ref = umoci_image_with_reference(work)
    root = os.path.join(work, "store")
    strata(root, "load", "-q", "-i", layout, "--tag", "local/app:1")
    local = inspect(root, "local/app:1")

    dest = f"{reg.addr}/pushed/app:1"
    out = strata(root, "push", "local/app:1", dest)
    assert "4 layer(s) uploaded" in out.stderr, out.stderr
    info = json.loads(run("skopeo", "inspect", "--tls-verify=false", "docker://" + dest).stdout)
    assert info["Digest"] in out.stdout, (info["Digest"], out.stdout)
    cfg = json.loads(run("skopeo", "inspect", "--config", "--raw", "--tls-verify=false", "docker://" + dest).stdout)
    assert cfg["rootfs"]["diff_ids"] == [l["diff_id"] for l in local["Layers"]], cfg["rootfs"]
    raw_cfg = run("skopeo", "inspect", "--config", "--raw", "--tls-verify=false", "docker://" + dest).stdout
    assert sha(raw_cfg.encode()) == local["Id"], "the pushed config is not the local one byte for byte"
    back = os.path.join(work, "back")
    run("skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + dest, f"oci:{back}:1")
    run("umoci", "unpack", "--image", f"{back}:1", os.path.join(work, "back-rootfs"))
    d = diff_listings(ref, listing(os.path.join(work, "back-rootfs", "rootfs")))
    assert not d, "\n".join(d[:20])
    # The pushed manifest digest is recorded like a pulled one.
    assert f"{reg.addr}/pushed/app@{info['Digest']}" in inspect(root, "local/app:1")["RepoDigests"]

    # Again: the registry has every blob (HEAD), nothing is uploaded.
    out = strata(root, "push", "local/app:1", f"{reg.addr}/pushed/app:2")
    assert "0 layer(s) uploaded" in out.stderr and "4 already there" in out.stderr, out.stderr
    # Another repository on the same registry: cross-repository mounts.
    out = strata(root, "push", "local/app:1", f"{reg.addr}/other/app:1")
    assert "0 layer(s) uploaded" in out.stderr and "4 mounted" in out.stderr, out.stderr
    skopeo_info = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{reg.addr}/other/app:1").stdout)
    assert skopeo_info["Digest"] == info["Digest"]

    # A fresh store pulls what was pushed: same image id.
    root2 = os.path.join(work, "store2")
    strata(root2, "pull", "-q", dest)
    assert inspect(root2, dest)["Id"] == local["Id"]
    d = diff_listings(ref, rootfs_listing(root2, dest, os.path.join(work, "m2")))
    assert not d, "\n".join(d[:20])

    r = strata(root, "push", "-q", "no/such:image", f"{reg.addr}/x/y:1", check=False)
    one_line_error(r, "push", "no such image")
    print("PASS")
finally:
    if reg:
        reg.stop()
    shutil.rmtree(work, ignore_errors=True)
