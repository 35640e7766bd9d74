"""xattrs pass through; overlay-private names stay hidden; xattr_permissions=2 override_stat."""

import os
import struct

from .. import fixture as fx
from ..core import case
from ..fixture import D, F, L, X
from ..script import Ops


def xa_layers(mode):
    top = [F("lf", "l", xattrs={"user.a": "1", "user.b": "2"}), D("ld", xattrs={"user.d": "dir"}),
           L("lsym", "lf"), F("plain")]
    if mode == "root":
        top.append(X("lf", "trusted.t", "tv"))
    return [top]


def xa_script(mode):
    def s(t):
        xc, xr = os.XATTR_CREATE, os.XATTR_REPLACE
        t.listxattr("lf")
        t.getxattr("lf", "user.a")
        t.setxattr("lf", "user.a", "changed")
        t.setxattr("lf", "user.a", "again", xc)        # EEXIST
        t.setxattr("lf", "user.nope", "v", xr)         # ENODATA
        t.setxattr("lf", "user.big", b"\xab" * 3000)
        t.removexattr("lf", "user.b")
        t.removexattr("lf", "user.b")                  # ENODATA
        t.getxattr("lf", "user.big")
        t.listxattr("lf")
        t.setxattr("ld", "user.d2", "x")
        t.removexattr("ld", "user.d")
        t.listxattr("ld")
        t.setxattr("lsym", "user.on_symlink", "x")     # EPERM for user.* on symlinks
        t.setxattr("plain", "user.empty", b"")
        t.getxattr("plain", "user.empty")
        t.create("newf")
        t.setxattr("newf", "user.n", "n")
        t.listxattr("newf")
        t.setxattr("plain", "bogus.ns", "x")           # EOPNOTSUPP
        if mode == "root":
            t.getxattr("lf", "trusted.t")
            t.setxattr("plain", "trusted.new", "t")
            t.setxattr("plain", "security.capability",
                       bytes.fromhex("0100000200200000000000000000000000000000"))
            t.getxattr("plain", "security.capability")
    return s


@case("xattr-passthrough", "xattr", ("root", "rootless", "userns"))
def xattr_passthrough(ctx):
    """get/set/list/remove (with CREATE/REPLACE flags) through the mount, with copy-up."""
    ctx.differential("xattr", xa_layers(ctx.mode), xa_script(ctx.mode), share_lowers=True)


PRIVATE = ["trusted.overlay.origin", "trusted.overlay.x", "user.overlay.x",
           "user.fuseoverlayfs.x", "user.containers.x"]


@case("xattr-private-hidden", "xattr", ("root",))
def xattr_private_hidden(ctx):
    """fs only: overlay-private xattrs on layer files never show through the mount."""
    base = ctx.path("priv")
    layer = [F("f", "x", xattrs={"user.public": "p"}), D("d", xattrs={"user.public": "p"})]
    for n in PRIVATE:
        layer += [X("f", n, "secret"), X("d", n, "secret")]
    lowers, up, work = fx.build_stack(base, [layer], ctx.kernel_form)
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"))
    t = Ops(m.path, ctx.verbose, "fs")
    for p in ["f", "d"]:
        names = t.listxattr(p, public_only=False) or []
        leaked = [n for n in names if n != "user.public"]
        ctx.check(not leaked, f"{p}: private xattrs listed: {leaked}")
        for n in PRIVATE:
            try:
                os.getxattr(t.p(p), n)
                ctx.fail(f"{p}: getxattr({n}) succeeded through the mount")
            except OSError:
                pass
    t.write("f", "y", "a")  # after copy-up too
    names = os.listxattr(t.p("f"))
    ctx.check(names == ["user.public"], f"f after copy-up lists {names}")


@case("xattr-permissions-2", "xattr", ("root",))
def xattr_permissions_2(ctx):
    """fs only: with xattr_permissions=2, user.containers.override_stat=uid:gid:mode is the
    owner and mode shown (fuse-overlayfs's semantics)."""
    base = ctx.path("xp2")
    layer = [F("f", "x", mode=0o644), X("f", "user.containers.override_stat", "1234:5678:0640"),
             D("d"), X("d", "user.containers.override_stat", "42:43:0700"), F("plain", mode=0o600)]
    lowers, up, work = fx.build_stack(base, [layer], ctx.kernel_form)
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"), opts="xattr_permissions=2")
    for p, want in [("f", (1234, 5678, 0o100640)), ("d", (42, 43, 0o40700)), ("plain", (0, 0, 0o100600))]:
        st = os.lstat(os.path.join(m.path, p))
        got = (st.st_uid, st.st_gid, st.st_mode)
        ctx.check(got == want, f"{p}: uid/gid/mode {got[0]}:{got[1]}:{oct(got[2])}, "
                               f"want {want[0]}:{want[1]}:{oct(want[2])}")
    names = os.listxattr(os.path.join(m.path, "f"))
    ctx.check("user.containers.override_stat" not in names, f"override_stat listed: {names}")


def default_acl():
    """system.posix_acl_default: user::rwx group::rwx other::rwx (no umask for new entries)."""
    und = 0xFFFFFFFF
    ents = [(1, 7, und), (4, 7, und), (0x20, 7, und)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in ents)


CAP = bytes.fromhex("0100000200200000000000000000000000000000")


def known_script(mode):
    def s(t):
        old = os.umask(0o022)
        try:
            t.mkdir("acl")
            t.create("acl/before", 0o666)
            t.setxattr("acl", "system.posix_acl_default", default_acl())
            t.create("acl/with", 0o666)
            t.mkdir("acl/withdir", 0o777)
            t.removexattr("acl", "system.posix_acl_default")
            t.create("acl/after", 0o666)
            for n in ("before", "with", "withdir", "after"):
                t.stat(f"acl/{n}", fields=("mode",))
        finally:
            os.umask(old)
        if mode == "root":
            t.write("capf", "x", "x")
            t.getxattr("capf", "security.capability")    # ENODATA
            t.setxattr("capf", "security.capability", CAP)
            t.getxattr("capf", "security.capability")
            t.write("capf", "y", "a")                    # a write drops it
            t.getxattr("capf", "security.capability")
    return s


@case("xattr-new-entries", "xattr", ("root", "rootless", "userns"))
def xattr_new_entries(ctx):
    """What the fs knows of entries it created follows xattr changes through the mount: a default
    ACL set or removed on a directory between creates in it decides the next one's mode; a
    file capability set on a new file is read back."""
    ctx.differential("xattr-new", [[F("lowerfile")]], known_script(ctx.mode), share_lowers=True)
