"""OVERLAYTEST_LAZY_LOWERS=1: strata-fs serves each lower layer of a case from a lazy layer
(a gzip tar of that lower directory, loaded with `strata load --lazy`, its descriptor given as
the lowerdir) while kernel overlayfs reads the directories themselves: a lazy layer must show
the tree the unpacked one does. Whiteouts (char 0/0) and opaque directories are written as the
OCI forms (.wh.NAME, .wh..wh..opq) an image carries. Needs STRATA_BIN (the strata CLI).
Cases that change a lower beside the mount do not apply: the lazy layer is a snapshot."""

import atexit
import gzip
import hashlib
import io
import itertools
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile

# tests/layerstore's helpers, imported only when lazy lowers are asked for (a rootless run
# copies this package elsewhere: OVERLAYTEST_LAYERSTORE_LIB names their directory then).
LAYERSTORE_LIB = os.environ.get("OVERLAYTEST_LAYERSTORE_LIB") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "layerstore")
OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque")
_store = None
_tags = itertools.count()


def enabled():
    return os.environ.get("OVERLAYTEST_LAZY_LOWERS") == "1"


def _xattrs(path):
    out = {}
    for name in os.listxattr(path, follow_symlinks=False):
        if name.startswith(("trusted.overlay.", "user.overlay.", "user.fuseoverlayfs.")):
            continue
        out["SCHILY.xattr." + name] = os.getxattr(path, name, follow_symlinks=False).decode("utf-8", "surrogateescape")
    return out


def _layer_tar(root):
    buf = io.BytesIO()
    links = {}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti = t.gettarinfo(root, ".")  # the layer's root: its owner and mode, as `tar -C DIR .` has it
        ti.pax_headers = _xattrs(root)
        t.addfile(ti)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                p = os.path.join(dirpath, name)
                arc = os.path.relpath(p, root)
                st = os.lstat(p)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    ti = tarfile.TarInfo(os.path.join(os.path.dirname(arc), ".wh." + name))
                    t.addfile(ti, io.BytesIO(b""))
                    continue
                ti = t.gettarinfo(p, arc)
                if ti is None:
                    continue  # a socket: no tar form
                ti.pax_headers = _xattrs(p)
                if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in links:
                        ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, links[key], 0
                        t.addfile(ti)
                        continue
                    links[key] = arc
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        t.addfile(ti, f)
                else:
                    t.addfile(ti)
                if stat.S_ISDIR(st.st_mode) and any(
                        _get(p, x) == b"y" for x in OPAQUE):
                    t.addfile(tarfile.TarInfo(os.path.join(arc, ".wh..wh..opq")), io.BytesIO(b""))
    return buf.getvalue()


def _get(p, name):
    try:
        return os.getxattr(p, name, follow_symlinks=False)
    except OSError:
        return None


def descriptor_for(lower):
    """The lazy descriptor of a layer holding `lower`'s tree (made now: lowers are built first)."""
    global _store
    sys.path.insert(0, LAYERSTORE_LIB)
    from strata_test_lib import image_layers, one_layer_layout  # noqa: E402
    if _store is None:
        _store = tempfile.mkdtemp(prefix="overlaytest-lazy-")
        atexit.register(shutil.rmtree, _store, True)
    tar = _layer_tar(lower)
    n = next(_tags)
    layout = os.path.join(_store, f"img{n}")
    one_layer_layout(layout, gzip.compress(tar, 1), "sha256:" + hashlib.sha256(tar).hexdigest(),
                     "application/vnd.oci.image.layer.v1.tar+gzip")
    store = os.path.join(_store, "store")
    r = subprocess.run([os.environ.get("STRATA_BIN", "strata"), "--root", store, "load", "-q", "--lazy",
                        "--tag", f"lazy/l{n}:1", "-i", layout], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"load --lazy of {lower}: {r.stderr.strip()}")
    (layer,) = image_layers(store, f"lazy/l{n}:1")
    return os.path.join(os.path.dirname(layer), "lazy")
