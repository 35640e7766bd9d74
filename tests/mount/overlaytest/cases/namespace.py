"""Namespace ops: create, mkdir, mknod, symlink, link, unlink, rmdir, rename (+flags), errnos,
and the rename of a directory that exists in a lower layer."""

import os

from .. import env
from ..core import case
from ..fixture import D, F, L, OPQ, WH

NOREPLACE, EXCHANGE = env.RENAME_NOREPLACE, env.RENAME_EXCHANGE


def ns_layers():
    top = [F("f1", "one"), F("f2", "two"), D("dempty"), F("dfull/a", "a"), F("dfull/b", "b"),
           F("gone_dir/x", "x"), D("gone_dir/sub"), F("gone_dir/sub/y"), L("lsym", "f1"),
           F("rm_all/only_lower"), D("src_dir"), F("src_dir/s", "s"), F("xch1", "x1"),
           F("xch2", "x2"), D("xdir"), F("xdir/in", "in"), F("wo/shadowed", "top")]
    bottom = [F("dfull/c", "c from bottom"), F("gone_dir/bottom", "b"), F("rm_all/bottom_only"),
              F("wo/lower_gone", "g"), F("xdir/bottom", "b"), F("onlybottom", "ob")]
    top.append(WH("wo/lower_gone"))
    return [top, bottom]


def ns_script(mode):
    def s(t):
        # create / exclusive create / mkdir / errnos
        t.create("new_file")
        t.create("f1")                      # EEXIST
        t.mkdir("new_dir")
        t.mkdir("dempty")                   # EEXIST
        t.mkdir("f1/sub")                   # ENOTDIR
        t.create("nodir/x")                 # ENOENT
        t.open_flags("dempty", os.O_WRONLY, "open(dempty,O_WRONLY)")  # EISDIR
        # unlink / rmdir
        t.unlink("f2")
        t.stat("f2")
        t.write("f2", "recreated")
        t.unlink("dempty")                  # EISDIR
        t.rmdir("f1")                       # ENOTDIR
        t.rmdir("dfull")                    # ENOTEMPTY (lower-only children)
        t.unlink("rm_all/only_lower")
        t.unlink("rm_all/bottom_only")
        t.listdir("rm_all")
        t.rmdir("rm_all")                   # empty in the merged view: works
        t.stat("rm_all")
        t.unlink("missing")                 # ENOENT
        # a new dir over a whiteout is opaque: the lower content never comes back
        for n in ["gone_dir/sub/y", "gone_dir/x", "gone_dir/bottom"]:
            t.unlink(n)
        t.rmdir("gone_dir/sub")
        t.rmdir("gone_dir")
        t.mkdir("gone_dir")
        t.listdir("gone_dir")
        t.stat("gone_dir/bottom")
        t.create("wo/lower_gone")           # a file over a lower whiteout
        t.read("wo/lower_gone")
        # special files
        t.mknod("fifo", "fifo")
        t.mknod("sock", "sock")
        t.mknod("regular", "file")
        if mode == "root":
            t.mknod("chr", "chr", 0o600, (1, 3))
            t.mknod("blk", "blk", 0o600, (7, 0))
        t.mknod("fifo", "fifo")             # EEXIST
        t.symlink("f1", "sym_new")
        t.symlink("x", "lsym")              # EEXIST
        t.readlink("sym_new")
        # links
        t.link("f1", "f1_link")
        t.link("f1", "f2")                  # EEXIST
        t.link("dempty", "dir_link")        # EPERM
        t.link("missing", "x_link")         # ENOENT
        t.stat("f1")
        # renames
        t.rename("f1_link", "renamed_link")
        t.rename("onlybottom", "new_dir/moved")
        t.rename("new_file", "f2")          # replaces
        t.rename("xch1", "f2", NOREPLACE)   # EEXIST
        t.rename("xch1", "xch1_nr", NOREPLACE)
        t.rename("xch1_nr", "xch2", EXCHANGE)
        t.read("xch2")
        t.read("xch1_nr")
        t.rename("xch2", "nonexistent", EXCHANGE)  # ENOENT
        t.rename("new_dir", "dfull")        # ENOTEMPTY
        t.rename("f2", "dempty")            # EISDIR
        t.rename("new_dir", "xch2")         # ENOTDIR
        t.rename("new_dir", "new_dir/moved2")  # EINVAL
        t.rename("missing", "m2")           # ENOENT
        t.mkdir("upper_dir")
        t.write("upper_dir/f", "u")
        t.rename("upper_dir", "upper_dir_moved")
        t.rename("sym_new", "lsym")         # symlink over a lower symlink
        t.readlink("lsym")
        t.rename("wo/shadowed", "wo/lower_gone")
        for d in [".", "wo", "new_dir", "gone_dir", "dfull", "upper_dir_moved"]:
            t.listdir(d)
    return s


@case("namespace-ops", "namespace", ("root", "rootless", "userns"))
def namespace_ops(ctx):
    """create/mkdir/mknod/symlink/link/unlink/rmdir/rename(+NOREPLACE/EXCHANGE): results and errnos."""
    ctx.differential("ns", ns_layers(), ns_script(ctx.mode), share_lowers=True)


def rdir_layers():
    top = [D("ldir", mode=0o751, xattrs={"user.d": "1"}), F("ldir/top", "t"), D("ldir/sub"),
           F("ldir/sub/s", "s"), WH("ldir/hidden"), F("other/o", "o"), OPQ("ldir/opq"),
           F("ldir/opq/only", "o")]
    bottom = [F("ldir/bottom", "b"), F("ldir/hidden", "never"), F("ldir/sub/bs", "bs"),
              F("ldir/opq/masked", "m"), F("ldir/sub/deeper/z", "z"), F("old_name_lower", "x")]
    return [top, bottom]


def rdir_script(t):
    t.rename("ldir", "moved")
    t.stat("ldir")
    t.listdir("moved")
    t.listdir("moved/sub")
    t.listdir("moved/opq")
    t.read("moved/bottom")
    t.stat("moved/hidden")
    t.write("moved/new", "new")
    t.mkdir("ldir")                       # old name: a fresh, empty dir
    t.listdir("ldir")
    t.rename("moved/sub", "other/sub2")   # a lower dir into another merged dir
    t.listdir("other/sub2")
    t.listdir("other/sub2/deeper")
    t.rename("other", "moved/other")      # nested redirects
    t.listdir("moved/other/sub2")
    t.read("moved/other/sub2/deeper/z")


def rdir_expected(before):
    """Rootless oracle (kernel userxattr mounts can't redirect): only the first rename."""
    out = {}
    for k, v in before.items():
        if k == "ldir" or k.startswith("ldir/"):
            k = "moved" + k[4:]
        out[k] = v
    return out


@case("rename-lower-dir", "rename", ("root", "rootless", "userns"))
def rename_lower_dir(ctx):
    """Renaming a dir that exists in a lower layer works (kernel oracle: redirect_dir=on), and
    the upper it leaves reads the same under kernel overlayfs."""
    if ctx.mode == "root":
        ctx.differential("rename", rdir_layers(), rdir_script, share_lowers=True)
    else:
        # The kernel refuses redirect_dir with userxattr: compare with the expected view.
        ctx.differential("rename", rdir_layers(), lambda t: t.rename("ldir", "moved"),
                         share_lowers=True, expect_view=rdir_expected)
