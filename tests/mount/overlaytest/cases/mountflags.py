"""Kernel mount flags as fuse-overlayfs sets them: as root `allow_other` and set-uid honoured
(podman runs a container's non-root users and set-uid programs on the mount), unless the
caller gives `nosuid`."""

import json
import os
import shutil

from .. import env
from .. import fixture as fx
from ..core import case
from ..fixture import D, F

NOBODY = 65534


def _mount_line(mnt):
    """(per-mount options, super options) of the mount at `mnt` in /proc/self/mountinfo."""
    real = os.path.realpath(mnt)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4].encode().decode("unicode_escape") == real:
                sep = parts.index("-")
                found = (parts[5].split(","), parts[sep + 3].split(","), line.strip())
    return found  # the last one: the top of the stack


def _as_nobody(mnt):
    """In a forked child with uid/gid 65534 and no groups: read a 0644 file, run a 0755 program
    and a set-uid-root one (`id -u` prints the effective uid). Returns a dict of results."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        out = {}
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            try:
                with open(os.path.join(mnt, "d", "readable")) as f:
                    out["read"] = f.read()
            except OSError as e:
                out["read"] = "error " + env.errname(e.errno)
            for name in ("prog", "suid-id"):
                p = env.run([os.path.join(mnt, "d", name), "-u"], timeout=env.HANG_GUARD_S)
                out[name] = p.stdout.strip() if p.returncode == 0 else \
                    f"exit {p.returncode}: {p.stderr.strip()}"
        except BaseException as e:  # report, never fall back into the harness
            out["error"] = repr(e)
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data or b"{}")


@case("mount-flags", "cli", ("root",))
def mount_flags(ctx):
    """As root, no flags given: mountinfo shows allow_other and no nosuid; uid 65534 reads a 0644
    file, runs a 0755 program, and a set-uid-root copy of id(1) runs with euid 0. With -o nosuid:
    nosuid, and the set-uid program does not elevate."""
    ctx.require_root()
    id_bin = shutil.which("id") or "/usr/bin/id"
    with open(id_bin, "rb") as f:
        prog = f.read()
    base = ctx.path("flags")
    lowers, up, work = fx.build_stack(base, [[D("d", mode=0o755), F("d/readable", "hello\n", mode=0o644),
                                              F("d/prog", prog, mode=0o755),
                                              F("d/suid-id", prog, mode=0o755)]], ctx.kernel_form)
    sid = os.path.join(lowers[0], "d", "suid-id")
    os.chown(sid, 0, 0)
    os.chmod(sid, 0o4755)  # after chown, which drops set-id bits
    # The harness's tmp dir is 0755 down to the layers; uid 65534 must reach the mount point.
    ctx.check(env.accessible_by(base, NOBODY, NOBODY), f"{base} is not reachable by uid {NOBODY}")

    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"))
    got = _mount_line(m.path)
    if not ctx.check(got is not None, f"{m.path} not in /proc/self/mountinfo"):
        return
    per_mount, super_opts, line = got
    ctx.log(f"mountinfo: {line}")
    ctx.check("nosuid" not in per_mount, f"default mount is nosuid: {line}")
    ctx.check("allow_other" in super_opts, f"default mount has no allow_other: {line}")
    res = _as_nobody(m.path)
    ctx.log(f"as uid {NOBODY}: {res}")
    ctx.check("error" not in res, f"uid {NOBODY} child: {res.get('error')}")
    ctx.check(res.get("read") == "hello\n", f"uid {NOBODY} reading a 0644 file: {res.get('read')!r}")
    ctx.check(res.get("prog") == str(NOBODY), f"uid {NOBODY} running a 0755 program: {res.get('prog')!r}")
    ctx.check(res.get("suid-id") == "0",
              f"uid {NOBODY} running a set-uid-root program: euid {res.get('suid-id')!r}, want 0")
    ctx.unmount(m)

    # The caller's nosuid wins; the mount stays reachable by other users.
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt2"), opts="nosuid")
    got = _mount_line(m.path)
    if not ctx.check(got is not None, f"{m.path} not in /proc/self/mountinfo"):
        return
    per_mount, super_opts, line = got
    ctx.log(f"mountinfo (-o nosuid): {line}")
    ctx.check("nosuid" in per_mount, f"-o nosuid: mount is not nosuid: {line}")
    ctx.check("allow_other" in super_opts, f"-o nosuid: no allow_other: {line}")
    res = _as_nobody(m.path)
    ctx.log(f"as uid {NOBODY} (-o nosuid): {res}")
    ctx.check(res.get("read") == "hello\n", f"-o nosuid: uid {NOBODY} reading: {res.get('read')!r}")
    ctx.check(res.get("suid-id") == str(NOBODY),
              f"-o nosuid: a set-uid-root program ran with euid {res.get('suid-id')!r}, want {NOBODY}")
    ctx.unmount(m)
