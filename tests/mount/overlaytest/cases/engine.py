"""Engine regressions: open files whose name is gone, directory renames under open files and
hard links, nlink of hard-linked special files and after rename-over, paths past PATH_MAX below
the mount root, override_stat across copy-up, reused upper inode numbers, more than 64 lower
layers, rootless chown/mode-0 creation, and the two deliberate differences (README.md) of an
open file whose name is gone. Kernel overlayfs (index=on, redirect_dir=on as root)
is the oracle wherever it has the behaviour; the fs-only cases say which documented behaviour
they assert instead."""

import errno
import os
import stat
import time

from .. import fixture as fx
from .. import view
from ..core import case
from ..env import Skip
from ..fixture import D, F, H, L, OPQ, P, WH, X
from ..script import Ops

ALL_MODES = ("root", "rootless", "userns")
O_DIR = os.O_RDONLY | os.O_DIRECTORY


# ---- helpers on top of Ops: ops through an open fd, recorded like every other op ----------------

def fd_open(t, rel, flags, label=None):
    """Opens rel and keeps the fd in t.state[rel]; records the result of the open only."""
    def f():
        t.state[rel] = os.open(t.p(rel), flags, 0o644)  # the number itself is not recorded
    t.state[rel] = None
    t.do(label or f"open({rel},{flags:#o})", f)
    return t.state[rel]


def fd_close(t, rel):
    fd = t.state.pop(rel, None)
    if fd is not None:
        os.close(fd)


def fd_stat(t, rel, what, fields=("type", "mode", "size", "nlink")):
    fd = t.state.get(rel)

    def f():
        st = os.fstat(fd)
        v = {"type": view.TYPES.get(stat.S_IFMT(st.st_mode)), "mode": oct(stat.S_IMODE(st.st_mode)),
             "size": st.st_size if stat.S_ISREG(st.st_mode) else None, "nlink": st.st_nlink,
             "nlink<=1": st.st_nlink <= 1, "uid": st.st_uid, "gid": st.st_gid}
        return {k: v[k] for k in fields}
    return t.do(f"fstat(fd of {rel}) {what}", f) if fd is not None else None


def fd_io(t, rel, what, writable=True):
    """pread, lseek(SEEK_END) and, on a writable fd, pwrite/ftruncate/fchmod/fsync, each checked
    through fstat/pread on the same fd."""
    fd = t.state.get(rel)
    if fd is None:
        return
    t.do(f"pread(fd of {rel}) {what}", lambda: os.pread(fd, 200, 0).decode(errors="replace"))
    t.do(f"lseek(fd of {rel},0,SEEK_END) {what}", os.lseek, fd, 0, os.SEEK_END)
    if not writable:
        return
    t.do(f"pwrite(fd of {rel},+,4) {what}", os.pwrite, fd, b"+written through the fd+", 4)
    t.do(f"fsync(fd of {rel}) {what}", os.fsync, fd)
    t.do(f"ftruncate(fd of {rel},20) {what}", os.ftruncate, fd, 20)
    t.do(f"fchmod(fd of {rel},0600) {what}", os.fchmod, fd, 0o600)
    fd_stat(t, rel, what + ", after pwrite+ftruncate+fchmod")
    t.do(f"pread(fd of {rel}) {what}, after ftruncate", lambda: os.pread(fd, 200, 0).decode(errors="replace"))
    t.do(f"lseek(fd of {rel},0,SEEK_END) {what}, after ftruncate", os.lseek, fd, 0, os.SEEK_END)


def link_nofollow(t, a, b):
    """link(2) itself (no AT_SYMLINK_FOLLOW): a hard link to a symlink, not to its target."""
    return t.do(f"link({a},{b})", os.link, t.p(a), t.p(b), follow_symlinks=False)


def stat_all(t, names, fields=("type", "mode", "uid", "gid", "nlink")):
    for n in names:
        t.stat(n, fields=fields)


# ---- 1. open files whose name is gone ----------------------------------------------------------

def unlinked_layers():
    lower = [F("lf_rw", "lower file opened O_RDWR\n"), F("lf_ro", "lower file opened O_RDONLY\n"),
             F("lf_rep", "lower file renamed over (rw)\n"), F("lf_rep_ro", "lower, renamed over (ro)\n"),
             D("ld"), F("keep", "k")]
    upper = [F("uf", "upper file opened O_RDWR\n"), F("uf_rep", "upper file renamed over\n"), D("ud")]
    return [lower], upper


