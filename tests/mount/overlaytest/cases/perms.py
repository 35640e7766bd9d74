"""Permissions as root: other uids create files they own; default_permissions denies what the
kernel denies."""

import os
import re

from .. import fixture as fx
from ..core import case
from ..env import Skip
from ..fixture import D, F, X

U, G = 4321, 4321


def perm_layers():
    return [[D("open", mode=0o777), D("sticky", mode=0o1777), F("sticky/roots", mode=0o666),
             D("closed", mode=0o755), F("closed/f", "c"), F("secret", "s", mode=0o600),
             F("readonly", "r", mode=0o644), F("mine", "m", uid=U, gid=G, mode=0o600),
             D("mydir", uid=U, gid=G, mode=0o700), F("mydir/x", "x", uid=U, gid=G),
             F("world", "w", mode=0o666), D("noexec", mode=0o700), F("noexec/f"),
             F("setid_w", "s", mode=0o6777), F("setid_t", "s", mode=0o6777)]]


def user_ops(t):
    t.create("open/by_user")
    t.mkdir("open/dir_by_user")
    t.symlink("x", "open/sym_by_user")
    t.create("closed/denied")              # EACCES
    t.read("secret")                       # EACCES
    t.write("readonly", "x", "a")          # EACCES
    t.write("world", "ok\n", "a")          # copy-up by a non-owner
    t.unlink("sticky/roots")               # EPERM (sticky, not owner)
    t.chmod("readonly", 0o777)             # EPERM
    t.chown("mine", 0, 0)                  # EPERM
    t.chmod("mine", 0o640)
    t.write("mine", "mine", "a")
    t.write("mydir/x", "x", "a")
    t.mkdir("mydir/sub")
    t.stat("noexec/f")                     # EACCES
    t.rename("open/by_user", "open/renamed")
    t.unlink("closed/f")                   # EACCES
    t.setxattr("mine", "user.u", "1")
    t.setxattr("readonly", "user.u", "1")  # EACCES / EPERM
    t.write("setid_w", "x", "a")            # set-id bits dropped by a non-owner's write
    t.truncate("setid_t", 0)                # ... and by its truncate
    t.stat("setid_w", fields=("mode",))
    t.stat("setid_t", fields=("mode",))
    t.stat("open/renamed", fields=("uid", "gid", "mode"))
    t.stat("open/dir_by_user", fields=("uid", "gid", "mode"))


@case("permissions", "perms", ("root",))
def permissions(ctx):
    """Ops by another uid (forked child, setresuid): ownership of new files, EACCES/EPERM as the
    kernel decides; the fs runs with default_permissions."""
    ctx.require_root()
    ctx.differential("perms", perm_layers(), lambda t: t.as_user(U, G, user_ops),
                     share_lowers=True, fs_opts="default_permissions,allow_other")


CAP = bytes.fromhex("0100000200200000000000000000000000000000")


def killpriv_layers():
    files = [F(n, "payload\n", mode=0o6777) for n in
             ("chown_root", "chown_user", "trunc_open", "write_twice", "write_root", "sgid_only")]
    files[-1] = F("sgid_only", "payload\n", mode=0o2767)  # set-gid without group-exec
    return [files + [F("capped", "cap\n", mode=0o755), F("capped_user", "cap\n", mode=0o777),
                     F("capped_chown", "cap\n", mode=0o755), F("mine", "m", uid=U, gid=G, mode=0o6755),
                     X("capped", "security.capability", CAP), X("capped_user", "security.capability", CAP),
                     X("capped_chown", "security.capability", CAP)]]


def killpriv_user_ops(t):
    t.write("write_twice", "a", "a")
    t.write("write_twice", "b", "a")
    t.open_flags("trunc_open", os.O_WRONLY | os.O_TRUNC, "open(trunc_open,O_WRONLY|O_TRUNC)")
    t.write("capped_user", "x", "a")                  # a write drops security.capability
    t.write("sgid_only", "x", "a")
    t.chown("mine", U, G)                             # the owner's own chown drops set-id bits
    for n in ("write_twice", "trunc_open", "sgid_only", "mine"):
        t.stat(n, fields=("mode", "size"))


@case("killpriv", "perms", ("root",))
def killpriv(ctx):
    """Set-id bits and security.capability are dropped by writes, O_TRUNC opens and chown as the
    kernel drops them (the fs asks for FUSE_HANDLE_KILLPRIV_V2, so it is the one dropping them)."""
    ctx.require_root()

    def script(t):
        t.write("write_root", "r", "a")               # root keeps set-id bits on write
        t.chown("chown_root", 0, 0)                   # chown drops them, even by root
        t.chown("chown_user", U, G)
        t.write("capped", "x", "a")
        t.getxattr("capped", "security.capability")   # ENODATA
        t.chown("capped_chown", U, G)
        t.getxattr("capped_chown", "security.capability")
        t.setxattr("write_root", "security.capability", CAP)
        t.write("write_root", "again", "a")           # dropped again after it was set anew
        t.getxattr("write_root", "security.capability")
        t.chmod("write_root", 0o4755)
        t.as_user(U, G, killpriv_user_ops)
        for n in ("write_root", "chown_root", "chown_user", "capped", "capped_user", "capped_chown"):
            t.stat(n, fields=("mode", "uid", "gid", "size"))
            t.listxattr(n)
    ctx.differential("killpriv", killpriv_layers(), script, share_lowers=True,
                     fs_opts="default_permissions,allow_other")


