"""Process, privilege and libc helpers shared by the harness (standard library only)."""

import ctypes
import ctypes.util
import errno
import os
import shutil
import subprocess
import tempfile
import time

SKIP = 77
TEST_USER = "strata-test"
# Hang guards only (a wedged daemon must not hang ctest); never a pass/fail criterion.
HANG_GUARD_S = 60.0


class Skip(Exception):
    """The case needs something this machine/user cannot give: exit 77 with the reason."""


class Failure(Exception):
    """A case found a difference it cannot continue past."""


def run(cmd, check=False, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    p = subprocess.run(cmd, **kw)
    if check and p.returncode != 0:
        raise Failure(f"{' '.join(map(str, cmd))}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def errname(e):
    return errno.errorcode.get(e, str(e))


def is_root():
    return os.geteuid() == 0


def in_userns():
    try:
        with open("/proc/self/uid_map") as f:
            line = f.read().split()
        return not (line[:3] == ["0", "0", "4294967295"])
    except OSError:
        return False


def mountinfo():
    """Mount points (unescaped) with their fstype, as seen by this process."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            mp = parts[4].encode().decode("unicode_escape")
            out.append((mp, parts[sep + 1]))
    return out


def is_mounted(path, fstype_prefix=""):
    path = os.path.realpath(path)
    return any(mp == path and fs.startswith(fstype_prefix) for mp, fs in mountinfo())


def mount_count(path):
    """How many mounts are stacked on path (a failed mount must not add one)."""
    path = os.path.realpath(path)
    return sum(1 for mp, _ in mountinfo() if mp == path)


def wait_until(pred, guard=HANG_GUARD_S, step=0.02):
    end = time.monotonic() + guard
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def mkdtemp(tag):
    base = "/var/tmp" if os.path.isdir("/var/tmp") else "/tmp"
    d = tempfile.mkdtemp(prefix=f"strata-mt-{tag}-", dir=base)
    os.chmod(d, 0o755)
    return d


def rmtree(path):
    """rm -rf that first opens up dirs we own but can't read (overlayfs leaves work/work mode 000
    owned by us when it was mounted from a user namespace)."""
    if not path or not os.path.lexists(path):
        return

    def open_up(p):
        try:
            os.chmod(p, 0o700)
            for e in os.scandir(p):
                if e.is_dir(follow_symlinks=False):
                    open_up(e.path)
        except OSError:
            pass
    open_up(path)
    shutil.rmtree(path, ignore_errors=True)


# ---- libc via ctypes -------------------------------------------------------------------------

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]


def renameat2(src, dst, flags):
    if libc.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), src)


def setfsuid(uid):
    libc.setfsuid(uid)


def setfsgid(gid):
    libc.setfsgid(gid)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


CAP_FSETID = 4
_CAP_V3 = 0x20080522
_PR_CAPBSET_DROP = 24


def drop_capability(cap):
    """Removes capability `cap` from this process for good: bounding, effective, permitted and
    inheritable sets (as `setpriv --bounding-set=-cap --inh-caps=-cap` plus the current sets)."""
    if libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), "PR_CAPBSET_DROP")
    hdr, data = _CapHeader(_CAP_V3, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(hdr), data) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), "capget")
    word, bit = divmod(cap, 32)
    for field in ("effective", "permitted", "inheritable"):
        setattr(data[word], field, getattr(data[word], field) & ~(1 << bit))
    if libc.capset(ctypes.byref(hdr), data) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), "capset")


class Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]


libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]


class CDir:
    """opendir/readdir/telldir/seekdir from libc, to check directory offsets."""

    def __init__(self, path):
        self.d = libc.opendir(os.fsencode(path))
        if not self.d:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)

    def read(self):
        ctypes.set_errno(0)
        ent = libc.readdir(self.d)
        if not ent:
            e = ctypes.get_errno()
            if e:
                raise OSError(e, os.strerror(e))
            return None
        return os.fsdecode(ent.contents.d_name)

    def tell(self):
        return libc.telldir(self.d)

    def seek(self, pos):
        libc.seekdir(self.d, pos)

    def close(self):
        if self.d:
            libc.closedir(self.d)
            self.d = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---- users ---------------------------------------------------------------------------------------

def ensure_test_user():
    """As root: create the rootless test user (idempotent) and let it open /dev/fuse."""
    import pwd
    try:
        pw = pwd.getpwnam(TEST_USER)
    except KeyError:
        p = run(["useradd", "-m", TEST_USER])
        if p.returncode not in (0, 9):
            raise Skip(f"useradd {TEST_USER} failed: {p.stderr.strip()}")
        pw = pwd.getpwnam(TEST_USER)
    if os.path.exists("/dev/fuse"):
        os.chmod("/dev/fuse", 0o666)
    return pw


def accessible_by(path, uid, gid):
    """True if every parent dir is searchable and the file readable+executable for uid."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            os._exit(0 if os.access(path, os.R_OK | os.X_OK) else 1)
        except BaseException:
            os._exit(2)
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st) == 0