def unlinked_script(t):
    # Upper file, and a lower file copied up by its O_RDWR open: everything works on the fd and
    # fstat shows nlink 0 (kernel).
    for rel in ("uf", "lf_rw"):
        fd_open(t, rel, os.O_RDWR)
        t.unlink(rel)
        t.stat(rel)                                          # ENOENT
        fd_stat(t, rel, "after unlink")
        fd_io(t, rel, "after unlink")
        fd_close(t, rel)
    # A lower file open read-only (never copied up): fstat/pread/lseek still answer. The kernel
    # stats the lower inode there, so its nlink reads 1; only "not more than 1" is compared.
    fd_open(t, "lf_ro", os.O_RDONLY)
    t.unlink("lf_ro")
    fd_stat(t, "lf_ro", "after unlink", fields=("type", "mode", "size", "nlink<=1"))
    fd_io(t, "lf_ro", "after unlink", writable=False)
    fd_close(t, "lf_ro")
    # rename() over the name of an open file: the old fd keeps the old (now nameless) file.
    for rel, src in (("uf_rep", "new_for_uf"), ("lf_rep", "new_for_lf")):
        fd_open(t, rel, os.O_RDWR)
        t.write(src, f"replacement of {rel}\n")
        t.rename(src, rel)
        fd_stat(t, rel, "after rename over it")
        fd_io(t, rel, "after rename over it")
        fd_close(t, rel)
        t.read(rel)
    fd_open(t, "lf_rep_ro", os.O_RDONLY)
    t.write("new_for_ro", "replacement of lf_rep_ro\n")
    t.rename("new_for_ro", "lf_rep_ro")
    fd_stat(t, "lf_rep_ro", "after rename over it", fields=("type", "mode", "size", "nlink<=1"))
    fd_io(t, "lf_rep_ro", "after rename over it", writable=False)
    fd_close(t, "lf_rep_ro")
    t.read("lf_rep_ro")
    # Directories: fstat of an open dir after rmdir (nlink 0 for an upper dir; a lower-only
    # dir's nlink is the lower's, so only type and mode are compared there).
    t.mkdir("nd")
    for rel, fields in (("nd", ("type", "mode", "nlink")), ("ud", ("type", "mode", "nlink")),
                        ("ld", ("type", "mode"))):
        fd_open(t, rel, O_DIR)
        t.rmdir(rel)
        fd_stat(t, rel, "after rmdir", fields=fields)
        fd_close(t, rel)


@case("open-unlinked", "engine", ALL_MODES)
def open_unlinked(ctx):
    """After unlink, rename-over or rmdir the open fd still works: fstat (nlink 0), pread,
    pwrite, ftruncate, fchmod, lseek(SEEK_END), fsync; upper files and lower files."""
    layers, upper = unlinked_layers()
    ctx.differential("unlinked", layers, unlinked_script, upper=upper, share_lowers=True)


# ---- 2. rename of a directory holding an open file -----------------------------------------------

def dir_open_layers():
    lower = [F("m/a", "lower m/a\n"), F("m/b", "lower m/b\n"), F("p/x", "lower-only dir p\n")]
    upper = [F("m/u", "upper m/u\n"), F("ud/f", "upper-only ud/f\n"), F("ud2/sub/f", "ud2/sub/f\n")]
    return [lower], upper


def dir_open_script(mode):
    def held(t, rel, data):
        fd = t.state.get(rel)
        if fd is not None:
            t.do(f"write(fd of {rel}, opened before the rename)", os.write, fd, data.encode())
            t.do(f"fsync(fd of {rel})", os.fsync, fd)
            fd_close(t, rel)

    def s(t):
        A = os.O_RDWR | os.O_APPEND
        # Pure upper dirs: one made through the mount, one from the fixture, one an ancestor.
        t.mkdir("nu")
        fd_open(t, "nu/f", A | os.O_CREAT, "create+open(nu/f)")
        fd_open(t, "ud/f", A)
        fd_open(t, "ud2/sub/f", A)
        t.rename("nu", "nu2")
        t.rename("ud", "ud_moved")
        t.rename("ud2", "ud2_moved")
        held(t, "nu/f", "after rename\n")
        held(t, "ud/f", "after rename\n")
        held(t, "ud2/sub/f", "after rename of an ancestor\n")
        for rel in ("nu2/f", "ud_moved/f", "ud2_moved/sub/f"):
            t.read(rel)
        if mode != "root":
            return  # userxattr kernel mounts can't rename dirs a lower layer contributes to
        # Dirs a lower layer contributes to: merged (lower + upper) and lower-only.
        fd_open(t, "m/u", A)                  # upper file in a merged dir
        fd_open(t, "m/a", A)                  # lower file, copied up by the open
        fd_open(t, "m/new", A | os.O_CREAT, "create+open(m/new)")
        fd_open(t, "p/x", A)
        t.rename("m", "m2")
        t.rename("p", "p2")
        for rel in ("m/u", "m/a", "m/new", "p/x"):
            held(t, rel, "after rename\n")
        for rel in ("m2/u", "m2/a", "m2/new", "m2/b", "p2/x"):
            t.read(rel)
    return s


@case("dir-rename-open-file", "engine", ALL_MODES)
def dir_rename_open_file(ctx):
    """Writes through a file opened before its directory was renamed reach the file: merged and
    lower-only dirs (root: kernel redirect_dir=on oracle), pure upper dirs (all modes)."""
    layers, upper = dir_open_layers()
    ctx.differential("diropen", layers, dir_open_script(ctx.mode), upper=upper, share_lowers=True,
                     remount_fs=True)


# ---- 3. directory rename vs hard links -------------------------------------------------------------

def dir_hl_layers():
    top = [F("c/top_only", "c has a top layer part too\n"), F("c2/top", "t\n")]
    bottom = [F("hl-src", "linked\n"), H("c/deep", "hl-src"),
              F("hl2", "chmod me\n"), H("f/b", "hl2"),
              F("g/one", "control pair\n"), H("h/two", "g/one"),
              F("c2/lowerfile", "c2 is a lower dir\n")]
    return [top, bottom]


