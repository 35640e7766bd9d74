#!/usr/bin/python3
"""registry-dir: push a umoci-built image with skopeo to Debian's docker-registry on
loopback, then `strata load --registry-dir` straight from its storage directory; the mount
must equal `umoci unpack`, and tags and name@digest must resolve."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
proc = None
try:
    proc = Registry(work)
    port, storage = proc.port, proc.storage

    layout, ref = umoci_image_with_reference(work)
    run("skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://127.0.0.1:{port}/team/app:1.0")

    root = os.path.join(work, "store")
    out = strata(root, "load", "--registry-dir", storage, "team/app:1.0")
    assert "Loaded image: team/app:1.0" in out.stdout, out.stdout
    info = json.loads(strata(root, "inspect", "team/app:1.0").stdout)[0]
    assert info["RepoDigests"] and info["RepoDigests"][0].startswith("team/app@sha256:"), info["RepoDigests"]
    assert json.loads(strata(root, "inspect", info["RepoDigests"][0]).stdout)[0]["Id"] == info["Id"]
    # distribution/ records which compressed blob gave which diff_id, and where it came from.
    for lay in info["Layers"]:
        assert lay["digest"] != lay["diff_id"]
        v2 = os.path.join(root, "image/overlay2/distribution/v2metadata-by-diffid/sha256", lay["diff_id"][7:])
        assert json.load(open(v2))[0]["SourceRepository"] == "team/app"
    with OverlayMount(image_layers(root, "team/app:1.0"), os.path.join(work, "m")) as mnt:
        d = diff_listings(ref, listing(mnt))
    assert not d, "\n".join(d[:20])
    assert "OK" in strata(root, "verify").stdout

    r = strata(root, "load", "-q", "--registry-dir", storage, "team/app:nope", check=False)
    assert r.returncode != 0 and "not found" in r.stderr, r.stderr
    r = strata(root, "load", "-q", "--registry-dir", storage, "other/repo:1.0", check=False)
    assert r.returncode != 0 and "not found" in r.stderr, r.stderr
    print("PASS")
finally:
    if proc:
        proc.stop()
    shutil.rmtree(work, ignore_errors=True)
