#!/usr/bin/python3
"""Credentials never follow a redirect to another host: a front on 127.0.0.1 demands Basic
auth for the registry and answers blob GETs with a 307 to blob storage on another port
(another host:port). The pull succeeds; the blob host never sees an Authorization header,
while every registry request after the challenge carried one."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403
from http_front import BlobHost, RegistryFront  # noqa: E402

need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
reg = front = blobs = None
try:
    reg = Registry(work)
    layout, ref = umoci_image_with_reference(work)
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:1")
    blobs = BlobHost(reg.addr)
    front = RegistryFront(reg.addr, creds=("alice", "s3cret"), blob_host=blobs)
    name = f"{front.addr}/team/app:1"

    root = os.path.join(work, "store")
    r = strata(root, "pull", "-q", name, check=False)
    one_line_error(r, "HTTP 401")
    strata(root, "pull", "--creds", "alice:s3cret", name)
    # The config and every layer came from the blob host, none with credentials.
    n_blobs = 1 + len(inspect(root, name)["Layers"])
    assert len(blobs.auth_seen) == n_blobs, (blobs.auth_seen, n_blobs)
    assert blobs.auth_seen == [None] * n_blobs, blobs.auth_seen
    redirected = [p for m, p, auth in front.log if "/blobs/" in p]
    assert len(redirected) == n_blobs and all(auth for m, p, auth in front.log if "/blobs/" in p), front.log
    d = diff_listings(ref, rootfs_listing(root, name, os.path.join(work, "m")))
    assert not d, "\n".join(d[:20])
    assert "OK" in strata(root, "verify").stdout
    print("PASS")
finally:
    teardown(work, reg, front, blobs)
