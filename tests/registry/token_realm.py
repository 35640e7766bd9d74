#!/usr/bin/python3
"""A Bearer challenge's token realm gets the Basic credentials only on the registry's own
host (over HTTPS, or over plain HTTP when the registry is on that same loopback address).
Fronts on 127.0.0.1 ask for Bearer tokens from realms on 127.0.0.2 (another host, plain
HTTP) and on 127.0.0.1 (the registry's host), each a logging token server:
- a realm on another host that gives anonymous tokens: the pull works and the realm never
  sees an Authorization header;
- one that refuses anonymous tokens: the pull fails with one line naming the realm, the
  realm saw no credentials, the store is unchanged;
- a realm on the registry's own loopback host gets them, and the pull works."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403
from http_front import RegistryFront, TokenServer  # noqa: E402

need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
reg = None
servers = []
CREDS = ("alice", "s3cret")


def front_with_realm(token, anonymous, bind):
    tok = TokenServer(token, creds=CREDS, anonymous=anonymous, bind=bind)
    front = RegistryFront(reg.addr, bearer=(tok.realm, "strata-registry", token))
    servers.extend([tok, front])
    return tok, front


try:
    reg = Registry(work)
    layout, ref = umoci_image_with_reference(work)
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:1")
    root = os.path.join(work, "store")
    seed = os.path.join(work, "seed-img")
    build_umoci_image(seed)
    strata(root, "load", "-q", "-i", seed, "--tag", "seed/img:1")

    # Another host, anonymous tokens allowed: works, and no credentials went there.
    tok, front = front_with_realm("tok-other", True, "127.0.0.2")
    name = f"{front.addr}/team/app:1"
    strata(root, "pull", "-q", "--creds", "alice:s3cret", name)
    assert tok.seen, "the realm was never asked for a token"
    assert tok.with_auth() == [], f"credentials went to a realm on another host: {tok.with_auth()}"
    d = diff_listings(ref, rootfs_listing(root, name, os.path.join(work, "m")))
    assert not d, "\n".join(d[:20])

    # Another host that wants credentials: one clear line naming the realm, nothing stored.
    before = tree_hash(root)
    tok, front = front_with_realm("tok-strict", False, "127.0.0.2")
    name = f"{front.addr}/team/app:1"
    r = strata(root, "pull", "-q", "--creds", "alice:s3cret", name, check=False)
    one_line_error(r, f"pull {name}", tok.realm, "anonymous")
    assert tok.with_auth() == [], tok.with_auth()
    assert tree_hash(root) == before, "a refused pull changed the store"

    # The registry's own loopback host: the realm gets the credentials.
    tok, front = front_with_realm("tok-same", False, "127.0.0.1")
    root2 = os.path.join(work, "store2")
    strata(root2, "pull", "-q", "--creds", "alice:s3cret", f"{front.addr}/team/app:1")
    assert tok.with_auth() and all(a == "Basic YWxpY2U6czNjcmV0" for _, _, _, a in tok.with_auth()), tok.seen
    print("PASS")
finally:
    for s in servers:
        s.close()
    if reg:
        reg.stop()
    shutil.rmtree(work, ignore_errors=True)
