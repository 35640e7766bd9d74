"""Layer fixtures: a small spec language, built on disk in a chosen marker form.

A layer is a list of entries (F, D, L, H, P, S, DEV, WH, OPQ, X). The same spec is built twice:
in the kernel's form (whiteouts as char 0/0, opaque as trusted.overlay.opaque or, rootless,
user.overlay.opaque) and in an alternate form for the filesystem under test (`.wh.NAME` files,
`.wh..wh..opq`, user.fuseoverlayfs.opaque, user.overlay.opaque), so merged views can be compared.
"""

import os
import socket
import stat

FIXED_MTIME = 1_500_000_000  # every fixture entry gets this mtime; later ones are "recent"

# Marker forms.
WH_CHR = "chr"       # char device 0/0
WH_FILE = "whfile"   # .wh.NAME regular file
OPQ_TRUSTED = "trusted"          # trusted.overlay.opaque=y
OPQ_USER = "user"                # user.overlay.opaque=y
OPQ_FUSEOVL = "fuseoverlayfs"    # user.fuseoverlayfs.opaque=y
OPQ_WHOPQ = "whopq"              # .wh..wh..opq file inside the dir

OPAQUE_XATTR = {OPQ_TRUSTED: "trusted.overlay.opaque", OPQ_USER: "user.overlay.opaque",
                OPQ_FUSEOVL: "user.fuseoverlayfs.opaque"}


class Form:
    def __init__(self, whiteout=WH_CHR, opaque=OPQ_TRUSTED):
        self.whiteout, self.opaque = whiteout, opaque

    def __eq__(self, o):
        return (self.whiteout, self.opaque) == (o.whiteout, o.opaque)

    def __repr__(self):
        return f"whiteout={self.whiteout},opaque={self.opaque}"


class Entry:
    def __init__(self, kind, path, **kw):
        self.kind, self.path, self.kw = kind, path.strip("/"), kw


def F(path, content=b"", mode=0o644, xattrs=None, uid=None, gid=None, size=None, chunks=None,
      mtime=FIXED_MTIME):
    """Regular file. `chunks`: [(offset, bytes)] written into a sparse file of `size` bytes."""
    if isinstance(content, str):
        content = content.encode()
    return Entry("file", path, content=content, mode=mode, xattrs=xattrs or {}, uid=uid, gid=gid,
                 size=size, chunks=chunks, mtime=mtime)


def D(path, mode=0o755, xattrs=None, uid=None, gid=None, opaque=False):
    return Entry("dir", path, mode=mode, xattrs=xattrs or {}, uid=uid, gid=gid, opaque=opaque)


def L(path, target, uid=None, gid=None):
    return Entry("symlink", path, target=target, uid=uid, gid=gid)


def H(path, existing):
    return Entry("hardlink", path, existing=existing.strip("/"))


def P(path, mode=0o644):
    return Entry("fifo", path, mode=mode)


def S(path, mode=0o755):
    return Entry("socket", path, mode=mode)


def DEV(path, kind="c", major=1, minor=3, mode=0o666):
    return Entry("dev", path, devkind=kind, major=major, minor=minor, mode=mode)


def WH(path):
    return Entry("whiteout", path)


def OPQ(path):
    """Make directory `path` (created if missing) opaque."""
    return Entry("opaque", path)


def X(path, name, value):
    return Entry("xattr", path, name=name, value=value if isinstance(value, bytes) else value.encode())


def _parent(root, rel):
    par = os.path.dirname(os.path.join(root, rel))
    os.makedirs(par, exist_ok=True)
    return par


