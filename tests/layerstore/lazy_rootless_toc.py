#!/usr/bin/python3
"""Rootless `load --lazy` shows the tree rootless `load` leaves. Without root the extractor
cannot mknod a char or block device, so it skips it with a warning ("skipping device node"),
and cannot set trusted.* or security.* xattrs (nor user.* on a symlink), so it drops them
("cannot set xattr"); a lazy layer's table of contents must do the same. Before, the lazy image
of a layer holding dev/mem (char 1/1) and dev/sda (block 8/0) showed both devices while the
unpacked one had none, and its bin/ping showed a security.capability the unpacked one had not.
Run as an unprivileged user (strata-test, made if missing): loads of the same layer with and
without --lazy, both mounted with `strata mount`, listed from the user's side: the same names,
types, modes and xattrs, and the same warnings."""
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

USER = "strata-test"
need_root()
need_tools("fusermount3", "runuser")
FS = os.environ.get("STRATA_FS", "")
if not os.path.exists("/dev/fuse") or not os.path.exists(FS):
    skip("no /dev/fuse or strata-fs not built")
subprocess.run(["useradd", "-m", USER], capture_output=True)
os.chmod("/dev/fuse", 0o666)

work = workdir()
uid, gid = (int(run("id", flag, USER).stdout) for flag in ("-u", "-g"))
os.chown(work, uid, gid)
mounts = []


def as_user(*args, check=True):
    return run("runuser", "-u", USER, "--", "env", "STRATA_FS=" + FS, *args, check=check)


def layer_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("dev")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        t.addfile(d)
        for name, kind, major, minor in (("dev/mem", tarfile.CHRTYPE, 1, 1), ("dev/sda", tarfile.BLKTYPE, 8, 0)):
            n = tarfile.TarInfo(name)
            n.type, n.devmajor, n.devminor, n.mode = kind, major, minor, 0o666
            t.addfile(n)
        data = b"kept\n"
        f = tarfile.TarInfo("dev/regular")
        f.size, f.mode = len(data), 0o644
        t.addfile(f, io.BytesIO(data))
        # cap_net_raw, as Debian's iputils-ping has it, and the other namespaces.
        cap = "\x01\x00\x00\x02\x00\x20" + "\x00" * 14
        f = tarfile.TarInfo("dev/ping")
        f.size, f.mode = len(data), 0o755
        f.pax_headers = {"SCHILY.xattr.security.capability": cap, "SCHILY.xattr.trusted.t": "1",
                         "SCHILY.xattr.user.u": "2"}
        t.addfile(f, io.BytesIO(data))
        s = tarfile.TarInfo("dev/link")
        s.type, s.linkname = tarfile.SYMTYPE, "ping"
        s.pax_headers = {"SCHILY.xattr.user.u": "3"}
        t.addfile(s)
    return buf.getvalue()


def tree(mnt):
    """(path, type and mode, device numbers) of every entry, from the user's side."""
    r = as_user("find", mnt, "-mindepth", "1", "-printf", "%P %M\n")
    out = sorted(r.stdout.splitlines())
    for name in ("dev/ping", "dev/link", "dev/regular"):
        r = as_user("getfattr", "-h", "-d", "-m", "-", "--absolute-names", os.path.join(mnt, name), check=False)
        out.append(name + " xattrs: " + " ".join(sorted(x for x in r.stdout.splitlines()[1:] if x)))
    return out


try:
    tar = layer_tar()
    layout = os.path.join(work, "img")
    one_layer_layout(layout, gzip.compress(tar), "sha256:" + hashlib.sha256(tar).hexdigest(),
                     "application/vnd.oci.image.layer.v1.tar+gzip")
    views, warnings = {}, {}
    for mode in ("unpacked", "lazy"):
        root = os.path.join(work, "root-" + mode)
        lazy = ["--lazy"] if mode == "lazy" else []
        r = as_user(STRATA, "--root", root, "load", *lazy, "-i", layout, "--tag", "dev/img:v1")
        warnings[mode] = sorted(line.split(": ", 2)[-1] for line in r.stderr.splitlines()
                                if "skipping device node" in line or "cannot set xattr" in line)
        mnt = os.path.join(work, "mnt-" + mode)
        os.makedirs(mnt)
        os.chown(mnt, uid, gid)
        as_user(STRATA, "--root", root, "mount", "dev/img:v1", mnt)
        mounts.append(mnt)
        views[mode] = tree(mnt)
        as_user("fusermount3", "-u", mnt)
        mounts.remove(mnt)
    assert views["unpacked"] == views["lazy"], f"rootless lazy view differs:\n{views}"
    assert not any(v.startswith(("dev/mem", "dev/sda")) for v in views["lazy"]), views["lazy"]
    assert any(v.startswith("dev/regular") for v in views["lazy"]), views["lazy"]
    assert "dev/ping xattrs: user.u=\"2\"" in views["lazy"], views["lazy"]
    assert warnings["unpacked"] == warnings["lazy"] and len(warnings["lazy"]) == 5, warnings
    print("ok: rootless load --lazy skips device nodes and xattrs as rootless load does:", views["lazy"])
finally:
    for m in mounts:
        subprocess.run(["fusermount3", "-u", m], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