def dir_hl_script(t):
    t.write("h/two", "+\n", "a")               # control: no rename
    t.read("g/one")
    # A lower hard link with one name inside a renamed lower dir.
    t.rename("c", "e")
    t.write("e/deep", "+\n", "a")
    t.read("hl-src")
    t.read("e/deep")
    stat_all(t, ["hl-src", "e/deep"], fields=("size", "nlink"))
    # The same, seen through chmod.
    t.rename("f", "f2")
    t.chmod("f2/b", 0o4755)
    stat_all(t, ["f2/b", "hl2"], fields=("mode", "nlink"))
    # A hard link made entirely in the upper, one name inside a lower dir then renamed.
    t.write("c2/new", "new\n")
    t.link("c2/new", "top")
    t.stat("top", fields=("size", "nlink"))
    t.rename("c2", "e2")
    t.write("e2/new", "+\n", "a")
    t.read("top")
    stat_all(t, ["top", "e2/new"], fields=("size", "nlink"))
    t.chmod("top", 0o600)
    t.stat("e2/new", fields=("mode",))


@case("dir-rename-hardlinks", "engine", ("root",))
def dir_rename_hardlinks(ctx):
    """Renaming a dir a lower layer contributes to keeps hard links whole (lower links and links
    made in the upper): appends and chmods show through every name, also after remount (kernel
    oracle: index=on, redirect_dir=on)."""
    ctx.differential("dirhl", dir_hl_layers(), dir_hl_script, share_lowers=True, remount_fs=True)


# ---- 5. hard-linked fifos, symlinks, devices: nlink/mode/owner through every name --------------

def special_layers():
    return [[P("lp1", 0o644), H("lp2", "lp1"), D("t")]]


def special_script(mode):
    root = mode == "root"

    def chain(t, a, b, c, chmod_to=None):
        stat_all(t, [a])
        link_nofollow(t, a, b)
        stat_all(t, [a, b])
        link_nofollow(t, b, c)
        stat_all(t, [a, b, c])
        if chmod_to is not None:
            t.chmod(b, chmod_to)
            stat_all(t, [a, b, c])
        if root:
            t.chown(c, 1234, 5678)
            stat_all(t, [a, b, c])
        t.unlink(a)
        stat_all(t, [b, c])
        link_nofollow(t, c, a)
        stat_all(t, [a, b, c])

    def s(t):
        t.mknod("t/fa", "fifo", 0o644)
        chain(t, "t/fa", "t/fb", "t/fc", chmod_to=0o201)
        t.symlink("some/target", "t/sa")
        chain(t, "t/sa", "t/sb", "t/sc")
        t.mknod("t/ka", "sock", 0o755)
        chain(t, "t/ka", "t/kb", "t/kc", chmod_to=0o700)
        if root:
            t.mknod("t/da", "chr", 0o600, (1, 3))
            chain(t, "t/da", "t/db", "t/dc", chmod_to=0o640)
            t.mknod("t/ba", "blk", 0o600, (7, 0))
            chain(t, "t/ba", "t/bb", "t/bc", chmod_to=0o660)
            # A hard-linked fifo from a lower layer (kernel: index=on copies it up as one).
            stat_all(t, ["lp1", "lp2"])
            t.chmod("lp2", 0o600)
            stat_all(t, ["lp1", "lp2"])
            link_nofollow(t, "lp1", "lp3")
            stat_all(t, ["lp1", "lp2", "lp3"])
    return s


@case("hardlink-special-files", "engine", ALL_MODES)
def hardlink_special_files(ctx):
    """Hard-linked fifos, symlinks, sockets and device nodes: nlink, mode and owner read the same
    through every name right after each link/chmod/chown/unlink (pjdfstest-style)."""
    ctx.differential("special", special_layers(), special_script(ctx.mode), share_lowers=True,
                     remount_fs=True)


# ---- 6. rename over one name of a hard-linked file ---------------------------------------------

def rename_over_layers():
    return [[F("hl-src", "linked\n"), H("a/a", "hl-src"), H("sub/c/b", "hl-src"),
             F("other", "other\n"), F("p1", "pair\n"), H("p2", "p1")]]


def rename_over_script(mode):
    def s(t):
        # Links made in the upper.
        t.write("u1", "upper\n")
        t.link("u1", "u2")
        t.link("u1", "u3")
        t.stat("u1", fields=("nlink",))
        t.write("x1", "x1\n")
        t.rename("x1", "u2")
        stat_all(t, ["u1", "u3"], fields=("nlink",))
        t.write("x2", "x2\n")
        t.rename("x2", "u3")
        t.stat("u1", fields=("nlink",))
        if mode != "root":
            return  # no index with userxattr: the kernel splits lower links itself
        # Lower links, never copied up: rename a lower file, then an upper one, over two names.
        t.stat("a/a", fields=("nlink",))
        t.rename("other", "sub/c/b")
        stat_all(t, ["a/a", "hl-src"], fields=("nlink",))
        t.write("new", "x\n")
        t.rename("new", "hl-src")
        t.stat("a/a", fields=("nlink",))
        # A lower pair copied up first.
        t.write("p1", "+\n", "a")
        t.write("y", "y\n")
        t.rename("y", "p2")
        t.stat("p1", fields=("nlink", "size"))
    return s


@case("rename-over-hardlink", "engine", ALL_MODES)
def rename_over_hardlink(ctx):
    """rename() over one name of a hard-linked file lowers its link count (3, 2, 1), also after
    remount: upper links (all modes), lower links (root, kernel index=on oracle)."""
    ctx.differential("renover", rename_over_layers(), rename_over_script(ctx.mode),
                     share_lowers=True, remount_fs=True)


# ---- 7. paths deeper than PATH_MAX below the mount root -------------------------------------------

