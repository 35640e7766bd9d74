"""Lookup through layers, whiteouts (both forms), opaque dirs (all forms), hidden markers."""

from .. import fixture as fx
from ..core import case
from ..fixture import D, DEV, F, H, L, OPQ, P, S, WH, X

ALL_MODES = ("root", "rootless", "userns")
CAP = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service=ep (v2)


def base_layers(mode):
    top = [F("shadow", "top"), F("dir/sub/file", "deep top"), D("dir/only_top"),
           F("type_flip/x", "was a file below, a dir here"), F("file_over_dir", "file"),
           L("link_rel", "shadow"), L("link_abs", "/etc/passwd"), L("link_dangling", "nowhere"),
           F("xa", "x", xattrs={"user.one": "1", "user.two": b"\x00\xff"}),
           F("modes/setuid", "s", mode=0o4755), F("modes/sticky_dir/f"), F("modes/ro", mode=0o400),
           P("fifo"), S("sock"), F("hl/a", "hard"), H("hl/b", "hl/a"), H("hl/sub_c", "hl/a")]
    mid = [F("shadow", "mid"), F("dir/mid_only", "m"), F("type_flip", "a file"),
           D("file_over_dir/child_hidden"), F("dir/sub/file", "deep mid"),
           F("big", size=3 << 20, chunks=[(0, b"head"), (2 << 20, b"middle")])]
    bottom = [F("shadow", "bottom"), F("dir/bottom_only", "b"), F("only_bottom/a/b/c", "c"),
              D("dir", mode=0o750), F("emptyfile")]
    if mode == "root":
        top += [F("owned", "o", uid=1234, gid=5678), D("owned_dir", uid=42, gid=43, mode=0o700),
                X("modes/setuid", "security.capability", CAP), DEV("dev_null", "c", 1, 3),
                DEV("dev_blk", "b", 7, 0), X("xa", "trusted.user_visible", "t")]
    return [top, mid, bottom]


def read_everything(t, paths):
    for p in paths:
        t.stat(p)
        t.read(p)
    t.readlink("link_rel")
    t.readlink("link_abs")
    t.listxattr("xa")
    t.getxattr("xa", "user.one")
    t.getxattr("xa", "user.missing")
    t.stat("file_over_dir/child_hidden")
    t.stat("type_flip/x")
    t.stat("nonexistent/x")
    t.stat("shadow/x")


@case("lookup-layers", "lookup", ALL_MODES)
def lookup_layers(ctx):
    """Names resolve to the top-most layer; types, modes, owners, xattrs, links as in the kernel."""
    layers = base_layers(ctx.mode)
    upper = [F("upper_only", "u"), F("shadow", "upper")]
    ctx.differential("layers", layers, lambda t: read_everything(
        t, ["shadow", "dir/sub/file", "dir/mid_only", "dir/bottom_only", "only_bottom/a/b/c",
            "hl/b", "big", "upper_only"]), upper=upper, share_lowers=True)


def whiteout_layers():
    top = [WH("a/gone"), WH("dirgone"), F("a/new", "n0"), WH("b/sub/deep"),
           D("w/re"), F("w/re/top", "t"), F("back", "back on top"), WH("never_existed"),
           WH("dir_partial/f2")]
    mid = [F("a/gone", "g1"), F("a/keep", "k1"), D("dirgone"), F("dirgone/x", "x"),
           F("b/sub/deep", "d"), F("b/sub/stay", "s"), WH("w/re"), WH("back"),
           F("dir_partial/f1"), F("dir_partial/f2")]
    bottom = [F("a/gone", "g2"), F("dirgone/y", "y"), F("w/re/hidden", "h"), F("back", "bottom"),
              F("u/hidden_by_upper", "h"), D("u/dir_hidden_by_upper")]
    upper = [WH("u/hidden_by_upper"), WH("u/dir_hidden_by_upper"), F("u/visible", "v")]
    return [top, mid, bottom], upper


def whiteout_script(t):
    for p in ["a", "b/sub", "w/re", "dir_partial", "u", "."]:
        t.listdir(p)
    for p in ["a/gone", "dirgone", "dirgone/x", "b/sub/deep", "w/re/hidden", "never_existed",
              "u/hidden_by_upper", "u/dir_hidden_by_upper", ".wh.dirgone", "a/.wh.gone"]:
        t.stat(p)
    t.read("back")


@case("whiteout-forms", "lookup", ALL_MODES)
def whiteout_forms(ctx):
    """Whiteouts as char 0/0 and as .wh.NAME files hide names from lower layers (and never show)."""
    layers, upper = whiteout_layers()
    ctx.differential("chr", layers, whiteout_script, upper=upper)
    ctx.differential("whfile", layers, whiteout_script, upper=upper,
                     fs_form=fx.Form(fx.WH_FILE, ctx.kernel_form.opaque))


def opaque_layers():
    top = [OPQ("o"), F("o/top", "t"), D("o/sub"), F("o/sub/t2", "t2"),
           D("notopq"), F("notopq/top", "t"), OPQ("nested/inner"), F("nested/inner/x", "x"),
           OPQ("empty_opq")]
    mid = [F("o/mid", "m"), F("o/sub/m2", "m2"), F("notopq/mid", "m"), F("nested/mid", "m"),
           F("nested/inner/mid", "hidden"), F("empty_opq/hidden", "h")]
    bottom = [F("o/bottom", "b"), D("o/bottom_dir"), F("o/bottom_dir/z", "z"),
              F("notopq/bottom", "b"), F("nested/inner/bottom", "hidden")]
    upper = [OPQ("uo"), F("uo/u", "u")]
    layers = [top, mid, bottom]
    layers[1].append(F("uo/lower", "hidden by the upper's opaque dir"))
    return layers, upper


def opaque_script(t):
    for p in ["o", "o/sub", "notopq", "nested", "nested/inner", "empty_opq", "uo"]:
        t.listdir(p)
        t.listxattr(p)
    for p in ["o/mid", "o/bottom", "o/bottom_dir/z", "o/.wh..wh..opq", "nested/inner/mid"]:
        t.stat(p)
    # An opaque marker is never readable through the mount.
    for name in ("trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque"):
        t.note(f"getxattr(o,{name}) hidden", _hidden(t, "o", name))


def _hidden(t, rel, name):
    import os
    try:
        os.getxattr(t.p(rel), name)
        return False
    except OSError:
        return True


@case("opaque-forms", "lookup", ALL_MODES)
def opaque_forms(ctx):
    """Opaque dirs in every form stop descent into lower layers; markers stay invisible."""
    layers, upper = opaque_layers()
    forms = [fx.OPQ_USER, fx.OPQ_FUSEOVL, fx.OPQ_WHOPQ]
    if ctx.mode == "root":
        forms.insert(0, fx.OPQ_TRUSTED)
    for f in forms:
        ctx.differential(f, layers, opaque_script, upper=upper, fs_form=fx.Form(fx.WH_CHR, f))
