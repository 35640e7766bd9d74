#!/usr/bin/python3
"""A store holding lazy layers keeps working when it is moved or copied elsewhere (mv to a
bigger disk, cp -a / rsync as a backup), as a store of unpacked layers does, and with a relative --root: each layer's
`lazy` descriptor names its lazy-index and lazy-blob relative to its own directory, so
`strata mount` and `run` of the moved store read the moved blobs. With absolute names the
mount of the moved store failed (the old paths were gone), and a copy read the original's
blobs for as long as the original existed. `verify` stays clean after the move."""
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("fusermount3")
FS = os.environ.get("STRATA_FS", "")
if not os.path.exists("/dev/fuse") or not os.path.exists(FS):
    skip("no /dev/fuse or strata-fs not built")

work = workdir()
mounts = []


def layer_tar(text):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("etc")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        t.addfile(d)
        data = text.encode()
        f = tarfile.TarInfo("etc/moved")
        f.size, f.mode = len(data), 0o644
        t.addfile(f, io.BytesIO(data))
    return buf.getvalue()


def mount_and_read(root, image, cwd=None):
    mnt = os.path.join(work, "mnt-" + os.path.basename(root) + ("-rel" if cwd else ""))
    os.makedirs(mnt)
    r = strata(root, "mount", image, mnt, check=False, cwd=cwd)
    if r.returncode != 0:
        return None, r.stderr.strip()
    mounts.append(mnt)
    try:
        with open(os.path.join(mnt, "etc", "moved")) as f:
            return f.read(), ""
    except OSError as e:
        return None, str(e)
    finally:
        run("fusermount3", "-u", mnt)
        mounts.remove(mnt)


try:
    tar = layer_tar("from the moved store\n")
    layout = os.path.join(work, "img")
    one_layer_layout(layout, gzip.compress(tar), "sha256:" + hashlib.sha256(tar).hexdigest(),
                     "application/vnd.oci.image.layer.v1.tar+gzip")
    old = os.path.join(work, "old-root")
    strata(old, "load", "--lazy", "-q", "-i", layout, "--tag", "moved/img:v1")

    # mv: the old paths are gone.
    new = os.path.join(work, "new-root")
    os.rename(old, new)
    got, err = mount_and_read(new, "moved/img:v1")
    assert got == "from the moved store\n", f"mount of the moved store: {got!r} {err}"
    assert "OK: 1 image(s), 1 layer(s)" in strata(new, "verify").stdout
    # A relative --root: strata-fs runs in overlay2/, where the descriptor is named relative
    # to it as the l/ links are (it was given overlay2's relative path twice over).
    got, err = mount_and_read(os.path.basename(new), "moved/img:v1", cwd=work)
    assert got == "from the moved store\n", f"mount with a relative --root: {got!r} {err}"

    # cp -a, then the original removed: the copy reads its own blobs.
    copy = os.path.join(work, "copy-root")
    run("cp", "-a", new, copy)
    shutil.rmtree(new)
    got, err = mount_and_read(copy, "moved/img:v1")
    assert got == "from the moved store\n", f"mount of the copied store: {got!r} {err}"
    assert "OK: 1 image(s), 1 layer(s)" in strata(copy, "verify").stdout
    print("ok: a moved and a copied store mount their own lazy layers; verify is clean")
finally:
    for m in mounts:
        subprocess.run(["fusermount3", "-u", m], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