SEG = "d" * 199      # 20 levels of these: 4000 bytes below the mount root
LEVELS = 20
DEEP_NAME = "n" * 100  # one more name there: 4101 bytes, past PATH_MAX (4096)


def deep_script(t):
    """Built with mkdirat/openat one level at a time: the full path does not fit in PATH_MAX,
    so every op below is relative to a dir fd."""
    fds = []

    def at(label, fn):
        return t.do(label, fn)

    try:
        t.write("short", "moved deep\n")
        t.write("short2", "second\n")
        top = os.open(t.p("."), O_DIR)
        fds.append(top)
        for i in range(1, LEVELS + 1):
            parent = fds[-1]
            at(f"mkdirat(level {i})", lambda: os.mkdir(SEG, 0o755, dir_fd=parent))
            at(f"openat(level {i})", lambda: fds.append(os.open(SEG, O_DIR, dir_fd=parent)))
            if len(fds) != i + 1:
                return
        deep = fds[-1]
        at("fstatat(deep/<missing 101-char name>)",
           lambda: os.stat(DEEP_NAME + "x", dir_fd=deep, follow_symlinks=False) and "exists")
        at("unlinkat(deep/<missing 101-char name>)", lambda: os.unlink(DEEP_NAME + "x", dir_fd=deep))
        at("mkdirat(deep/<missing>/x)", lambda: os.mkdir(DEEP_NAME + "x/x", dir_fd=deep))

        def create():
            fd = os.open(DEEP_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=deep)
            try:
                return os.write(fd, b"deep file\n")
            finally:
                os.close(fd)
        at("create(deep/<100-char name>)", create)
        at("fstatat(deep/<100-char name>)", lambda: os.stat(DEEP_NAME, dir_fd=deep).st_size)

        def read(name):
            fd = os.open(name, os.O_RDONLY, dir_fd=deep)
            try:
                return os.read(fd, 100).decode()
            finally:
                os.close(fd)
        at("read(deep/<100-char name>)", lambda: read(DEEP_NAME))
        # mv short <deep-name>: a rename from the root into the deep dir, and over a file there
        at("renameat(short, deep/<100-char name>m)",
           lambda: os.rename("short", DEEP_NAME + "m", src_dir_fd=top, dst_dir_fd=deep))
        at("read(deep/<100-char name>m)", lambda: read(DEEP_NAME + "m"))
        at("renameat(short2, deep/<100-char name>) over a file",
           lambda: os.rename("short2", DEEP_NAME, src_dir_fd=top, dst_dir_fd=deep))
        at("read(deep/<100-char name>)", lambda: read(DEEP_NAME))
        at("mkdirat(deep/sub)", lambda: os.mkdir("sub", 0o755, dir_fd=deep))
        at("renameat(deep/<100-char name>m, deep/sub/m)",
           lambda: os.rename(DEEP_NAME + "m", "sub/m", src_dir_fd=deep, dst_dir_fd=deep))
        at("fstatat(deep/sub/m)", lambda: os.stat("sub/m", dir_fd=deep).st_size)
        at("listdir(deep)", lambda: sorted(n[:8] + f"..({len(n)})" for n in os.listdir(deep)))
        # Back up to the root, then take the deep tree down again (the listings compare the rest).
        at("renameat(deep/sub/m, back)", lambda: os.rename("sub/m", "back", src_dir_fd=deep, dst_dir_fd=top))
        at("unlinkat(deep/<100-char name>)", lambda: os.unlink(DEEP_NAME, dir_fd=deep))
        at("rmdirat(deep/sub)", lambda: os.rmdir("sub", dir_fd=deep))
        for i in range(LEVELS, 0, -1):
            parent = fds[i - 1]
            at(f"rmdirat(level {i})", lambda: os.rmdir(SEG, dir_fd=parent))
    finally:
        for fd in fds:
            os.close(fd)


@case("deep-paths", "engine", ALL_MODES)
def deep_paths(ctx):
    """More than 4095 bytes below the mount root: lookups work (ENOENT for missing names, not
    ENAMETOOLONG), create/read/rename into and out of such dirs work."""
    ctx.differential("deep", [[F("lowerfile", "l")]], deep_script, share_lowers=True)


# ---- 8. fs-only: override_stat across copy-up, private names, reused inodes, >64 lowers -----------

OVR = "user.fuseoverlayfs.override_stat"


