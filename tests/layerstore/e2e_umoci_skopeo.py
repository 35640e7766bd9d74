#!/usr/bin/python3
"""Real images built by umoci, converted by skopeo, loaded by strata: the kernel overlayfs
mount of the loaded layers must equal `umoci unpack` of the same image; verify, tar-split
reassembly (Debian's tar-split) and the image commands must agree."""
import glob
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo", "tar-split")
work = workdir()
try:
    layout, ref = umoci_image_with_reference(work)

    root = os.path.join(work, "store")
    out = strata(root, "load", "-i", layout, "--tag", "test/img:v1")
    assert "Loaded image: test/img:v1" in out.stdout, out.stdout
    assert "4 layer(s) new" in out.stderr or "5 layer(s) new" in out.stderr, out.stderr

    def check_tree(image):
        with OverlayMount(image_layers(root, image), os.path.join(work, "m")) as mnt:
            d = diff_listings(ref, listing(mnt))
        assert not d, "overlay mount differs from umoci unpack:\n" + "\n".join(d[:30])

    check_tree("test/img:v1")
    # Whiteouts as char 0/0 and the opaque dir as trusted.overlay.opaque, in some layer.
    layers = image_layers(root, "test/img:v1")
    assert any(os.path.exists(os.path.join(l, "data/gone")) and os.stat(os.path.join(l, "data/gone")).st_rdev == 0
               and not os.path.isfile(os.path.join(l, "data/gone")) for l in layers)
    assert any(os.path.isdir(os.path.join(l, "opq")) and
               os.getxattr(os.path.join(l, "opq"), "trusted.overlay.opaque") == b"y"
               for l in layers if os.path.isdir(os.path.join(l, "opq")) and
               "trusted.overlay.opaque" in os.listxattr(os.path.join(l, "opq")))

    # tar-split: Debian's reassembler rebuilds every layer tar with the right diff_id.
    for lay in json.loads(strata(root, "inspect", "test/img:v1").stdout)[0]["Layers"]:
        ts = glob.glob(os.path.join(root, "image/overlay2/layerdb/sha256", lay["chain_id"][7:], "tar-split.json.gz"))[0]
        r = run("sh", "-c", f"tar-split asm --input {ts} --path {root}/overlay2/{lay['cache_id']}/diff --output - 2>/dev/null | sha256sum")
        assert r.stdout.split()[0] == lay["diff_id"][7:], f"tar-split asm mismatch for {lay['chain_id']}"

    assert "OK" in strata(root, "verify").stdout

    # skopeo: docker-archive and oci-archive of the same image; layers are reused.
    da = os.path.join(work, "img-docker.tar")
    oa = os.path.join(work, "img-oci.tar")
    run("skopeo", "copy", "-q", f"oci:{layout}:v1", f"docker-archive:{da}:test/docker:v1")
    run("skopeo", "copy", "-q", f"oci:{layout}:v1", f"oci-archive:{oa}:test/oci:v1")
    out = strata(root, "load", "-i", da)
    assert "Loaded image: test/docker:v1" in out.stdout, out.stdout
    assert "0 layer(s) new" in out.stderr, out.stderr  # same diff_ids -> same chain-ids
    check_tree("test/docker:v1")
    out = strata(root, "load", "-q", "-i", oa)
    assert "Loaded image: test/oci:v1" in out.stdout, out.stdout
    # docker-archive from stdin, into a fresh store
    root2 = os.path.join(work, "store2")
    with open(da, "rb") as f:
        out = strata(root2, "load", stdin=f)
    assert "Loaded image: test/docker:v1" in out.stdout
    with OverlayMount(image_layers(root2, "test/docker:v1"), os.path.join(work, "m2")) as mnt:
        assert not diff_listings(ref, listing(mnt))

    # images / inspect / history / tag / rmi / prune
    imgs = json.loads(strata(root, "images", "--format", "json").stdout)
    names = sorted(f"{i['Repository']}:{i['Tag']}" for i in imgs)
    assert names == ["test/docker:v1", "test/img:v1", "test/oci:v1"], names
    iid = imgs[0]["ID"]
    assert len({i["ID"] for i in imgs}) <= 2
    hist = strata(root, "history", "test/img:v1").stdout
    assert "umoci" in hist, hist
    strata(root, "tag", "test/img:v1", "other:latest")
    assert "other:latest" in json.loads(strata(root, "inspect", "other").stdout)[0]["RepoTags"]
    by_prefix = json.loads(strata(root, "inspect", iid[7:19]).stdout)[0]["Id"]
    assert by_prefix == iid
    r = strata(root, "inspect", "nosuch:tag", check=False)
    assert r.returncode != 0 and "no such image" in r.stderr
    out = strata(root, "rmi", "other").stdout
    assert "Untagged: other:latest" in out and "Deleted" not in out, out
    n_layers = len(os.listdir(os.path.join(root, "image/overlay2/layerdb/sha256")))
    for name in ("test/img:v1", "test/docker:v1", "test/oci:v1"):
        strata(root, "rmi", name)
    assert os.listdir(os.path.join(root, "image/overlay2/layerdb/sha256")) == [], "layers left after rmi"
    assert [d for d in os.listdir(os.path.join(root, "overlay2")) if d not in ("l", ".staging")] == []
    assert os.listdir(os.path.join(root, "overlay2/l")) == []
    assert n_layers >= 4
    assert "Pruned 0" in strata(root, "prune").stdout
    print("PASS")
finally:
    shutil.rmtree(work, ignore_errors=True)
