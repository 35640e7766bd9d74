"""Copy-up by every kind of change: metadata, xattrs, capabilities, ACLs, holes, parents."""

import os
import struct

from ..core import case
from ..fixture import D, F, H, L, X

MIB = 1 << 20
CAP = bytes.fromhex("0100000200200000000000000000000000000000")


def acl(user_id):
    """system.posix_acl_access: user::rw- user:ID:r-- group::r-- mask::rw- other::r--"""
    und = 0xFFFFFFFF
    ents = [(1, 6, und), (2, 4, user_id), (4, 4, und), (0x10, 6, und), (0x20, 4, und)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in ents)


def copyup_layers(mode):
    root = mode == "root"
    own = {"uid": 1234, "gid": 5678} if root else {}
    files = ["w", "t", "m", "o", "u", "x", "k", "r", "a"]  # one per triggering op
    top = [D("p1", mode=0o710, xattrs={"user.p1": "v1"}, **({"uid": 11, "gid": 12} if root else {})),
           D("p1/p2", mode=0o750, xattrs={"user.p2": "v2"})]
    for n in files:
        top.append(F(f"p1/p2/{n}", f"lower {n}\n" * 100, mode=0o640,
                     xattrs={"user.keep": n, "user.bin": b"\x00\x01"}, **own))
        # An ACL may only name ids mapped in the caller's user namespace.
        top.append(X(f"p1/p2/{n}", "system.posix_acl_access", acl(4242 if root else os.getuid())))
        if root:
            top.append(X(f"p1/p2/{n}", "security.capability", CAP))
    top += [F("exec", "#!/bin/sh\n", mode=0o4755, **own), L("p1/p2/sym", "w"),
            F("sparse_keep", size=8 * MIB, chunks=[(0, b"A" * 4096), (4 * MIB, b"B" * 8192)]),
            F("sparse_write", size=8 * MIB, chunks=[(MIB, b"C" * 4096)]),
            F("sparse_tail", size=16 * MIB, chunks=[(0, b"D" * 100)]),
            F("empty")]
    if root:  # without index=on (userxattr mounts) the kernel oracle breaks links on copy-up
        top += [F("multi/a", "ha"), H("multi/b", "multi/a")]
    mid = [F("p1/p2/mid_only", "m"), D("p1/p2/sub"), F("p1/p2/sub/deep", "deep")]
    return [top, mid]


def copyup_script(mode):
    def s(t):
        d = "p1/p2/"
        t.write(d + "w", "appended\n", "a")
        t.truncate(d + "t", 17)
        t.chmod(d + "m", 0o604)
        if mode == "root":
            t.chown(d + "o", 4321, 8765)
        t.utime(d + "u", 1_234_567_890)
        t.setxattr(d + "x", "user.new", "fresh")
        t.link(d + "k", d + "k_link")
        t.rename(d + "r", d + "r_renamed")
        t.write(d + "a", "X", "r+")
        t.write("p1/p2/sub/new", "new under a lower-only parent")
        t.chmod("exec", 0o755)
        t.chmod("sparse_keep", 0o600)
        t.ranges("sparse_keep")
        t.pwrite("sparse_write", b"Z" * 10, 6 * MIB)
        t.ranges("sparse_write")
        t.truncate("sparse_tail", 20 * MIB)
        t.ranges("sparse_tail")
        t.write("empty", "now full")
        if mode == "root":
            t.write("multi/a", "through a\n", "a")
        for n in ["w", "t", "m", "o", "u", "x", "k", "k_link", "r_renamed", "a"]:
            t.stat(d + n, fields=("mode", "uid", "gid", "size", "nlink", "mtime"))
            t.listxattr(d + n)
            t.getxattr(d + n, "system.posix_acl_access")
            if mode == "root":
                t.getxattr(d + n, "security.capability")
        if mode == "root":
            t.read("multi/b")
    return s


@case("copyup-metadata", "copyup", ("root", "rootless", "userns"))
def copyup_metadata(ctx):
    """Each changing op copies up with mode, owner, mtime, xattrs, caps, ACLs, holes, parents."""
    ctx.differential("copyup", copyup_layers(ctx.mode), copyup_script(ctx.mode),
                     share_lowers=True)