@case("override-stat-copyup", "engine", ("root", "rootless"))
def override_stat_copyup(ctx):
    """fs only (no kernel equivalent; fuse-overlayfs semantics): with xattr_permissions=2 the
    owner and mode kept in user.fuseoverlayfs.override_stat (or user.containers.override_stat)
    are what stat shows, and they stay so after the file or dir is copied up, and after remount."""
    base = ctx.path("ovrcopy")
    # Rootless, the shown owner must stay us (the fs checks access against what it shows), so
    # there only the group and mode tell the override from the file's own.
    u1, u2 = (1234, 4321) if ctx.mode == "root" else (os.getuid(), os.getuid())
    layer = [F("suid", "s\n", mode=0o644), X("suid", OVR, f"{u1}:5678:04755"),
             F("meta", "m\n", mode=0o644), X("meta", OVR, f"{u1}:5678:0640"),
             F("cont", "c\n", mode=0o644), X("cont", "user.containers.override_stat", f"{u2}:8765:02750"),
             D("odir"), X("odir", OVR, f"{u1}:5678:0750"), F("odir/inner", "i\n")]
    lowers, up, work = fx.build_stack(base, [layer], ctx.kernel_form)
    mnt = os.path.join(base, "mnt")
    want = {"suid": (u1, 5678, 0o104755), "meta": (u1, 5678, 0o100640),
            "cont": (u2, 8765, 0o102750), "odir": (u1, 5678, 0o40750)}

    def shown(m, p):
        st = os.lstat(os.path.join(m.path, p))
        return st.st_uid, st.st_gid, st.st_mode

    def fmt(v):
        return f"{v[0]}:{v[1]} {oct(v[2])}"

    m = ctx.mount_fs(lowers, up, work, mnt, opts="xattr_permissions=2")
    for p, w in want.items():
        if shown(m, p) != w:
            ctx.fail(f"{p} before copy-up shows {fmt(shown(m, p))}, want {fmt(w)} (the lower's "
                     f"override_stat is not read: nothing below can be judged)")
            return
    t = Ops(m.path, ctx.verbose, "fs")
    t.open_flags("suid", os.O_WRONLY, "open(suid,O_WRONLY)")     # data copy-up, nothing written
    t.open_flags("cont", os.O_WRONLY, "open(cont,O_WRONLY)")
    t.setxattr("meta", "user.other", "x")                         # metadata copy-up
    t.create("odir/new")                                           # copies up the parent dir
    t.write("odir/inner", "+", "a")
    bad = [f"{lbl} -> {r}" for lbl, r in t.rec if r[0] == "err"]
    ctx.check(not bad, f"ops failed: {bad}")
    for p, w in want.items():
        ctx.check(os.path.lexists(os.path.join(up, p)), f"{p} was not copied up (test premise)")
        got = shown(m, p)
        ctx.check(got == w, f"{p} after copy-up shows {fmt(got)}, want {fmt(w)}")
    ctx.unmount(m)
    m = ctx.mount_fs(lowers, up, work, mnt, opts="xattr_permissions=2")
    for p, w in want.items():
        got = shown(m, p)
        ctx.check(got == w, f"{p} after copy-up and remount shows {fmt(got)}, want {fmt(w)}")


SEC_OVR = "security.fuseoverlayfs.override_stat"


@case("override-stat-private", "engine", ("root",))
def override_stat_private(ctx):
    """fs only: security.fuseoverlayfs.override_stat (fuse-overlayfs's xattr_permissions=1 store)
    is overlay-private: never listed or readable through the mount, with xattr_permissions=0
    or 1, before and after copy-up."""
    ctx.require_root()
    for opts in ("", "xattr_permissions=1"):
        tag = f"xattr_permissions={opts[-1] if opts else '0'}"
        base = ctx.path("secovr" + (opts[-1] if opts else "0"))
        layer = [F("f", "x", xattrs={"user.public": "p"}), X("f", SEC_OVR, "0:0:0644"),
                 D("d", xattrs={"user.public": "p"}), X("d", SEC_OVR, "0:0:0755"),
                 F("g", "g", xattrs={"user.public": "p"}), X("g", SEC_OVR, "0:0:0644")]
        lowers, up, work = fx.build_stack(base, [layer], ctx.kernel_form)
        m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"), opts=opts)
        t = Ops(m.path, ctx.verbose, "fs")
        t.write("g", "+", "a")
        for p in ("f", "d", "g"):
            names = os.listxattr(t.p(p), follow_symlinks=False)
            ctx.check(SEC_OVR not in names, f"[{tag}] {p}: listxattr shows {SEC_OVR}: {names}")
            try:
                v = os.getxattr(t.p(p), SEC_OVR, follow_symlinks=False)
                ctx.fail(f"[{tag}] {p}: getxattr({SEC_OVR}) through the mount gave {v!r}")
            except OSError:
                pass
        ctx.unmount(m)


@case("reused-upper-ino", "engine", ALL_MODES)
def reused_upper_ino(ctx):
    """fs only (the kernel's numbers differ run to run): a file created on an upper inode number
    the upper fs reused from a deleted copied-up file shows its own st_ino (as kernel overlayfs
    does for a pure upper file when all layers share one fs: the upper's number), never the
    deleted file's (the lower origin's)."""
    base = ctx.path("reuse")
    lowers, up, work = fx.build_stack(base, [[F("lf", "lower\n")]], ctx.kernel_form)
    if os.lstat(lowers[0]).st_dev != os.lstat(up).st_dev:
        raise Skip("lower and upper on different filesystems here")
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"))
    mp = lambda p: os.path.join(m.path, p)  # noqa: E731
    lower_ino = os.lstat(os.path.join(lowers[0], "lf")).st_ino
    shown = os.lstat(mp("lf")).st_ino
    ctx.check(shown == lower_ino, f"lf shows st_ino {shown}, want the lower's {lower_ino}")
    with open(mp("lf"), "a") as f:
        f.write("copied up\n")
    gone_shown = os.lstat(mp("lf")).st_ino
    gone_upper = os.lstat(os.path.join(up, "lf")).st_ino
    os.unlink(mp("lf"))
    for i in range(200):
        if i:
            time.sleep(0.02)  # lets a FORGET of the deleted node reach the daemon; no threshold
        n = f"new{i}"
        with open(mp(n), "w") as f:
            f.write(n)
        upper_ino = os.lstat(os.path.join(up, n)).st_ino
        if upper_ino != gone_upper:
            continue
        got = os.lstat(mp(n)).st_ino
        ctx.log(f"{n} reuses upper ino {upper_ino} after {i + 1} creates; shows {got}")
        ctx.check(got != gone_shown,
                  f"{n} (upper ino {upper_ino}, reused from deleted lf) shows the deleted lf's "
                  f"st_ino {gone_shown}")
        ctx.check(got == upper_ino, f"{n} shows st_ino {got}, want the upper's {upper_ino}")
        return
    raise Skip(f"the upper fs did not reuse inode {gone_upper} in 200 creates")