def build_layer(root, entries, form, owner=None):
    """Create `entries` under `root` in marker form `form`. owner=(uid, gid) default for all."""
    os.makedirs(root, exist_ok=True)
    created_dirs = []
    for e in entries:
        p = os.path.join(root, e.path)
        kw = e.kw
        if e.kind != "dir":
            _parent(root, e.path)
        if e.kind == "file":
            with open(p, "wb") as f:
                if kw["chunks"] is not None:
                    f.truncate(kw["size"])
                    for off, data in kw["chunks"]:
                        f.seek(off)
                        f.write(data)
                else:
                    f.write(kw["content"])
                    if kw["size"] is not None:
                        f.truncate(kw["size"])
            os.chmod(p, kw["mode"])
            _xattrs(p, kw["xattrs"])
        elif e.kind == "dir":
            os.makedirs(p, exist_ok=True)
            os.chmod(p, kw["mode"])
            _xattrs(p, kw["xattrs"])
            if kw["opaque"]:
                _opaque(p, form)
        elif e.kind == "symlink":
            os.symlink(kw["target"], p)
        elif e.kind == "hardlink":
            os.link(os.path.join(root, kw["existing"]), p)
        elif e.kind == "fifo":
            os.mkfifo(p, kw["mode"])
        elif e.kind == "socket":
            s = socket.socket(socket.AF_UNIX)
            s.bind(p)
            s.close()
            os.chmod(p, kw["mode"])
        elif e.kind == "dev":
            t = stat.S_IFCHR if kw["devkind"] == "c" else stat.S_IFBLK
            os.mknod(p, t | kw["mode"], os.makedev(kw["major"], kw["minor"]))
        elif e.kind == "whiteout":
            _whiteout(root, e.path, form)
        elif e.kind == "opaque":
            os.makedirs(p, exist_ok=True)
            _opaque(p, form)
        elif e.kind == "xattr":
            os.setxattr(p, kw["name"], kw["value"], follow_symlinks=False)
        else:
            raise ValueError(e.kind)
        if e.kind in ("file", "dir", "symlink") and (kw.get("uid") is not None or kw.get("gid") is not None):
            os.chown(p, kw.get("uid") if kw.get("uid") is not None else -1,
                     kw.get("gid") if kw.get("gid") is not None else -1, follow_symlinks=False)
            if e.kind != "symlink" and kw["mode"] & 0o6000:
                os.chmod(p, kw["mode"])  # the chown dropped the set-id bits
        if e.kind == "dir":
            created_dirs.append(p)
    if owner is not None:
        _chown_tree(root, owner)
    _fix_times(root)


def _xattrs(p, xattrs):
    for k, v in sorted(xattrs.items()):
        os.setxattr(p, k, v if isinstance(v, bytes) else v.encode(), follow_symlinks=False)


def _whiteout(root, rel, form):
    if form.whiteout == WH_CHR:
        os.mknod(os.path.join(root, rel), stat.S_IFCHR | 0o600, os.makedev(0, 0))
    else:
        d, n = os.path.split(rel)
        open(os.path.join(root, d, ".wh." + n), "wb").close()


def _opaque(p, form):
    if form.opaque == OPQ_WHOPQ:
        open(os.path.join(p, ".wh..wh..opq"), "wb").close()
    else:
        os.setxattr(p, OPAQUE_XATTR[form.opaque], b"y")


def _chown_tree(root, owner):
    for dp, dns, fns in os.walk(root):
        for n in [dp] + [os.path.join(dp, x) for x in dns + fns]:
            st = os.lstat(n)
            if st.st_uid == 0 and st.st_gid == 0:
                os.chown(n, owner[0], owner[1], follow_symlinks=False)


def _fix_times(root):
    for dp, dns, fns in os.walk(root, topdown=False):
        for n in [os.path.join(dp, x) for x in dns + fns] + [dp]:
            try:
                os.utime(n, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
            except OSError:
                pass


def convert_markers(root, form):
    """Rewrite alternate markers in a lower dir into `form` (for the kernel re-mount check)."""
    for dp, dns, fns in os.walk(root):
        for n in list(fns):
            p = os.path.join(dp, n)
            if n == ".wh..wh..opq":
                os.unlink(p)
                _opaque(dp, form)
            elif n.startswith(".wh.") and len(n) > 4:
                os.unlink(p)
                _whiteout(root, os.path.relpath(os.path.join(dp, n[4:]), root), form)
        for n in dns:
            p = os.path.join(dp, n)
            names = os.listxattr(p, follow_symlinks=False)
            for x in OPAQUE_XATTR.values():
                if x in names and x != OPAQUE_XATTR.get(form.opaque):
                    os.removexattr(p, x, follow_symlinks=False)
                    _opaque(p, form)
    _fix_times(root)


def build_stack(base, layers, form, upper=None, owner=None, upper_form=None):
    """layers: top-most first. Returns (lower dirs, upper dir, work dir) under `base`.
    The upper's own markers use `upper_form` (default `form`)."""
    lowers = []
    for i, ents in enumerate(layers):
        d = os.path.join(base, f"l{i}")
        build_layer(d, ents, form, owner)
        lowers.append(d)
    up = os.path.join(base, "upper")
    build_layer(up, upper or [], upper_form or form, owner)
    work = os.path.join(base, "work")
    os.makedirs(work)
    if owner is not None:
        os.chown(work, *owner)
        os.chown(base, *owner)
    return lowers, up, work
