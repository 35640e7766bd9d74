#!/usr/bin/python3
"""strata pull from Debian's docker-registry on loopback: images pushed there by skopeo as
OCI and as Docker schema-2 manifests, and a multi-arch OCI index (and its Docker manifest
list form). The rootfs must equal `umoci unpack`; tags and name@digest are recorded,
distribution/ is updated, and a second pull downloads nothing."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
reg = None
try:
    reg = Registry(work)
    layout = os.path.join(work, "img")
    build_umoci_image(layout)
    amd_cfg, arm_cfg = add_arm64_index(layout)
    run("umoci", "unpack", "--image", f"{layout}:v1", os.path.join(work, "ref"))
    ref = listing(os.path.join(work, "ref", "rootfs"))
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:oci")
    skopeo_push(f"oci:{layout}:v1", f"{reg.addr}/team/app:docker", "--format", "v2s2")
    skopeo_push(f"oci:{layout}:multi", f"{reg.addr}/team/multi:1", "--all")

    root = os.path.join(work, "store")
    for tag, ctype in (("oci", "application/vnd.oci.image.config.v1+json"),
                       ("docker", "application/vnd.docker.container.image.v1+json")):
        name = f"{reg.addr}/team/app:{tag}"
        raw = run("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + name).stdout
        assert json.loads(raw)["config"]["mediaType"] == ctype, raw
        out = strata(root, "pull", name)
        assert out.stdout.strip() == name, out.stdout
        info = inspect(root, name)
        assert info["Id"] == amd_cfg, (info["Id"], amd_cfg)
        # The tag's manifest is recorded with its digest, and resolves.
        want = f"{reg.addr}/team/app@{sha(raw.encode())}"
        assert want in info["RepoDigests"], (want, info["RepoDigests"])
        assert inspect(root, want)["Id"] == info["Id"]
        d = diff_listings(ref, rootfs_listing(root, name, os.path.join(work, "m-" + tag)))
        assert not d, "\n".join(d[:20])
        # distribution/: which compressed blob gave which diff_id, and from where.
        for lay in info["Layers"]:
            v2 = os.path.join(root, "image/overlay2/distribution/v2metadata-by-diffid/sha256", lay["diff_id"][7:])
            assert any(e["SourceRepository"] == f"{reg.addr}/team/app" for e in json.load(open(v2))), v2
            dd = os.path.join(root, "image/overlay2/distribution/diffid-by-digest/sha256", lay["digest"][7:])
            assert open(dd).read() == lay["diff_id"]
    # The docker-format pull found every layer (same diff_ids) already there.
    assert "0 layer(s) downloaded" in out.stderr and "4 already present" in out.stderr, out.stderr

    # A second pull downloads nothing: no layer blob is fetched (the registry would log it).
    again = strata(root, "pull", f"{reg.addr}/team/app:oci")
    assert "0 layer(s) downloaded" in again.stderr, again.stderr
    assert "downloading" not in again.stderr, again.stderr

    # Multi-arch: the index picks linux/amd64 by default and linux/arm64/v8 on request.
    root2 = os.path.join(work, "store2")
    strata(root2, "pull", "-q", f"{reg.addr}/team/multi:1")
    assert inspect(root2, f"{reg.addr}/team/multi:1")["Id"] == amd_cfg
    strata(root2, "pull", "-q", "--platform", "linux/arm64", f"{reg.addr}/team/multi:1")
    info = inspect(root2, f"{reg.addr}/team/multi:1")
    assert info["Id"] == arm_cfg, (info["Id"], arm_cfg)
    idx_raw = run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.addr}/team/multi:1").stdout
    assert "application/vnd.oci.image.manifest.v1+json" in idx_raw and "linux" in idx_raw, idx_raw
    assert f"{reg.addr}/team/multi@{sha(idx_raw.encode())}" in info["RepoDigests"], info["RepoDigests"]
    # The arm64 image shares every layer: nothing was downloaded for it.
    r = strata(root2, "pull", "--platform", "linux/s390x", f"{reg.addr}/team/multi:1", check=False)
    one_line_error(r, "team/multi", "no manifest for platform linux/s390x")

    # By digest: name@sha256 only, no tag.
    root3 = os.path.join(work, "store3")
    arm_digest = next(m["digest"] for m in json.loads(idx_raw)["manifests"] if m["platform"]["architecture"] == "arm64")
    strata(root3, "pull", "-q", f"{reg.addr}/team/multi@{arm_digest}")
    info = inspect(root3, f"{reg.addr}/team/multi@{arm_digest}")
    assert info["Id"] == arm_cfg and not info["RepoTags"], info

    # A Docker manifest list (skopeo converts the index) picks the same way.
    r = run("skopeo", "copy", "-q", "--all", "--format", "v2s2", "--dest-tls-verify=false",
            f"oci:{layout}:multi", f"docker://{reg.addr}/team/list:1", check=False)
    if r.returncode == 0:
        raw = run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.addr}/team/list:1").stdout
        assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json", raw
        root4 = os.path.join(work, "store4")
        strata(root4, "pull", "-q", "--platform", "linux/arm64/v8", f"{reg.addr}/team/list:1")
        assert inspect(root4, f"{reg.addr}/team/list:1")["Id"] == arm_cfg
    else:
        print("note: skopeo could not write a Docker manifest list:", r.stderr.strip())
    assert "OK" in strata(root, "verify").stdout
    print("PASS")
finally:
    if reg:
        reg.stop()
    shutil.rmtree(work, ignore_errors=True)
