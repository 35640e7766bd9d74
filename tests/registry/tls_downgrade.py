#!/usr/bin/python3
"""A registry reached over HTTPS keeps its credentials off plain HTTP, even on the same
host:port: a front on 127.0.0.1 serves TLS (a test CA, --cert-dir) and plain HTTP on one
port, asks for Basic auth, and answers blob GETs with a 307 to http://<same host:port>/...
The pull works (the blobs come over plain HTTP, where they are verified by digest); none of
the plain requests carried an Authorization header, every TLS one after the challenge did."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403
from http_front import RegistryFront, tls_context  # noqa: E402

need_root()
need_tools("umoci", "skopeo", "docker-registry", "openssl")
work = workdir()
reg = front = None
try:
    certs, crt, key = make_test_ca(work)

    reg = Registry(work)
    layout, ref = umoci_image_with_reference(work)
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:1")
    front = RegistryFront(reg.addr, creds=("alice", "s3cret"), tls=tls_context(crt, key))
    front.blob_redirect = f"http://{front.addr}"

    root = os.path.join(work, "store")
    name = f"{front.addr}/team/app:1"
    strata(root, "pull", "-q", "--cert-dir", certs, "--creds", "alice:s3cret", name)
    plain = [s for s in front.seen if s[0] == "http"]
    n_blobs = 1 + len(inspect(root, name)["Layers"])
    assert len(plain) == n_blobs, f"want {n_blobs} plain blob GETs: {front.seen}"
    assert all(a is None for _, _, _, a in plain), f"credentials went over plain HTTP: {plain}"
    tls = [s for s in front.seen if s[0] == "https"]
    assert tls[0][3] is None and all(a for _, _, _, a in tls[1:]), tls
    d = diff_listings(ref, rootfs_listing(root, name, os.path.join(work, "m")))
    assert not d, "\n".join(d[:20])
    print("PASS")
finally:
    teardown(work, reg, front)
