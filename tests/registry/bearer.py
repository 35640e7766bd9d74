#!/usr/bin/python3
"""Bearer token auth, as Docker Hub does it, against docker-registry's `auth.token` on
loopback: a small token server here (stdlib HTTP, JWTs signed RS256 with `openssl dgst`)
checks Basic credentials and grants the scope asked for. strata must follow the
WWW-Authenticate realm/service/scope, cache one token per scope, pull and push with it, and
give one clear error for a wrong password. Every token request is logged here."""
import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo", "docker-registry", "openssl")
work = workdir()
reg = server = None


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


try:
    key, crt = os.path.join(work, "tok.key"), os.path.join(work, "tok.crt")
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
        "-subj", "/CN=strata token issuer")
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], capture_output=True, check=True).stdout
    requests = []

    class Token(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            auth = self.headers.get("Authorization", "")
            requests.append((q.get("scope", [""])[0], auth))
            if auth != "Basic " + base64.b64encode(b"alice:s3cret").decode():
                self.send_response(401)
                self.end_headers()
                return
            access = []
            for s in " ".join(q.get("scope", [])).split():
                typ, name, actions = s.split(":")
                access.append({"type": typ, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            hdr = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
            claims = {"iss": "strata-issuer", "sub": "alice", "aud": q.get("service", [""])[0], "exp": now + 600,
                      "nbf": now - 10, "iat": now, "jti": str(now) + str(len(requests)), "access": access}
            signing = (b64url(json.dumps(hdr).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
            sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing, capture_output=True,
                                 check=True).stdout
            body = json.dumps({"token": signing.decode() + "." + b64url(sig)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    realm = f"http://127.0.0.1:{server.server_address[1]}/token"

    reg = Registry(work, token=(realm, "strata-registry", "strata-issuer", crt))
    layout, ref = umoci_image_with_reference(work)
    name = f"{reg.addr}/team/app:1"
    skopeo_push(f"oci:{layout}:v1", name, "--dest-creds", "alice:s3cret")

    root = os.path.join(work, "store")
    strata(root, "load", "-q", "-i", layout, "--tag", "seed/img:1")
    before = tree_hash(root)
    r = strata(root, "pull", "-q", "--creds", "alice:wrong", name, check=False)
    one_line_error(r, f"pull {name}", "authentication failed", "wrong username or password")
    assert tree_hash(root) == before

    del requests[:]
    root2 = os.path.join(work, "store2")
    strata(root2, "pull", "-q", "--creds", "alice:s3cret", name)
    d = diff_listings(ref, rootfs_listing(root2, name, os.path.join(work, "m")))
    assert not d, "\n".join(d[:20])
    pulls = [s for s, _ in requests if s == "repository:team/app:pull"]
    # One token for the repository's pull scope, reused for manifest, config and 4 layers.
    assert len(pulls) == 1, requests
    assert all(a.startswith("Basic ") for _, a in requests), requests

    dest = f"{reg.addr}/team/pushed:1"
    strata(root, "push", "-q", "--creds", "alice:s3cret", "seed/img:1", dest)
    info = json.loads(run("skopeo", "inspect", "--tls-verify=false", "--creds", "alice:s3cret", "docker://" + dest).stdout)
    assert info["Digest"] in inspect(root, "seed/img:1")["RepoDigests"][0], info["Digest"]
    assert any(s == "repository:team/pushed:pull,push" for s, _ in requests), requests
    print("PASS")
finally:
    if server:
        server.shutdown()
    if reg:
        reg.stop()
    shutil.rmtree(work, ignore_errors=True)