def killpriv_fd_ops_user(t):
    t.ftruncate("ftrunc", 2)
    t.fallocate("falloc", 0, 8192)
    t.copy_range("source", "copied", 2)
    for n in ("ftrunc", "falloc", "copied"):
        t.stat(n, fields=("mode", "size"))


@case("killpriv-fd-ops", "perms", ("root",))
def killpriv_fd_ops(ctx):
    """ftruncate, fallocate and copy_file_range through a user's open fd drop set-id bits as
    write(2) does (the daemon served them as root and kept the bits: a user could replace a
    set-uid-root file's contents and keep the bit)."""
    ctx.require_root()
    layers = [[F(n, "payload\n", mode=0o6777) for n in ("ftrunc", "falloc", "copied")] + [F("source", "src\n")]]
    ctx.differential("killpriv-fd-ops", layers, lambda t: t.as_user(U, G, killpriv_fd_ops_user),
                     share_lowers=True, fs_opts="default_permissions,allow_other")


@case("killpriv-requests", "perms", ("root", "rootless", "userns"))
def killpriv_requests(ctx):
    """fs only: the kernel hands set-id/capability dropping to the fs (FUSE_HANDLE_KILLPRIV_V2),
    so a run of write(2)s costs no security.capability GETXATTR each (it did before)."""
    if ctx.fs_is_fuse_overlayfs:
        raise Skip("strata-fs only (fuse-overlayfs does not ask for FUSE_HANDLE_KILLPRIV_V2)")
    base = ctx.path("kpreq")
    lowers, up, work = fx.build_stack(base, [[F("lower_file", "x\n")]], ctx.kernel_form)
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"), opts="debug")
    log = m.stderr()
    offered = re.search(r"INIT: 7\.\d+[^\n]*\n[^\n]*flags=0x([0-9a-f]+)", log)  # the kernel's flags
    if not offered or not int(offered.group(1), 16) & (1 << 28):
        raise Skip("the kernel does not offer FUSE_HANDLE_KILLPRIV_V2")
    before = len(re.findall(r"opcode: GETXATTR", m.stderr()))
    for name in ("new_file", "lower_file"):  # a created file, and a copied-up one
        fd = os.open(os.path.join(m.path, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for _ in range(20):
                os.write(fd, b"y")
        finally:
            os.close(fd)
    asked = len(re.findall(r"opcode: GETXATTR", m.stderr())) - before
    ctx.check(asked <= 2, f"{asked} GETXATTR requests for 40 writes to two files (want at most one each)")


SETID_OPS = ("write", "trunc", "ftrunc", "otrunc", "falloc", "copied", "sgid_write")


def setid_layers():
    """Set-id files owned by another user (root is then not in their group either)."""
    files = [F("source", "src\n")]
    for who in ("nocap", "root"):
        files += [F(f"{who}_{op}", "payload\n", uid=U, gid=G, mode=0o6755) for op in SETID_OPS]
        files[-1] = F(f"{who}_sgid_write", "payload\n", uid=U, gid=G, mode=0o2744)  # set-gid, no g+x
    return [files]


def setid_ops(who):
    def ops(t):
        t.write(f"{who}_write", "x", "a")
        t.truncate(f"{who}_trunc", 2)
        t.ftruncate(f"{who}_ftrunc", 2)
        t.open_flags(f"{who}_otrunc", os.O_WRONLY | os.O_TRUNC, f"open({who}_otrunc,O_WRONLY|O_TRUNC)")
        t.fallocate(f"{who}_falloc", 0, 8192)
        t.copy_range("source", f"{who}_copied", 2)
        t.write(f"{who}_sgid_write", "x", "a")
        for op in SETID_OPS:
            t.stat(f"{who}_{op}", fields=("mode", "uid", "gid", "size"))
    return ops


@case("killpriv-no-fsetid", "perms", ("root",))
def killpriv_no_fsetid(ctx):
    """Root without CAP_FSETID loses set-id bits on write, truncate, ftruncate, O_TRUNC open,
    fallocate and copy_file_range, as on the kernel; root with it keeps them. The daemon took
    uid 0 for CAP_FSETID and kept the bits (`strata run --cap-drop FSETID`, capsh
    --drop=cap_fsetid); the kernel's FUSE_HANDLE_KILLPRIV_V2 flags now decide (kill_suidgid.hpp).
    With FUSE passthrough negotiated (the default) and with passthrough=off."""
    ctx.require_root()
    from ..env import CAP_FSETID

    def script(t):
        t.as_root_without(CAP_FSETID, setid_ops("nocap"))
        setid_ops("root")(t)
    for name, opts in (("killpriv-no-fsetid", "default_permissions,allow_other"),
                       ("killpriv-no-fsetid-nopt", "default_permissions,allow_other,passthrough=off")):
        ctx.differential(name, setid_layers(), script, share_lowers=True, fs_opts=opts)
