#!/usr/bin/python3
"""Push: an upload session URL (the registry's Location) on another host gets no
Authorization. A front on 127.0.0.1 asks for Basic auth and answers the upload POST with a
Location on 127.0.0.2 (another host), a logging front that forwards to the same registry.
The push succeeds; the upload's PATCH and PUT went to 127.0.0.2 without credentials; every
request to the registry's own host after the challenge carried them; skopeo sees the image."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403
from http_front import RegistryFront  # noqa: E402

need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
reg = front = other = None
try:
    reg = Registry(work)
    other = RegistryFront(reg.addr, bind="127.0.0.2")
    front = RegistryFront(reg.addr, creds=("alice", "s3cret"), upload_to=f"http://{other.addr}")
    root = os.path.join(work, "store")
    seed = os.path.join(work, "seed-img")
    build_umoci_image(seed)
    strata(root, "load", "-q", "-i", seed, "--tag", "seed/img:1")

    dest = f"{front.addr}/team/pushed:1"
    strata(root, "push", "-q", "--creds", "alice:s3cret", "seed/img:1", dest)
    methods = {m for _, m, _, _ in other.seen}
    assert {"PATCH", "PUT"} <= methods, f"the uploads did not go to the other host: {other.seen}"
    assert other.with_auth() == [], f"credentials went to another host: {other.with_auth()}"
    after_challenge = front.seen[[a for _, _, _, a in front.seen].index(None) + 1:]
    assert after_challenge and all(a for _, _, _, a in after_challenge), front.seen
    info = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{reg.addr}/team/pushed:1").stdout)
    assert info["Digest"] in inspect(root, "seed/img:1")["RepoDigests"][0], info["Digest"]
    print("PASS")
finally:
    teardown(work, reg, front, other)