NLOWERS = 100


def many_layers():
    layers = [[F(f"d/f{i}", f"layer {i}\n")] for i in range(NLOWERS)]
    layers[0] += [F("top", "t\n")]
    layers[66] += [WH("d/f90")]                   # hides d/f90 of layer 90
    layers[70] += [WH("x"), F("w70", "70\n")]     # hides x of layer 80
    layers[75] += [OPQ("o"), F("o/keep", "k\n")]  # opaque: o/gone of layer 85 hidden
    layers[80] += [F("x", "layer 80 x\n")]
    layers[85] += [F("o/gone", "g\n")]
    layers[95] += [F("z", "layer 95 z\n"), F("y", "y\n")]
    layers[64] += [WH("y")]
    layers[63] += [F("y", "layer 63 y shadows\n")]
    return layers


def many_script(t):
    for p in ("x", "d/f90", "o/gone", "y", "z", "d/f89", "d/f99", "w70", "o/keep"):
        t.read(p)
    t.listdir(".")
    t.listdir("d")
    t.listdir("o")
    t.write("z", "+\n", "a")   # copy-up from layer 95
    t.read("z")


@case("many-lowers", "engine", ALL_MODES)
def many_lowers(ctx):
    """100 lower layers: whiteouts (.wh.NAME) and opaque dirs below layer 64 still hide names of
    deeper layers (a whiteout in layer 70 hides x of layer 80). Kernel oracle, mounted with
    lower paths relative to the fixture dir (the legacy mount data is one page)."""
    form = fx.Form(fx.WH_FILE, fx.OPQ_WHOPQ)
    layers = many_layers()
    base, kd, fd = ctx.stacks("many", layers, fs_form=form)
    cwd = os.getcwd()
    kbase = os.path.join(base, "k")
    os.chdir(kbase)
    try:
        k = ctx.mount_kernel([os.path.relpath(p, kbase) for p in kd[0]], kd[1], kd[2],
                             os.path.join(kbase, "mnt"))
    finally:
        os.chdir(cwd)
    f = ctx.mount_fs(*fd, os.path.join(base, "f", "mnt"))
    ko, fo = Ops(k.path, ctx.verbose, "kernel"), Ops(f.path, ctx.verbose, "fs")
    ctx._run_script(many_script, ko)
    ctx._run_script(many_script, fo)
    ctx._report("many", "op results", view.diff_records(ko.rec, fo.rec))
    kl, fl = view.listing(k.path)[0], view.listing(f.path)
    ctx._report("many", "view after ops", view.diff_listings(kl, fl[0]))
    for pr in fl[1]:
        ctx.fail(f"[many] {pr}")
    hidden = [p for p in ("x", "d/f90", "o/gone") if os.path.lexists(os.path.join(f.path, p))]
    ctx.check(not hidden, f"names hidden by whiteouts/opaque dirs in layers 66-75 show: {hidden}")


# ---- 9. fs-only: the two deliberate differences of an open file whose name is gone -------------
# README.md, "Deliberate differences from kernel overlayfs". The random group accepts both only
# against the kernel's answers (randomops._deliberate); these assert strata's side directly.

GONE_XATTR = "user.strata_nameless"


def _upper_files_with(up, name):
    """Upper paths (regular files) carrying xattr `name`."""
    out = []
    for d, dirs, files in os.walk(up):
        for n in files:
            p = os.path.join(d, n)
            try:
                if stat.S_ISREG(os.lstat(p).st_mode) and name in os.listxattr(p, follow_symlinks=False):
                    out.append(os.path.relpath(p, up))
            except OSError:
                pass
    return out


def _errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def _whiteout_or_absent(up, rel):
    """The upper has nothing under rel but (at most) a whiteout in either form."""
    p = os.path.join(up, rel)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return True
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


