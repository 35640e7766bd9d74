#!/usr/bin/python3
"""Pulls that must fail cleanly, and one that must survive a cut connection:
- an unknown tag and an unknown repository: one clear error line, store unchanged;
- a layer blob corrupted in the registry's storage: discarded, retried once, then the pull
  fails naming the layer, and the store is byte-for-byte as before (hashed before/after);
- a relay that drops the connection in the middle of a 4 MB blob: the download resumes
  with a Range request and the image equals `umoci unpack`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
reg = relay = None


def big_layer(r):
    with open(os.path.join(r, "big.bin"), "wb") as f:
        f.write(os.urandom(4 << 20))


try:
    reg = Registry(work)
    layout = os.path.join(work, "img")
    build_umoci_image(layout, extra_layer=big_layer)
    run("umoci", "unpack", "--image", f"{layout}:v1", os.path.join(work, "ref"))
    ref = listing(os.path.join(work, "ref", "rootfs"))
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:1")
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/bad:1")

    # A store with something in it, so "unchanged" means more than "empty".
    root = os.path.join(work, "store")
    seed = os.path.join(work, "seed-img")
    build_umoci_image(seed)
    strata(root, "load", "-q", "-i", seed, "--tag", "seed/img:1")
    before = tree_hash(root)

    r = strata(root, "pull", "-q", f"{reg.addr}/team/app:nope", check=False)
    one_line_error(r, f"pull {reg.addr}/team/app:nope", "not found", "manifest unknown")
    r = strata(root, "pull", "-q", f"{reg.addr}/no/repo:1", check=False)
    one_line_error(r, f"pull {reg.addr}/no/repo:1", "not found")
    r = strata(root, "pull", "-q", "127.0.0.1:1/x:1", check=False)
    one_line_error(r, "pull 127.0.0.1:1/x:1", "cannot reach registry")
    r = strata(root, "pull", "-q", "team/App:1", check=False)
    one_line_error(r, "invalid reference")
    assert tree_hash(root) == before, "a failed pull changed the store"

    # A connection cut mid-blob: the download resumes where it stopped.
    # (its own store: the corrupt blob below is the same blob, shared in the registry)
    root_r = os.path.join(work, "store-relay")
    relay = Relay(reg.port, cut_after=1 << 20)
    out = strata(root_r, "pull", f"{relay.addr}/team/app:1")
    assert relay.cut_done, "the relay never cut a connection"
    assert relay.saw_range, "no Range request after the cut"
    d = diff_listings(ref, rootfs_listing(root_r, f"{relay.addr}/team/app:1", os.path.join(work, "m")))
    assert not d, "\n".join(d[:20])
    assert "OK" in strata(root_r, "verify").stdout
    # Corrupt the big layer's blob in the registry's storage (the registry serves it as is).
    import json
    raw = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.addr}/team/bad:1").stdout)
    big = max(raw["layers"], key=lambda l: l["size"])
    data = os.path.join(reg.storage, "docker/registry/v2/blobs/sha256", big["digest"][7:9], big["digest"][7:], "data")
    with open(data, "r+b") as f:
        f.seek(big["size"] // 2)
        chunk = f.read(64)
        f.seek(big["size"] // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))
    r = strata(root, "pull", f"{reg.addr}/team/bad:1", check=False)
    assert "retrying once" in r.stderr, r.stderr
    r = strata(root, "pull", "-q", f"{reg.addr}/team/bad:1", check=False)
    one_line_error(r, f"pull {reg.addr}/team/bad:1", big["digest"][:19], "nothing was imported")
    assert tree_hash(root) == before, "a pull of a corrupt blob changed the store"

    print("PASS")
finally:
    teardown(work, reg, relay)
