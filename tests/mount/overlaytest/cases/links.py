"""Hard links across copy-up (and remount), inode numbers and st_dev."""

import os
import stat

from ..core import case
from ..fixture import D, F, H, L


def hl_layers():
    top = [F("a/one", "original\n"), H("b/two", "a/one"), H("a/three", "a/one"),
           F("solo", "s"), F("pair/x", "px"), H("pair/y", "pair/x")]
    bottom = [F("lower2/p", "p"), H("lower2/q", "lower2/p")]
    return [top, bottom]


def hl_script(t):
    t.write("a/one", "appended through one\n", "a")
    for n in ["a/one", "b/two", "a/three"]:
        t.read(n)
        t.stat(n, fields=("size", "nlink"))
    t.link("solo", "solo_link")             # link to a lower file: copy-up then link
    t.write("solo_link", "via link", "a")
    t.read("solo")
    t.stat("solo", fields=("size", "nlink"))
    t.chmod("pair/y", 0o600)                # metadata copy-up through the other name
    t.stat("pair/x", fields=("mode", "nlink"))
    t.unlink("lower2/q")                    # unlink one name of a lower pair
    t.stat("lower2/p", fields=("nlink",))
    t.rename("b/two", "two_moved")
    t.read("two_moved")


@case("hardlinks", "links", ("root",))
def hardlinks(ctx):
    """nlink matches; writing one name of a lower hardlink shows through every name, also after
    the fs is unmounted and mounted again (kernel oracle: index=on)."""
    ctx.differential("hardlinks", hl_layers(), hl_script, share_lowers=True, remount_fs=True)


def ino_layers():
    top = [F("same_name", "top"), F("t1"), F("t2"), D("d1"), F("d1/f"), F("hl"), H("hl2", "hl"),
           L("sym", "t1")]
    bottom = [F("same_name", "bottom"), F("b1"), D("d1"), F("d1/g"), F("d2/h")]
    upper = [F("u1"), F("u2")]
    return [top, bottom], upper


def ino_groups(t):
    """Partition of all paths by st_ino (paths sharing an inode), and the set of st_dev."""
    by_ino, devs, n = {}, set(), 0
    for dp, dns, fns in os.walk(t.root):
        for name in ["."] + dns + fns:
            p = os.path.join(dp, name) if name != "." else dp
            st = os.lstat(p)
            rel = os.path.relpath(p, t.root)
            by_ino.setdefault(st.st_ino, []).append(rel)
            devs.add(st.st_dev)
            n += 1
    shared = sorted(sorted(v) for v in by_ino.values() if len(v) > 1)
    t.note("paths sharing an st_ino (only hardlinks may)", shared)
    t.note("distinct st_dev values", len(devs))


def ino_script(t):
    ino_groups(t)
    for p in ["t1", "t2", "d1", "d1/g", "hl", "sym", "b1"]:
        t.state[p] = t.ino(p)
    t.write("t1", "x", "a")              # data copy-up
    t.chmod("t2", 0o600)                  # metadata copy-up
    t.write("d1/g", "x", "a")             # copy-up of a parent dir too
    t.write("hl2", "x", "a")
    t.chown("sym", 0, 0)
    t.setxattr("b1", "user.x", "1")
    for p in ["t1", "t2", "d1", "d1/g", "hl", "sym", "b1"]:
        t.note(f"st_ino of {p} unchanged by copy-up", t.ino(p) == t.state[p])
    t.note("hl and hl2 same ino", t.ino("hl") == t.ino("hl2"))
    t.create("new1")
    t.mkdir("newdir")
    ino_groups(t)
    st = os.lstat(t.root)
    t.note("root is a dir", stat.S_ISDIR(st.st_mode))


@case("inodes", "links", ("root",))
def inodes(ctx):
    """One st_dev for the whole mount; st_ino unique across layers, shared by hardlinks, and
    unchanged across a copy-up while mounted."""
    layers, upper = ino_layers()
    ctx.differential("inodes", layers, ino_script, upper=upper, share_lowers=True)
