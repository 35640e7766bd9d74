#!/usr/bin/python3
"""Downloads are bounded by what the manifest says:
- a registry that sends 64 MiB more than a layer's descriptor size (more gzip members, which
  a gzip reader would go on decompressing): strata stops reading at the descriptor's size
  (the front counts what the client took), the pull fails with one line naming the layer's
  digest, the store is unchanged;
- a manifest of 5 MiB (a valid one padded with spaces; the distribution spec's limit is
  4 MiB): one line, store unchanged."""
import gzip
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403
from http_front import RegistryFront, _reply  # noqa: E402

need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
reg = front = None
EXTRA = 64 << 20


def big_layer(r):
    with open(os.path.join(r, "big.bin"), "wb") as f:
        f.write(os.urandom(2 << 20))


def upstream_get(path, accept=None):
    c = http.client.HTTPConnection(reg.addr, timeout=60)
    c.request("GET", path, headers={"Accept": accept} if accept else {})
    r = c.getresponse()
    data, ctype = r.read(), r.getheader("Content-Type")
    c.close()
    assert r.status == 200, (path, r.status)
    return data, ctype


try:
    reg = Registry(work)
    layout = os.path.join(work, "img")
    build_umoci_image(layout, extra_layer=big_layer)
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:1")
    raw = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.addr}/team/app:1").stdout)
    big = max(raw["layers"], key=lambda l: l["size"])

    root = os.path.join(work, "store")
    seed = os.path.join(work, "seed-img")
    build_umoci_image(seed)
    strata(root, "load", "-q", "-i", seed, "--tag", "seed/img:1")
    before = tree_hash(root)

    # The big layer's blob, then 64 MiB more; `taken` is how much each GET's client read.
    taken = []

    def oversized_blob(h, path):
        if h.command != "GET" or not path.endswith("/blobs/" + big["digest"]):
            return False
        data, _ = upstream_get(path)
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data) + EXTRA))
        h.end_headers()
        sent = 0
        try:
            h.wfile.write(data)
            sent = len(data)
            chunk = gzip.compress(os.urandom(1 << 20))
            while sent < len(data) + EXTRA:
                part = chunk[:len(data) + EXTRA - sent]
                h.wfile.write(part)
                sent += len(part)
        except OSError:
            pass
        taken.append(sent)
        h.close_connection = True
        return True

    front = RegistryFront(reg.addr)
    front.intercept = oversized_blob
    name = f"{front.addr}/team/app:1"
    r = strata(root, "pull", "-q", name, check=False)
    assert taken, "the big blob was never fetched"
    # Socket buffers hold a few MiB; a client that read on would have taken all 64.
    assert max(taken) < big["size"] + EXTRA // 2, f"the client read on past the descriptor's size: {taken}"
    one_line_error(r, f"pull {name}", big["digest"], "more than", "nothing was imported")
    assert tree_hash(root) == before, "an oversized blob changed the store"

    # A 5 MiB manifest.
    def padded_manifest(h, path):
        if h.command != "GET" or not path.endswith("/manifests/1"):
            return False
        data, ctype = upstream_get(path, h.headers.get("Accept"))
        _reply(h, 200, [("Content-Type", ctype)], data + b" " * (5 << 20))
        return True

    front.intercept = padded_manifest
    r = strata(root, "pull", "-q", name, check=False)
    one_line_error(r, f"pull {name}", "manifest", "larger than 4194304 bytes")
    assert tree_hash(root) == before, "an oversized manifest changed the store"
    print("PASS")
finally:
    teardown(work, reg, front)
