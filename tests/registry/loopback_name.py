#!/usr/bin/python3
"""Plain HTTP, and the credentials sent over it, only for a registry whose connection goes to
a loopback address: decided by the address the name connects to, never by how the name
looks. In this test's own network and mount namespaces (the host's are untouched),
127.evil.test resolves to 10.213.0.1, a non-loopback address on the namespace's lo, where a
plain-HTTP front asks for Basic auth (as a registry there would). A pull of
127.evil.test:PORT with --creds must fail naming HTTPS, and no plain request may reach the
front. A name that resolves to 127.0.0.1, and localhost, still get the plain-HTTP fallback
and their credentials; --tls-verify=false allows plain HTTP anywhere, as the user asked."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403
from http_front import RegistryFront  # noqa: E402

need_root()
need_tools("umoci", "skopeo", "docker-registry")
EVIL = "10.213.0.1"
private_network({"127.evil.test": EVIL, "127.good.test": "127.0.0.1"}, extra_addrs=[EVIL])
work = workdir()
reg = evil = good = None
try:
    reg = Registry(work)
    layout, ref = umoci_image_with_reference(work)
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:1")
    evil = RegistryFront(reg.addr, creds=("alice", "s3cret"), bind=EVIL)
    good = RegistryFront(reg.addr, creds=("alice", "s3cret"))

    root = os.path.join(work, "store")
    seed = os.path.join(work, "seed-img")
    build_umoci_image(seed)
    strata(root, "load", "-q", "-i", seed, "--tag", "seed/img:1")
    before = tree_hash(root)
    name = f"127.evil.test:{evil.port}/team/app:1"
    r = strata(root, "pull", "-q", "--creds", "alice:s3cret", name, check=False)
    one_line_error(r, f"pull {name}", "HTTPS", EVIL, "not one")
    # The TLS hello is no HTTP request, so the front logs nothing unless strata fell back.
    assert evil.seen == [], f"plain HTTP reached a non-loopback address: {evil.seen}"
    assert tree_hash(root) == before, "a refused pull changed the store"
    r = strata(root, "login", "--authfile", os.path.join(work, "auth.json"), "-u", "alice", "-p", "s3cret",
               f"127.evil.test:{evil.port}", check=False)
    one_line_error(r, "login", "HTTPS")
    assert evil.seen == [], evil.seen

    # Loopback by address: a name resolving to 127.0.0.1, and localhost.
    for host in (f"127.good.test:{good.port}", f"localhost:{good.port}"):
        r2 = os.path.join(work, "store-" + host.split(":")[0])
        strata(r2, "pull", "-q", "--creds", "alice:s3cret", f"{host}/team/app:1")
        d = diff_listings(ref, rootfs_listing(r2, f"{host}/team/app:1", os.path.join(work, "m")))
        assert not d, "\n".join(d[:20])
    assert good.with_auth(), good.seen

    # The user's explicit choice: plain HTTP to any address.
    r3 = os.path.join(work, "store-insecure")
    strata(r3, "pull", "-q", "--tls-verify=false", "--creds", "alice:s3cret", name)
    assert evil.with_auth(), evil.seen
    print("PASS")
finally:
    teardown(work, reg, evil, good)
