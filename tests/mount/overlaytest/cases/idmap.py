"""uidmapping/gidmapping/squash_to_root (fs only; fuse-overlayfs's documented semantics:
`uidmapping=UID:MAPPED-UID:LEN`: an id UID+i stored in the layers shows as MAPPED-UID+i through
the mount, and an id MAPPED-UID+i set through the mount (creator or chown) is stored as UID+i)."""

import os

from .. import fixture as fx
from ..core import case
from ..fixture import D, F
from ..script import Ops


def _stack(ctx, name):
    base = ctx.path(name)
    layer = [F("mapped", "m", uid=5, gid=7), D("mdir", uid=0, gid=0, mode=0o777),
             F("mdir/inner", "i", uid=1, gid=1), F("rootfile", "r", uid=0, gid=0)]
    return base, fx.build_stack(base, [layer], ctx.kernel_form)


@case("idmapping", "idmap", ("root",))
def idmapping(ctx):
    """Owners map both ways with uidmapping=/gidmapping=."""
    ctx.require_root()
    base, (lowers, up, work) = _stack(ctx, "idmap")
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"),
                     opts="uidmapping=0:100000:65536,gidmapping=0:200000:65536,allow_other")

    def owner(p):
        st = os.lstat(os.path.join(m.path, p))
        return st.st_uid, st.st_gid

    ctx.check(owner("mapped") == (100005, 200007), f"mapped shows {owner('mapped')}, want (100005, 200007)")
    ctx.check(owner("mdir") == (100000, 200000), f"mdir shows {owner('mdir')}, want (100000, 200000)")
    ctx.check(owner("mdir/inner") == (100001, 200001),
              f"mdir/inner shows {owner('mdir/inner')}, want (100001, 200001)")
    t = Ops(m.path, ctx.verbose, "fs")
    t.as_user(100000, 200000, lambda c: c.write("mdir/created", "c"))
    t.chown("mapped", 100009, 200010)
    ctx.check(all(r[0] == "ok" for _, r in t.rec), f"ops failed: {t.rec}")
    ctx.check(owner("mdir/created") == (100000, 200000),
              f"created shows {owner('mdir/created')}, want (100000, 200000)")
    ctx.check(owner("mapped") == (100009, 200010), f"chowned shows {owner('mapped')}, want (100009, 200010)")
    ctx.unmount(m)
    for p, want in [("mdir/created", (0, 0)), ("mapped", (9, 10))]:
        st = os.lstat(os.path.join(up, p))
        ctx.check((st.st_uid, st.st_gid) == want,
                  f"upper/{p} stored as {(st.st_uid, st.st_gid)}, want {want}")


@case("squash-to-root", "idmap", ("root",))
def squash_to_root(ctx):
    """squash_to_root: every file shows as owned by 0:0."""
    ctx.require_root()
    base, (lowers, up, work) = _stack(ctx, "squash")
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"), opts="squash_to_root")
    for p in ["mapped", "mdir", "mdir/inner", "rootfile"]:
        st = os.lstat(os.path.join(m.path, p))
        ctx.check((st.st_uid, st.st_gid) == (0, 0), f"{p} shows {st.st_uid}:{st.st_gid}, want 0:0")