@case("nameless-lower-fd-change", "engine", ALL_MODES)
def nameless_lower_fd_change(ctx):
    """fs only (README deliberate difference "A lower file whose name is gone"; the kernel
    answers EEXIST): a lower file opened O_RDONLY whose name then goes (unlink; another file
    renamed over it; also in a lower dir) is still changed by fchmod and fsetxattr through the
    fd; fstat/fgetxattr/pread show the change and the old content; nothing shows under that
    name in the merged view or the upper (bar a whiteout or the replacement), the lower file is
    untouched, also after close and remount."""
    base = ctx.path("gonechg")
    layer = [F("unl", "lower, unlinked\n", mode=0o644, xattrs={"user.keep": "k"}),
             F("rep", "lower, renamed over\n", mode=0o644, xattrs={"user.keep": "k"}),
             F("src", "the replacement\n", mode=0o664), D("ld"),
             F("ld/unl", "lower dir, unlinked\n", mode=0o644, xattrs={"user.keep": "k"})]
    lowers, up, work = fx.build_stack(base, [layer], ctx.kernel_form)
    mnt = os.path.join(base, "mnt")
    m = ctx.mount_fs(lowers, up, work, mnt)
    mp = lambda p: os.path.join(m.path, p)  # noqa: E731
    want = {"unl": "lower, unlinked\n", "rep": "lower, renamed over\n",
            "ld/unl": "lower dir, unlinked\n"}
    fds = {}
    for rel, how in (("unl", "unlink"), ("rep", "rename over"), ("ld/unl", "unlink")):
        tag = f"{rel} ({how})"
        fd = fds[rel] = os.open(mp(rel), os.O_RDONLY)
        if how == "unlink":
            os.unlink(mp(rel))
        else:
            os.rename(mp("src"), mp(rel))
        for what, fn in (("fchmod 0600", lambda: os.fchmod(fd, 0o600)),
                         (f"fsetxattr {GONE_XATTR}",
                          lambda: os.setxattr(fd, GONE_XATTR, b"set through the fd"))):
            try:
                fn()
            except OSError as e:
                ctx.fail(f"{tag}: {what} through the O_RDONLY fd: {_errname(e)} (README: strata "
                         f"copies the file up anonymously and succeeds)")
        st = os.fstat(fd)
        ctx.check(stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600,
                  f"{tag}: fstat after fchmod shows mode {oct(st.st_mode)}, want 0o100600")
        ctx.check(st.st_size == len(want[rel]), f"{tag}: fstat size {st.st_size}, want {len(want[rel])}")
        ctx.check(st.st_nlink == 0, f"{tag}: fstat nlink {st.st_nlink}, want 0 (an anonymous "
                  f"upper copy with no name)")
        for xn, xv in ((GONE_XATTR, b"set through the fd"), ("user.keep", b"k")):
            try:
                got = os.getxattr(fd, xn)
            except OSError as e:
                got = _errname(e)
            ctx.check(got == xv, f"{tag}: fgetxattr {xn} gives {got!r}, want {xv!r}")
        got = os.pread(fd, 4096, 0).decode(errors="replace")
        ctx.check(got == want[rel], f"{tag}: pread gives {got!r}, want {want[rel]!r}")

    def nothing_under_names(when):
        ctx.check(not os.path.lexists(mp("unl")) and "unl" not in os.listdir(m.path),
                  f"{when}: unl shows in the merged view")
        ctx.check(not os.path.lexists(mp("ld/unl")) and "unl" not in os.listdir(mp("ld")),
                  f"{when}: ld/unl shows in the merged view")
        try:
            st = os.lstat(mp("rep"))
            shown = (stat.S_IMODE(st.st_mode), open(mp("rep")).read(),
                     GONE_XATTR in os.listxattr(mp("rep"), follow_symlinks=False))
        except OSError as e:
            shown = _errname(e)
        ctx.check(shown == (0o664, "the replacement\n", False),
                  f"{when}: rep shows (mode, content, has {GONE_XATTR}) {shown}, want the "
                  f"replacement's (0o664, 'the replacement', False)")
        for rel in ("unl", "ld/unl"):
            ctx.check(_whiteout_or_absent(up, rel),
                      f"{when}: the upper has a non-whiteout under {rel}")
        try:
            ust = os.lstat(os.path.join(up, "rep"))
            urep = (stat.S_IMODE(ust.st_mode), open(os.path.join(up, "rep")).read())
        except OSError as e:
            urep = _errname(e)
        ctx.check(urep == (0o664, "the replacement\n"),
                  f"{when}: upper rep is {urep}, want the replacement (0o664)")
        marked = _upper_files_with(up, GONE_XATTR)
        ctx.check(not marked, f"{when}: upper files carry {GONE_XATTR} (the nameless copies "
                  f"must not show under any name): {marked}")
        for rel in want:
            lp = os.path.join(lowers[0], rel)
            lst = os.lstat(lp)
            ctx.check(stat.S_IMODE(lst.st_mode) == 0o644 and
                      GONE_XATTR not in os.listxattr(lp) and open(lp).read() == want[rel],
                      f"{when}: the lower file {rel} changed (mode {oct(lst.st_mode)})")

    nothing_under_names("fds open")
    for fd in fds.values():
        os.close(fd)
    nothing_under_names("fds closed")
    ctx.unmount(m)
    m = ctx.mount_fs(lowers, up, work, mnt)
    nothing_under_names("after remount")


