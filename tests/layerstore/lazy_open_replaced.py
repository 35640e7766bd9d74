#!/usr/bin/python3
"""A lazy layer's file that loses its name while it is open (renamed over, as apt replaces
/var/lib/apt/extended_states while it still has the old one open; or unlinked) keeps working
as kernel overlayfs's does: fstat of the open fd, reading it, fchmod of it (a copy-up of a file
with no name) and close, with strata-fs's writeback cache off and on (on is the default
rootless, where apt-get install failed with 'Problem closing the file ... (5: Input/output
error)'). Oracle: kernel overlayfs over the same layer unpacked; strata-fs over the unpacked
layer too."""
import errno
import gzip
import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("fusermount3")
STRATA_FS = os.environ.get("STRATA_FS", "")
if not os.path.exists("/dev/fuse") or not os.path.exists(STRATA_FS):
    skip("no /dev/fuse or strata-fs not built")

work = workdir()
mounts = FuseMounts(work)
FILES = {"etc/state": b"Package: a\nAuto-Installed: 1\n" * 200,
         "etc/other": b"other\n" * 1000,
         "etc/big": bytes(range(256)) * 12000}


def layer_tar():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("etc")
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1000000
        t.addfile(ti)
        for name, data in FILES.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime, ti.uid, ti.gid = len(data), 0o644, 1000000, 7, 8
            t.addfile(ti, io.BytesIO(data))
    return out.getvalue()


def attempt(fn):
    try:
        r = fn()
        return "ok" if r is None else r
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def shown(st):
    return (stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, st.st_size)


def replaced_while_open(m, name, change=None):
    """Opens m/name read-only, reads a little, renames a new file over it (or unlinks it when
    `change` is 'unlink'), then fstat, read the rest, optionally fchmod, close."""
    path = os.path.join(m, name)
    out = {}
    fd = os.open(path, os.O_RDONLY)
    closed = False
    try:
        head = os.read(fd, 100)
        if change == "unlink":
            out["unlink"] = attempt(lambda: os.unlink(path))
        else:
            with open(path + ".new", "wb") as f:
                f.write(b"the new file\n")
            out["rename"] = attempt(lambda: os.rename(path + ".new", path))
        out["fstat"] = attempt(lambda: shown(os.fstat(fd)))
        if change == "fchmod":
            out["fchmod"] = attempt(lambda: os.fchmod(fd, 0o600))
            out["fstat after fchmod"] = attempt(lambda: shown(os.fstat(fd)))
        rest = attempt(lambda: os.read(fd, 1 << 22))
        out["content"] = hashlib.sha256(head + rest).hexdigest()[:16] if isinstance(rest, bytes) else rest
        out["pread"] = attempt(lambda: hashlib.sha256(os.pread(fd, 1 << 22, 0)).hexdigest()[:16])
        closed = True
        out["close"] = attempt(lambda: os.close(fd))
    finally:
        if not closed:
            os.close(fd)
    out["name now"] = attempt(lambda: open(path, "rb").read()[:20])
    return out


FCHMOD = "rename over, then fchmod the open fd"


def scenarios(m):
    return {"rename over an open file": replaced_while_open(m, "etc/state"),
            "unlink an open file": replaced_while_open(m, "etc/other", "unlink"),
            FCHMOD: replaced_while_open(m, "etc/big", "fchmod")}


failures = []
try:
    tar_bytes = layer_tar()
    diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    layout = os.path.join(work, "img")
    one_layer_layout(layout, gzip.compress(tar_bytes, compresslevel=6), diff_id,
                              "application/vnd.oci.image.layer.v1.tar+gzip")
    store = os.path.join(work, "store")
    strata(store, "load", "-q", "--lazy", "--tag", "replaced:1", "-i", layout, timeout=120)
    (layer_dir,) = image_layers(store, "replaced:1")
    desc = os.path.join(os.path.dirname(layer_dir), "lazy")  # the layer's strata-fs descriptor
    unpacked = os.path.join(work, "unpacked")
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as t:
        t.extractall(unpacked, numeric_owner=True)

    def fresh(name):
        upper, wd = os.path.join(work, name, "upper"), os.path.join(work, name, "work")
        os.makedirs(upper)
        os.makedirs(wd)
        return upper, wd

    upper, wd = fresh("kernel")
    kmnt = mounts.new("kernel")
    run("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={unpacked},upperdir={upper},workdir={wd},redirect_dir=on,index=on", kmnt)
    try:
        want = scenarios(kmnt)
    finally:
        run("umount", kmnt, check=False)

    # The kernel refuses to change a lower file with no name left (EEXIST: it cannot copy up
    # a disconnected file); strata-fs copies it up anonymously (README): there the oracle is
    # strata-fs over the unpacked layer.
    del want[FCHMOD]
    for wb in (0, 1):
        got = {}
        for lower_name, lower in (("unpacked", unpacked), ("lazy", desc)):
            upper, wd = fresh(f"{lower_name}-{wb}")
            m = mounts.new(f"{lower_name}-{wb}")
            run(STRATA_FS, "-o", f"lowerdir={lower},upperdir={upper},workdir={wd},writeback={wb}", m)
            try:
                got[lower_name] = scenarios(m)
            finally:
                mounts.umount(m)
        for lower_name in ("unpacked", "lazy"):
            what = f"strata-fs over the {lower_name} layer, writeback={wb}"
            oracle = dict(want, **{FCHMOD: got["unpacked"][FCHMOD]})
            bad = [c for c in oracle if got[lower_name][c] != oracle[c]]
            for c in bad:
                failures.append(f"{what}: {c}:\n  got    {got[lower_name][c]}\n  wanted {oracle[c]}")
            print(f"{what}: {'differs' if bad else 'as kernel overlayfs (and fchmod as over the unpacked layer)'}")
        if got["unpacked"][FCHMOD].get("fstat after fchmod", ("",) * 2)[1] != "0o600":
            failures.append(f"writeback={wb}: fchmod of a removed lower file over the unpacked layer: {got['unpacked'][FCHMOD]}")
finally:
    mounts.unmount_all()
    subprocess.run(["rm", "-rf", work])
conclude(failures, "lazy files replaced or removed while open behave as kernel overlayfs's")
