#!/usr/bin/python3
"""TLS with a self-signed CA and htpasswd (bcrypt) Basic auth on docker-registry, loopback:
- without the CA: one error naming the certificate problem; --cert-dir DIR (DIR/*.crt)
  trusts it; --tls-verify=false skips the check;
- no credentials, a wrong password: one clear error each, store unchanged;
- `strata login --authfile F` checks and stores the credentials ({"auths":{host:{"auth":b64}}}),
  pull and push then use F (also via $REGISTRY_AUTH_FILE); `strata logout` removes them."""
import base64
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo", "docker-registry", "openssl", "htpasswd")
work = workdir()
reg = None
try:
    certs, crt, key = make_test_ca(work)
    htp = os.path.join(work, "htpasswd")
    with open(htp, "w") as f:
        f.write(run("htpasswd", "-Bbn", "alice", "s3cret").stdout)
    reg = Registry(work, tls=(crt, key), htpasswd=htp)

    layout, ref = umoci_image_with_reference(work)
    name = f"{reg.addr}/team/app:1"
    run("skopeo", "copy", "-q", "--dest-cert-dir", certs, "--dest-creds", "alice:s3cret", f"oci:{layout}:v1", "docker://" + name)

    root = os.path.join(work, "store")
    strata(root, "load", "-q", "-i", layout, "--tag", "seed/img:1")
    before = tree_hash(root)
    r = strata(root, "pull", "-q", "--creds", "alice:s3cret", name, check=False)
    one_line_error(r, f"pull {name}", "certificate", "--cert-dir")
    r = strata(root, "pull", "-q", "--cert-dir", certs, name, check=False)
    one_line_error(r, f"pull {name}", "HTTP 401")
    r = strata(root, "pull", "-q", "--cert-dir", certs, "--creds", "alice:wrong", name, check=False)
    one_line_error(r, f"pull {name}", "authentication failed", "alice", "wrong username or password")
    assert tree_hash(root) == before, "a failed pull changed the store"

    # login writes the auth file only when the registry accepts the credentials.
    authfile = os.path.join(work, "auth", "auth.json")
    r = strata(root, "login", "--cert-dir", certs, "--authfile", authfile, "-u", "alice", "-p", "nope", reg.addr, check=False)
    one_line_error(r, "login", "wrong username or password")
    assert not os.path.exists(authfile)
    strata(root, "login", "--cert-dir", certs, "--authfile", authfile, "-u", "alice", "--password-stdin", reg.addr,
           input="s3cret\n")
    auths = json.load(open(authfile))["auths"]
    assert base64.b64decode(auths[reg.addr]["auth"]) == b"alice:s3cret", auths
    assert os.stat(authfile).st_mode & 0o077 == 0, "auth file readable by others"

    strata(root, "pull", "-q", "--cert-dir", certs, "--authfile", authfile, name)
    d = diff_listings(ref, rootfs_listing(root, name, os.path.join(work, "m")))
    assert not d, "\n".join(d[:20])
    # $REGISTRY_AUTH_FILE, and no certificate check at all.
    env = dict(os.environ, REGISTRY_AUTH_FILE=authfile)
    dest = f"{reg.addr}/team/pushed:1"
    strata(root, "push", "-q", "--tls-verify=false", "seed/img:1", dest, env=env)
    root2 = os.path.join(work, "store2")
    strata(root2, "pull", "-q", "--cert-dir", certs, dest, env=env)
    assert inspect(root2, dest)["Id"] == inspect(root, "seed/img:1")["Id"]
    info = json.loads(run("skopeo", "inspect", "--cert-dir", certs, "--creds", "alice:s3cret", "docker://" + dest).stdout)
    assert info["Digest"] in inspect(root2, dest)["RepoDigests"][0]

    strata(root, "logout", "--authfile", authfile, reg.addr)
    assert reg.addr not in json.load(open(authfile))["auths"]
    r = strata(root, "logout", "--authfile", authfile, reg.addr, check=False)
    one_line_error(r, "logout", "not logged in")
    r = strata(root2, "pull", "-q", "--cert-dir", certs, "--authfile", authfile, dest, check=False)
    one_line_error(r, "HTTP 401")
    print("PASS")
finally:
    if reg:
        reg.stop()
    shutil.rmtree(work, ignore_errors=True)
