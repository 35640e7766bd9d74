"""A full listing of a merged view, and readable differences between two listings."""

import hashlib
import os
import stat

from .fixture import FIXED_MTIME

PRIVATE_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "user.fuseoverlayfs.",
                          "user.containers.")
MARKER_NAMES = (".wh.",)  # any name starting with this is a marker, never part of a view
RECENT_AFTER = 1_700_000_000  # mtimes at or past this are "recent" (set by an op, not compared)

TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
         stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "chr", stat.S_IFBLK: "blk"}


def is_private_xattr(name):
    return name.startswith(PRIVATE_XATTR_PREFIXES)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()[:16]


def mtime_class(st):
    t = int(st.st_mtime)
    return t if t < RECENT_AFTER else "recent"


def xattrs_of(p):
    out, private = {}, []
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError as e:
        return {"<listxattr>": os.strerror(e.errno)}, []
    for n in sorted(names):
        if is_private_xattr(n):
            private.append(n)
            continue
        try:
            v = os.getxattr(p, n, follow_symlinks=False)
            out[n] = v.hex() if n.startswith(("security.capability", "system.")) else \
                v.decode(errors="backslashreplace")
        except OSError as e:
            out[n] = "<" + os.strerror(e.errno) + ">"
    return out, private


def entry(p, st, content=True):
    t = TYPES.get(stat.S_IFMT(st.st_mode), "?")
    e = {"type": t, "mode": oct(stat.S_IMODE(st.st_mode)), "uid": st.st_uid, "gid": st.st_gid}
    if t != "dir":
        e["nlink"] = st.st_nlink
        e["mtime"] = mtime_class(st)
    if t == "file":
        e["size"] = st.st_size
        if content:
            try:
                e["sha256"] = sha256_file(p)
            except OSError as ex:
                e["sha256"] = "<" + os.strerror(ex.errno) + ">"
    elif t == "symlink":
        e["target"] = os.readlink(p)
    elif t in ("chr", "blk"):
        e["rdev"] = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    xa, private = xattrs_of(p)
    if xa:
        e["xattrs"] = xa
    return e, private


def listing(root, content=True, xattrs=True):
    """{relpath: attrs} for everything under root (root itself is '.'), plus problems found
    that are wrong regardless of the oracle (visible markers / private xattrs)."""
    out, problems = {}, []

    def walk(rel):
        p = os.path.join(root, rel) if rel != "." else root
        try:
            st = os.lstat(p)
        except OSError as ex:
            out[rel] = {"error": os.strerror(ex.errno)}
            return
        e, private = entry(p, st, content)
        if not xattrs:
            e.pop("xattrs", None)
        if private:
            problems.append(f"{rel}: private xattrs visible: {', '.join(private)}")
        out[rel] = e
        if e["type"] == "dir":
            try:
                names = sorted(os.listdir(p))
            except OSError as ex:
                out[rel]["readdir"] = os.strerror(ex.errno)
                return
            for n in names:
                if n.startswith(MARKER_NAMES):
                    problems.append(f"{rel}/{n}: whiteout/opaque marker visible in the view")
                walk(n if rel == "." else rel + "/" + n)

    walk(".")
    return out, problems


def diff_listings(kern, fs, ignore=()):
    """Human-readable lines; empty when equal."""
    lines = []
    for k in sorted(set(kern) | set(fs)):
        if any(k == i or k.startswith(i + "/") for i in ignore):
            continue
        if k not in fs:
            lines.append(f"  missing in fs:   {k}  (kernel: {fmt(kern[k])})")
        elif k not in kern:
            lines.append(f"  extra in fs:     {k}  ({fmt(fs[k])})")
        elif kern[k] != fs[k]:
            a, b = kern[k], fs[k]
            fields = [f for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)]
            for f in fields:
                lines.append(f"  differs:         {k}: {f}: kernel={a.get(f)!r} fs={b.get(f)!r}")
    return lines


def fmt(e):
    return " ".join(f"{k}={v}" for k, v in e.items())


def short(v, n=400):
    r = repr(v)
    return r if len(r) <= n else r[:n] + f"...({len(r)} chars)"


def diff_records(kern, fs):
    lines = []
    for i in range(max(len(kern), len(fs))):
        a = kern[i] if i < len(kern) else None
        b = fs[i] if i < len(fs) else None
        if a != b:
            lines.append(f"  op #{i}: kernel: {a[0] if a else '-'} -> {short(a[1]) if a else '-'}")
            lines.append(f"  {' ' * len(str(i))}     fs:     {b[0] if b else '-'} -> {short(b[1]) if b else '-'}")
    return lines


def mib_chunks(ranges):
    """Data ranges widened to whole MiB chunks and merged."""
    mib = 1 << 20
    out = []
    for start, end in ranges:
        s, e = start // mib * mib, -(-end // mib) * mib
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def data_ranges(path):
    """[(start, end)] of data as SEEK_DATA/SEEK_HOLE report it."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            h = os.lseek(fd, d, os.SEEK_HOLE)
            out.append((d, h))
            off = h
    finally:
        os.close(fd)
    return out
