#!/usr/bin/python3
"""The name `load` gives an image of an OCI layout: org.opencontainers.image.ref.name when it is
a full reference; when it is a bare tag ("12"), containerd's io.containerd.image.name, which
docker save and strata save write beside it (`strata save --format oci-dir` and `oci-archive`
then `load` gave an untagged image); neither: untagged. Also lazily (load --lazy)."""
import io
import json
import os
import subprocess
import sys
import tarfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

work = workdir()
failures = []


def layer():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        ti = tarfile.TarInfo("hello")
        ti.size = 3
        t.addfile(ti, io.BytesIO(b"hi\n"))
    return out.getvalue()


def names(root):
    return sorted(f"{i['Repository']}:{i['Tag']}" for i in json.loads(strata(root, "images", "--format", "json").stdout))


def annotate(layout, annotations):
    path = os.path.join(layout, "index.json")
    with open(path) as f:
        index = json.load(f)
    index["manifests"][0]["annotations"] = annotations
    with open(path, "w") as f:
        json.dump(index, f)


try:
    cases = [({"org.opencontainers.image.ref.name": "12", "io.containerd.image.name": "t/x:12"}, ["t/x:12"]),
             ({"org.opencontainers.image.ref.name": "t/y:1", "io.containerd.image.name": "t/z:2"}, ["t/y:1"]),
             ({"io.containerd.image.name": "t/w:3"}, ["t/w:3"]),
             ({"org.opencontainers.image.ref.name": "latest"}, ["<none>:<none>"])]
    for n, (annotations, want) in enumerate(cases):
        layout = os.path.join(work, f"img{n}")
        one_layer_layout(layout, layer())
        annotate(layout, annotations)
        for lazy in ((), ("--lazy",)):
            root = os.path.join(work, f"store{n}{''.join(lazy)}")
            strata(root, "load", "-q", *lazy, "-i", layout)
            if names(root) != want:
                failures.append(f"load {' '.join(lazy)} of {annotations}: {names(root)}, want {want}")

    # strata's own save, read back.
    src = os.path.join(work, "src")
    strata(src, "load", "-q", "--tag", "t/saved:7", "-i", os.path.join(work, "img0"))
    for fmt, out in (("oci-dir", "saved-dir"), ("oci-archive", "saved.tar")):
        strata(src, "save", "-q", "--format", fmt, "-o", os.path.join(work, out), "t/saved:7")
        root = os.path.join(work, "store-" + fmt)
        strata(root, "load", "-q", "-i", os.path.join(work, out))
        if "t/saved:7" not in names(root):
            failures.append(f"save --format {fmt} then load: {names(root)}, want t/saved:7 among them")
finally:
    subprocess.run(["rm", "-rf", work])
conclude(failures, "OCI layouts load under the name their annotations give")
