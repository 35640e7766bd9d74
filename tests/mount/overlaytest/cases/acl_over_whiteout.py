"""A directory's default ACL reaches entries made over a whiteout, as on the kernel."""

import os
import struct

from ..core import case
from ..fixture import D, F

UND = 0xFFFFFFFF


def restrictive_default_acl(named_user):
    """system.posix_acl_default: user::rwx [user:1234:rwx] group::r-x [mask::rwx] other::---
    (a user namespace cannot name an unmapped user: there only the three base entries)."""
    ents = [(0x01, 7, UND), (0x02, 7, 1234), (0x04, 5, UND), (0x10, 7, UND), (0x20, 0, UND)]
    if not named_user:
        ents = [e for e in ents if e[0] in (0x01, 0x04, 0x20)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in ents)


def script(t, named_user):
    old = os.umask(0o022)
    try:
        t.setxattr("acl", "system.posix_acl_default", restrictive_default_acl(named_user))
        # Over a whiteout (the lower entry deleted first) and on a fresh name: the same ACL and mode.
        t.unlink("acl/f")
        t.create("acl/f", 0o666)
        t.rmdir("acl/sub")
        t.mkdir("acl/sub", 0o777)
        t.create("acl/fresh", 0o666)
        t.mkdir("acl/freshdir", 0o777)
        for n in ("f", "sub", "fresh", "freshdir"):
            t.stat(f"acl/{n}", fields=("mode",))
            t.getxattr(f"acl/{n}", "system.posix_acl_access")
        for n in ("sub", "freshdir"):
            t.getxattr(f"acl/{n}", "system.posix_acl_default")
    finally:
        os.umask(old)


@case("acl-over-whiteout", "xattr", ("root", "rootless", "userns"))
def acl_over_whiteout(ctx):
    """A file or directory created where a lower one was deleted inherits the parent's default
    ACL and gets its mode from it (not 0666 / 0777 from a staging dir that has no ACL)."""
    ctx.differential("acl-wh", [[D("acl"), F("acl/f", "lower"), D("acl/sub")]],
                     lambda t: script(t, ctx.mode == "root"))
