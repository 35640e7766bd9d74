#!/usr/bin/python3
"""Writes a synthetic OCI image layout for the load and pull benchmarks.

  make_oci_image.py DIR LAYERS FILES_PER_LAYER BIG_FILE_SIZE

Each layer is a PAX tar of FILES_PER_LAYER files in 50 dirs: every tenth file 5 kB, the others
BIG_FILE_SIZE bytes, part random and part zeros (so gzip has real work), gzip level 1. Tagged
"v1". The layer digests are written one per line to DIR/../layers.txt.
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def main():
    out, nlayers, nfiles, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    os.makedirs(os.path.join(out, "blobs", "sha256"))

    def sha(b):
        return "sha256:" + hashlib.sha256(b).hexdigest()

    def put(b):
        with open(os.path.join(out, "blobs", "sha256", sha(b)[7:]), "wb") as f:
            f.write(b)
        return sha(b)

    layers, diffs = [], []
    for layer in range(nlayers):
        bio = io.BytesIO()
        rnd = os.urandom(1 << 16)
        with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
            for i in range(nfiles):
                size = big if i % 10 else 5000
                data = (rnd[(i * 7) % 4096:] + bytes(size))[:size]
                ti = tarfile.TarInfo(f"l{layer}/d{i % 50}/f{i}")
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
        tar = bio.getvalue()
        diffs.append(sha(tar))
        z = gzip.compress(tar, compresslevel=1, mtime=0)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(z), "size": len(z)})
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(cfg), "size": len(cfg)},
                           "layers": layers}).encode()
    md = put(manifest)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)
    with open(os.path.join(os.path.dirname(os.path.abspath(out)), "layers.txt"), "w") as f:
        f.write("\n".join(layer["digest"][7:] for layer in layers))


if __name__ == "__main__":
    main()
