#!/usr/bin/python3
"""A 121-layer image (busybox base + 120 small layers, one deleting a base file): the lower
option string is long, so strata passes the l/<LINKID> short links. Mounted read-only and
run, as root."""
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import *  # noqa: E402,F403

N = 120
need_env()


def blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs/sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def layer_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), kind
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


work = tempfile.mkdtemp(prefix="strata-many-")
store = os.path.join(work, "store")
try:
    layout = os.path.join(work, "img")
    os.makedirs(os.path.join(layout, "blobs/sha256"))
    with open("/bin/busybox", "rb") as f:
        bb = f.read()
    base = [("bin", "dir", None), ("bin/busybox", 0o755, bb), ("bin/sh", "link", "busybox"),
            ("bin/ls", "link", "busybox"), ("bin/cat", "link", "busybox"), ("bin/wc", "link", "busybox"),
            ("layers", "dir", None), ("layers/base-doomed", 0o644, b"doomed\n")]
    tars = [layer_tar(base)]
    for i in range(1, N + 1):
        ents = [("layers", "dir", None), (f"layers/{i:03d}", 0o644, f"layer {i}\n".encode())]
        if i == N // 2:
            ents.append(("layers/.wh.base-doomed", 0o644, b""))
        tars.append(layer_tar(ents))
    layers = [blob(layout, t) for t in tars]
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]},
              "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]}
    cdig, csize = blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s}
                           for d, s in layers]}
    mdig, msize = blob(layout, json.dumps(manifest).encode())
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig, "size": msize,
             "annotations": {"org.opencontainers.image.ref.name": "many"}}]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    S = Strata(store)
    S("load", "-q", "-i", layout, "--tag", "t/many:1")

    mnt = S("mount", "t/many:1").stdout.strip()
    names = sorted(os.listdir(os.path.join(mnt, "layers")))
    S("umount", "t/many:1")
    assert names == [f"{i:03d}" for i in range(1, N + 1)], f"mounted /layers: {names[:5]}... ({len(names)})"

    r = S("run", "--rm", "t/many:1", "sh", "-c", "ls /layers | wc -l; cat /layers/001 /layers/120")
    assert r.stdout.split() == [str(N), "layer", "1", "layer", "120"], f"run printed {r.stdout!r}"
    S("rmi", "t/many:1")
    S("verify")
    assert_clean_store(store)
    print("PASS")
finally:
    unmount_all_under(work)
    shutil.rmtree(work, ignore_errors=True)
