#!/usr/bin/python3
"""A pulled layer whose content the store already has under another chain is rebuilt from
the local layer (tar-split + diff dir), not downloaded. Images A = [base1, X] and
B = [base2, X] share X's tar (umoci insert of the same dir); pulls go through a logging
HTTP front, which must see no GET of X's blob when B is pulled after A. B's rootfs equals
`umoci unpack`, and `strata verify` is clean. When the local layer no longer matches its
tar-split, the pull downloads X instead. A's X kept lazy (pull --lazy) serves B's X too,
decompressed from its blob, and with pull --lazy its blob is copied."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403
from http_front import RegistryFront  # noqa: E402


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def tree(root, files):
    for name, data in files.items():
        write(os.path.join(root, name), data)


def image(layout, tag, base, shared):
    run("umoci", "new", "--image", f"{layout}:{tag}")
    run("umoci", "insert", "--image", f"{layout}:{tag}", base, "/base")
    run("umoci", "insert", "--image", f"{layout}:{tag}", shared, "/x")


need_root()
need_tools("umoci", "skopeo", "docker-registry")
work = workdir()
reg = front = None
try:
    reg = Registry(work)
    front = RegistryFront(reg.addr)
    base1, base2, shared = (os.path.join(work, n) for n in ("base1", "base2", "shared"))
    tree(base1, {"etc/os": b"one\n", "bin/tool": b"\x7fELF one" * 1000})
    tree(base2, {"etc/os": b"two\n", "lib/other": b"lib two\n" * 5000})
    tree(shared, {"big": os.urandom(300_000), "sub/a": b"a\n", "sub/deep/b": b"b" * 7000, "etc-os": b"shared\n"})
    os.symlink("sub/a", os.path.join(shared, "link"))
    os.link(os.path.join(shared, "sub/a"), os.path.join(shared, "hard"))
    os.chmod(os.path.join(shared, "sub/deep/b"), 0o4750)
    os.chown(os.path.join(shared, "sub/deep/b"), 1000, 1000)
    layout = os.path.join(work, "img")
    run("umoci", "init", "--layout", layout)
    image(layout, "a", base1, shared)
    image(layout, "b", base2, shared)
    skopeo_push(f"oci:{layout}:a", f"{reg.addr}/team/a:1")
    skopeo_push(f"oci:{layout}:b", f"{reg.addr}/team/b:1")
    run("umoci", "unpack", "--image", f"{layout}:b", os.path.join(work, "ref"))
    ref = listing(os.path.join(work, "ref", "rootfs"))

    def remote_layers(repo):
        raw = run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.addr}/{repo}:1").stdout
        return [l["digest"] for l in json.loads(raw)["layers"]]

    la, lb = remote_layers("team/a"), remote_layers("team/b")
    x = la[1]
    assert lb[1] == x and la[0] != lb[0], (la, lb)

    root = os.path.join(work, "store")
    a_name, b_name = f"{front.addr}/team/a:1", f"{front.addr}/team/b:1"
    strata(root, "pull", a_name)
    assert len(front.blob_gets(x)) == 1, front.log
    r = strata(root, "pull", b_name)
    assert front.blob_gets(x) == [f"/v2/team/a/blobs/{x}"], front.blob_gets(x)  # A's pull only
    assert len(front.blob_gets(lb[0])) == 1, front.log  # the front does see B's downloads
    assert "1 layer(s) downloaded" in r.stderr and "1 rebuilt from local layers" in r.stderr, r.stderr
    info_a, info_b = inspect(root, a_name), inspect(root, b_name)
    assert info_a["Layers"][1]["diff_id"] == info_b["Layers"][1]["diff_id"]
    d = diff_listings(ref, rootfs_listing(root, b_name, os.path.join(work, "m")))
    assert not d, "\n".join(d[:20])
    out = strata(root, "verify").stdout
    assert "OK" in out, out
    # distribution/ knows X's compressed digest for B's pull too.
    dd = os.path.join(root, "image/overlay2/distribution/diffid-by-digest/sha256", x[7:])
    assert open(dd).read() == info_b["Layers"][1]["diff_id"]

    # The local layer was changed behind strata's back: its tar cannot be rebuilt, so X is
    # downloaded after all, and B is still right.
    root2 = os.path.join(work, "store2")
    strata(root2, "pull", "-q", a_name)
    diff_a = [p for p in (os.path.join(d, "x/sub/a") for d in image_layers(root2, a_name)) if os.path.exists(p)]
    assert len(diff_a) == 1, image_layers(root2, a_name)
    diff_a = diff_a[0]
    with open(diff_a, "w") as f:
        f.write("tampered\n")
    before = len(front.blob_gets(x))
    r = strata(root2, "pull", b_name)
    assert len(front.blob_gets(x)) == before + 1, front.log
    assert "downloading instead" in r.stderr and "1 rebuilt" not in r.stderr, r.stderr
    d = diff_listings(ref, rootfs_listing(root2, b_name, os.path.join(work, "m2")))
    assert not d, "\n".join(d[:20])

    # A kept lazy (pull --lazy): B's X is decompressed from A's lazy blob, not downloaded.
    root3 = os.path.join(work, "store3")
    strata(root3, "pull", "-q", "--lazy", a_name)
    before = len(front.blob_gets(x))
    r = strata(root3, "pull", b_name)
    assert len(front.blob_gets(x)) == before, front.log
    assert "1 rebuilt from local layers" in r.stderr, r.stderr
    d = diff_listings(ref, rootfs_listing(root3, b_name, os.path.join(work, "m3")))
    assert not d, "\n".join(d[:20])
    assert "OK" in strata(root3, "verify").stdout
    # And for pull --lazy: B's X is A's lazy blob copied (the same digest), not downloaded.
    root4 = os.path.join(work, "store4")
    strata(root4, "pull", "-q", "--lazy", a_name)
    before = len(front.blob_gets(x))
    r = strata(root4, "pull", "--lazy", b_name)
    assert len(front.blob_gets(x)) == before, front.log
    assert "1 rebuilt from local layers" in r.stderr and "2 kept lazy" in r.stderr, r.stderr
    x_layer = inspect(root4, b_name)["Layers"][1]
    with open(os.path.join(root4, "overlay2", x_layer["cache_id"], "lazy-blob"), "rb") as f:
        assert sha(f.read()) == x
    assert "OK" in strata(root4, "verify").stdout
    print("PASS")
finally:
    teardown(work, reg, front)
