#!/usr/bin/python3
"""Atomicity and locking: SIGKILL `strata load` at many points, load again: it completes and
`verify` and `prune` find nothing wrong or left over. Two concurrent loads of images that
share a base layer both succeed and share it."""
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
work = workdir()


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def layer_tar(prefix, nfiles, size, seed):
    bio = io.BytesIO()
    rnd = hashlib.sha256(seed.encode()).digest()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
        for i in range(nfiles):
            data = (rnd * (size // 32 + 1))[:size] + str(i).encode()
            ti = tarfile.TarInfo(f"{prefix}/d{i % 20}/f{i}")
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


def oci_layout(path, tars, tag):
    os.makedirs(os.path.join(path, "blobs/sha256"))

    def put(b):
        with open(os.path.join(path, "blobs/sha256", sha(b)[7:]), "wb") as f:
            f.write(b)
        return sha(b)

    layers = []
    for t in tars:
        z = gzip.compress(t, compresslevel=1, mtime=0)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(z), "size": len(z)})
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]}}).encode()
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
                    "layers": layers}).encode()
    md = put(m)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": md, "size": len(m), "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    return path


def clean_state(root):
    v = strata(root, "verify", check=False)
    assert v.returncode == 0, f"verify failed:\n{v.stdout}{v.stderr}"
    p = strata(root, "prune").stdout
    assert "Pruned 0 item(s)" in p, f"prune found leftovers:\n{p}"


try:
    base = layer_tar("base", 3000, 4096, "base")
    img_a = oci_layout(os.path.join(work, "a"), [base, layer_tar("a", 500, 2048, "a"), layer_tar("a2", 50, 100, "a2")], "app:a")
    img_b = oci_layout(os.path.join(work, "b"), [base, layer_tar("b", 500, 2048, "b")], "app:b")

    # Kill at many points, then load again.
    root = os.path.join(work, "store")
    for delay in (0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.45, 0.7):
        shutil.rmtree(root, ignore_errors=True)
        p = subprocess.Popen([STRATA, "--root", root, "load", "-q", "-i", img_a], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if delay in (0.1, 0.3):
            # Without a second load: prune alone must clean up, leaving a valid store.
            strata(root, "prune")
            v = strata(root, "verify", check=False)
            assert v.returncode == 0, v.stdout + v.stderr
        out = strata(root, "load", "-q", "-i", img_a)
        assert "Loaded image: app:a" in out.stdout, out.stdout
        clean_state(root)
        assert len(os.listdir(os.path.join(root, "image/overlay2/layerdb/sha256"))) == 3

    # Two concurrent loads sharing the base layer.
    root = os.path.join(work, "store-concurrent")
    procs = [subprocess.Popen([STRATA, "--root", root, "load", "-q", "-i", i], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (img_a, img_b)]
    outs = [p.communicate() for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e
    assert "Loaded image: app:a" in outs[0][0] and "Loaded image: app:b" in outs[1][0]
    assert len(os.listdir(os.path.join(root, "image/overlay2/layerdb/sha256"))) == 4, "base layer not shared"
    clean_state(root)
    # rmi of one keeps the shared base for the other.
    strata(root, "rmi", "app:a")
    assert len(os.listdir(os.path.join(root, "image/overlay2/layerdb/sha256"))) == 2
    clean_state(root)
    print("PASS")
finally:
    shutil.rmtree(work, ignore_errors=True)