@case("merged-dir-rename-nameless-nlink", "engine", ALL_MODES)
def merged_dir_rename_nameless_nlink(ctx):
    """fs only (README deliberate difference "After a merged directory is renamed"; the kernel
    shows the lower file's nlink 1): after a dir a lower layer contributes to is renamed, a
    lower file below it (opened after the rename, or before it) whose name is then removed
    (unlink, rename over) shows st_nlink 0 through its O_RDONLY fd, with its mode and size, and
    its content stays readable."""
    base = ctx.path("dirnlink")
    layer = [F("m/a", "lower m/a\n", mode=0o640), F("m/b", "lower m/b, opened before\n"),
             F("m/c", "lower m/c, renamed over\n", mode=0o600)]
    upper = [F("m/u", "upper m/u\n")]  # m is merged
    lowers, up, work = fx.build_stack(base, [layer], ctx.kernel_form, upper)
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"))
    mp = lambda p: os.path.join(m.path, p)  # noqa: E731
    fds = {"b": os.open(mp("m/b"), os.O_RDONLY)}
    try:
        os.rename(mp("m"), mp("m2"))
    except OSError as e:
        os.close(fds["b"])
        ctx.fail(f"rename of the merged dir m: {_errname(e)} (nothing below can be judged)")
        return
    fds["a"] = os.open(mp("m2/a"), os.O_RDONLY)
    fds["c"] = os.open(mp("m2/c"), os.O_RDONLY)
    os.unlink(mp("m2/a"))
    os.unlink(mp("m2/b"))
    os.rename(mp("m2/u"), mp("m2/c"))
    cases = {"a": ("m2/a, opened after the rename, unlinked", 0o640, "lower m/a\n", 0),
             "b": ("m2/b, opened before the rename, unlinked", 0o644, "lower m/b, opened before\n", 0),
             "c": ("m2/c, renamed over", 0o600, "lower m/c, renamed over\n", 0)}
    for k, (tag, mode, data, nlink) in cases.items():
        st = os.fstat(fds[k])
        got = (stat.S_ISREG(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_size, st.st_nlink)
        ctx.check(got == (True, oct(mode), len(data), nlink),
                  f"{tag}: fstat shows (regular, mode, size, nlink) {got}, want "
                  f"{(True, oct(mode), len(data), nlink)}")
        rd = os.pread(fds[k], 4096, 0).decode(errors="replace")
        ctx.check(rd == data, f"{tag}: pread gives {rd!r}, want {data!r}")
        ctx.check(os.lseek(fds[k], 0, os.SEEK_END) == len(data), f"{tag}: lseek(SEEK_END) is not "
                  f"the size")
    ctx.check(sorted(os.listdir(mp("m2"))) == ["c"], f"m2 lists {sorted(os.listdir(mp('m2')))}, want ['c']")
    for fd in fds.values():
        os.close(fd)


# ---- rootless only: chown -h on a symlink, mode-0 creation -----------------------------------------

def _rootless_stack(ctx, name, layer):
    base = ctx.path(name)
    lowers, up, work = fx.build_stack(base, [layer], ctx.kernel_form)
    return base, lowers, up, work


@case("chown-symlink-rootless", "engine", ("rootless", "userns"))
def chown_symlink_rootless(ctx):
    """fs only, rootless: `chown -h` of a symlink (lower, or made through the mount) to the
    caller's own ids succeeds, as with fuse-overlayfs, and stat shows that owner, with
    xattr_permissions=2 (user.* xattrs can't be set on symlinks, so the override must live
    elsewhere or not be needed) and without. Own ids only: a non-root caller may not give a file
    away (POSIX), and in a user namespace only our own ids are mapped."""
    own = (os.getuid(), os.getgid())
    for opts, owner in (("xattr_permissions=2", own), ("", own)):
        tag = opts or "no xattr_permissions"
        base, lowers, up, work = _rootless_stack(ctx, "chsym" + opts[-1:],
                                                 [L("lsym", "target"), F("target", "t")])
        m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"), opts=opts)
        t = Ops(m.path, ctx.verbose, "fs")
        t.symlink("target", "usym")
        for p in ("lsym", "usym"):
            t.chown(p, *owner)
            r = t.rec[-1][1]
            if ctx.check(r[0] == "ok", f"[{tag}] chown -h {p} {owner[0]}:{owner[1]}: {r}"):
                st = os.lstat(t.p(p))
                ctx.check((st.st_uid, st.st_gid) == owner, f"[{tag}] {p} after chown -h shows "
                          f"{st.st_uid}:{st.st_gid}, want {owner[0]}:{owner[1]}")
                ctx.check(stat.S_ISLNK(st.st_mode) and os.readlink(t.p(p)) == "target",
                          f"[{tag}] {p} is no longer the same symlink")
        ctx.unmount(m)


@case("mode0-rootless", "engine", ("rootless", "userns"))
def mode0_rootless(ctx):
    """fs only, rootless, xattr_permissions=2: files and dirs created with mode 0 (umask 777)
    show mode 0 (kept in the override xattr) while on disk in the upper the owner can still
    read and write them (and search the dirs), also after remount."""
    base, lowers, up, work = _rootless_stack(ctx, "mode0", [D("ld"), F("ld/x", "x")])
    mnt = os.path.join(base, "mnt")
    m = ctx.mount_fs(lowers, up, work, mnt, opts="xattr_permissions=2")
    t = Ops(m.path, ctx.verbose, "fs")
    old = os.umask(0o777)
    try:
        t.create("f0", 0o644)              # umask 777: mode 0
        t.mkdir("d0", 0o755)
        t.create("ld/f0", 0o600)           # in a copied-up lower dir
        t.mkdir("ld/d0", 0o700)
    finally:
        os.umask(old)
    bad = [f"{lbl} -> {r}" for lbl, r in t.rec if r[0] == "err"]
    if not ctx.check(not bad, f"creates failed: {bad}"):
        return
    need = {"f0": 0o600, "ld/f0": 0o600, "d0": 0o700, "ld/d0": 0o700}

    def check_all(when):
        for p, bits in need.items():
            st = os.lstat(os.path.join(m.path, p))
            ctx.check(stat.S_IMODE(st.st_mode) == 0,
                      f"{p} {when}: shows mode {oct(stat.S_IMODE(st.st_mode))}, want 0")
            ust = os.lstat(os.path.join(up, p))
            ctx.check(stat.S_IMODE(ust.st_mode) & bits == bits,
                      f"{p} {when}: upper mode on disk {oct(stat.S_IMODE(ust.st_mode))} lacks "
                      f"{oct(bits)}: the owner can't use it")
    check_all("after create")
    ctx.unmount(m)
    m = ctx.mount_fs(lowers, up, work, mnt, opts="xattr_permissions=2")
    check_all("after remount")
