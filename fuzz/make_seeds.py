#!/usr/bin/python3
"""Writes the small seed corpus of each fuzz target into corpus/<target>/ (committed; run
again only to change the seeds). The tar seeds are the crafted tars of the tar-semantics
corpus plus a few tars python's tarfile writes in each format."""
import glob
import hashlib
import io
import json
import os
import tarfile

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(here)


def put(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# tar: crafted edge cases + ordinary archives in every format tarfile writes.
for p in glob.glob(os.path.join(repo, "tests/layerstore/tar_semantics/corpus/*.tar")):
    with open(p, "rb") as f:
        put("tar", os.path.basename(p), f.read())
for fmt, label in ((tarfile.USTAR_FORMAT, "ustar"), (tarfile.GNU_FORMAT, "gnu"), (tarfile.PAX_FORMAT, "pax")):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=fmt) as t:
        for name, kind, val in (("etc", tarfile.DIRTYPE, None), ("etc/hello", tarfile.REGTYPE, b"hello\n"),
                                ("etc/" + "d" * 90 + "/" + "f" * 90, tarfile.REGTYPE, b"x" * 600),
                                ("etc/link", tarfile.SYMTYPE, "hello"), ("etc/hard", tarfile.LNKTYPE, "etc/hello"),
                                ("etc/.wh.gone", tarfile.REGTYPE, b"")):
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.mtime = 1700000000
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                ti.linkname = val
                t.addfile(ti)
            elif kind == tarfile.REGTYPE:
                ti.size = len(val)
                if fmt == tarfile.PAX_FORMAT:
                    ti.pax_headers = {"SCHILY.xattr.user.k": "v"}
                t.addfile(ti, io.BytesIO(val))
            else:
                t.addfile(ti)
    put("tar", f"tarfile-{label}.tar", bio.getvalue())

# manifest: manifest or index bytes, NUL, the blob every digest reads as (the config).
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["A=b"]},
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]}}).encode()
cdig = "sha256:" + hashlib.sha256(config).hexdigest()
layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "b" * 64, "size": 10}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": len(config)},
            "layers": [layer]}
put("manifest", "oci-manifest", json.dumps(manifest).encode() + b"\0" + config)
docker = dict(manifest, mediaType="application/vnd.docker.distribution.manifest.v2+json")
docker["config"] = dict(manifest["config"], mediaType="application/vnd.docker.container.image.v1+json")
docker["layers"] = [dict(layer, mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")]
put("manifest", "docker-manifest", json.dumps(docker).encode() + b"\0" + config)
mbytes = json.dumps(manifest).encode()
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + hashlib.sha256(mbytes).hexdigest(),
     "size": len(mbytes), "platform": {"os": "linux", "architecture": "amd64"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "c" * 64, "size": 5,
     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}
put("manifest", "oci-index", json.dumps(index).encode() + b"\0" + mbytes)
put("manifest", "config-only", b"{}\0" + config)

# reference
for i, r in enumerate(["busybox", "busybox:1.36", "library/busybox:latest", "docker.io/library/busybox",
                       "localhost:5000/team/app:v1.0", "127.0.0.1:5000/a/b@sha256:" + "d" * 64,
                       "registry.example.com:443/x/y/z:tag_1-2.3", "UPPER:case", "a//b", "name@sha256:short"]):
    put("reference", f"ref{i}", r.encode())

# fs_options: argv after the program name, NUL-separated.
for i, argv in enumerate([
        ["-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w", "/mnt"],
        ["overlay", "/mnt", "-o", "lowerdir=/a\\:b:/c,uidmapping=0:1000:1:1:100000:65536,gidmapping=0:1000:1"],
        ["-f", "-d", "-olowerdir=/l,squash_to_root,xattr_permissions=2,static_nlink,noacl", "/m"],
        ["-o", "lowerdir=/l,upperdir=/u,workdir=/w,context=\"system_u:object_r:c1,c2\",threaded=4,timeout=0.5", "/m"],
        ["-o", "lowerdir=/l,copyup_sync=full,fsync=0,volatile,ino32_t,writeback=1,redirect_dir=on,plugins=x,,", "--", "/m"],
        ["-h"], ["-V"], ["-o", "lowerdir=", "/m"]]):
    put("fs_options", f"argv{i}", b"\0".join(a.encode() for a in argv))
print("seeds written")
