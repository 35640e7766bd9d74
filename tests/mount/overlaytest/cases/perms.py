"""Permissions as root: other uids create files they own; default_permissions denies what the
kernel denies."""

from ..core import case
from ..fixture import D, F

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
