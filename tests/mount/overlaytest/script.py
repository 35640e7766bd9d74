"""The operation script run identically on both mounts; records each result or errno."""

import fcntl
import hashlib
import mmap
import os
import stat

from . import env
from .view import TYPES, data_ranges, mib_chunks, is_private_xattr, mtime_class, short


class Ops:
    def __init__(self, root, verbose=False, side=""):
        self.root = root
        self.rec = []
        self.verbose = verbose
        self.side = side
        self.state = {}  # scratch for a script (e.g. inode numbers before an op)

    def p(self, rel):
        return os.path.join(self.root, rel) if rel not in ("", ".") else self.root

    def do(self, label, fn, *a, **kw):
        """Runs fn; records ('ok', value) or ('err', ERRNO). Returns the value or None."""
        try:
            v = fn(*a, **kw)
            r = ("ok", v) if v is not None else ("ok",)
        except OSError as e:
            r, v = ("err", env.errname(e.errno)), None
        self.rec.append((label, r))
        if self.verbose:
            print(f"    [{self.side}] {label} -> {short(r)}")
        return v

    def note(self, label, value):
        self.rec.append((label, ("val", value)))
        if self.verbose:
            print(f"    [{self.side}] {label} = {short(value)}")

    # ---- file content -------------------------------------------------------------------
    def write(self, rel, data, mode="w", perm=0o644):
        if isinstance(data, str):
            data = data.encode()
        flags = {"w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "a": os.O_WRONLY | os.O_APPEND,
                 "ac": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "r+": os.O_RDWR,
                 "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL, "t": os.O_WRONLY | os.O_TRUNC}[mode]

        def f():
            fd = os.open(self.p(rel), flags, perm)
            try:
                return os.write(fd, data)
            finally:
                os.close(fd)
        return self.do(f"write({rel},{mode},{len(data)})", f)

    def pwrite(self, rel, data, off):
        def f():
            fd = os.open(self.p(rel), os.O_WRONLY)
            try:
                return os.pwrite(fd, data, off)
            finally:
                os.close(fd)
        return self.do(f"pwrite({rel},{off},{len(data)})", f)

    def read(self, rel):
        def f():
            with open(self.p(rel), "rb") as fh:
                b = fh.read()
            return b.decode() if len(b) < 64 and b.isascii() else \
                f"{len(b)}b:{hashlib.sha256(b).hexdigest()[:12]}"
        return self.do(f"read({rel})", f)

    def create(self, rel, perm=0o644):
        return self.do(f"create({rel},{oct(perm)})",
                       lambda: os.close(os.open(self.p(rel), os.O_CREAT | os.O_EXCL | os.O_WRONLY, perm)))

    def open_flags(self, rel, flags, label=None):
        return self.do(label or f"open({rel},{flags:#x})",
                       lambda: os.close(os.open(self.p(rel), flags, 0o644)))

    def truncate(self, rel, size):
        return self.do(f"truncate({rel},{size})", os.truncate, self.p(rel), size)

    def fallocate(self, rel, off, length):
        def f():
            fd = os.open(self.p(rel), os.O_WRONLY)
            try:
                os.posix_fallocate(fd, off, length)
            finally:
                os.close(fd)
        return self.do(f"fallocate({rel},{off},{length})", f)

    def ftruncate(self, rel, size):
        def f():
            fd = os.open(self.p(rel), os.O_WRONLY)
            try:
                os.ftruncate(fd, size)
            finally:
                os.close(fd)
        return self.do(f"ftruncate({rel},{size})", f)

    def copy_range(self, src, dst, length):
        def f():
            fi, fo = os.open(self.p(src), os.O_RDONLY), os.open(self.p(dst), os.O_WRONLY)
            try:
                return os.copy_file_range(fi, fo, length, 0, 0)
            finally:
                os.close(fi)
                os.close(fo)
        return self.do(f"copy_file_range({src}->{dst},{length})", f)

    def ranges(self, rel):
        # Kernel overlayfs copies up data in 1 MiB chunks, so a chunk with any data becomes
        # fully allocated there; compare which MiB chunks hold data (holes kept at that grain).
        return self.do(f"data_ranges({rel}) in MiB chunks", lambda: mib_chunks(data_ranges(self.p(rel))))

    def mmap_write(self, rel, off, data):
        def f():
            fd = os.open(self.p(rel), os.O_RDWR)
            try:
                m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                m[off:off + len(data)] = data
                m.flush()
                m.close()
            finally:
                os.close(fd)
        return self.do(f"mmap_write({rel},{off},{len(data)})", f)

    def fsync(self, rel, data_only=False):
        def f():
            fd = os.open(self.p(rel), os.O_RDWR)
            try:
                (os.fdatasync if data_only else os.fsync)(fd)
            finally:
                os.close(fd)
        return self.do(f"{'fdatasync' if data_only else 'fsync'}({rel})", f)

    # ---- namespace ----------------------------------------------------------------------
    def mkdir(self, rel, perm=0o755):
        return self.do(f"mkdir({rel})", os.mkdir, self.p(rel), perm)

    def rmdir(self, rel):
        return self.do(f"rmdir({rel})", os.rmdir, self.p(rel))

    def unlink(self, rel):
        return self.do(f"unlink({rel})", os.unlink, self.p(rel))

    def rename(self, a, b, flags=0):
        name = {0: "rename", env.RENAME_NOREPLACE: "rename_noreplace",
                env.RENAME_EXCHANGE: "rename_exchange"}[flags]
        if flags == 0:
            return self.do(f"{name}({a},{b})", os.rename, self.p(a), self.p(b))
        return self.do(f"{name}({a},{b})", env.renameat2, self.p(a), self.p(b), flags)

    def link(self, a, b):
        return self.do(f"link({a},{b})", os.link, self.p(a), self.p(b))

    def symlink(self, target, rel):
        return self.do(f"symlink({target},{rel})", os.symlink, target, self.p(rel))

    def mknod(self, rel, kind, perm=0o644, dev=(0, 0)):
        t = {"fifo": stat.S_IFIFO, "sock": stat.S_IFSOCK, "chr": stat.S_IFCHR,
             "blk": stat.S_IFBLK, "file": stat.S_IFREG}[kind]
        return self.do(f"mknod({rel},{kind})", os.mknod, self.p(rel), t | perm, os.makedev(*dev))

    def readlink(self, rel):
        return self.do(f"readlink({rel})", os.readlink, self.p(rel))

    def listdir(self, rel):
        return self.do(f"listdir({rel})", lambda: sorted(os.listdir(self.p(rel))))

    # ---- metadata -----------------------------------------------------------------------
    def stat(self, rel, fields=("type", "mode", "uid", "gid", "size", "nlink")):
        def f():
            st = os.lstat(self.p(rel))
            v = {"type": TYPES.get(stat.S_IFMT(st.st_mode)), "mode": oct(stat.S_IMODE(st.st_mode)),
                 "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink,
                 "size": st.st_size if stat.S_ISREG(st.st_mode) else None,
                 "mtime": mtime_class(st)}
            return {k: v[k] for k in fields}
        return self.do(f"stat({rel})", f)

    def chmod(self, rel, perm):
        return self.do(f"chmod({rel},{oct(perm)})", os.chmod, self.p(rel), perm)

    def chown(self, rel, uid, gid):
        return self.do(f"lchown({rel},{uid},{gid})", os.chown, self.p(rel), uid, gid,
                       follow_symlinks=False)

    def utime(self, rel, t):
        return self.do(f"utime({rel},{t})", os.utime, self.p(rel), (t, t), follow_symlinks=False)

    def setxattr(self, rel, name, value, flags=0):
        if isinstance(value, str):
            value = value.encode()
        return self.do(f"setxattr({rel},{name})", os.setxattr, self.p(rel), name, value, flags,
                       follow_symlinks=False)

    def getxattr(self, rel, name):
        return self.do(f"getxattr({rel},{name})",
                       lambda: os.getxattr(self.p(rel), name, follow_symlinks=False).hex())

    def listxattr(self, rel, public_only=True):
        def f():
            names = os.listxattr(self.p(rel), follow_symlinks=False)
            return sorted(n for n in names if not (public_only and is_private_xattr(n)))
        return self.do(f"listxattr({rel})", f)

    def removexattr(self, rel, name):
        return self.do(f"removexattr({rel},{name})", os.removexattr, self.p(rel), name,
                       follow_symlinks=False)

    def ino(self, rel):
        """Raw inode number (never recorded: compare relations, not numbers)."""
        return os.lstat(self.p(rel)).st_ino

    def locks(self, rel):
        """flock and POSIX locks: conflicts seen from a second open file / child process."""
        def f():
            out = []
            fd1 = os.open(self.p(rel), os.O_RDWR)
            fd2 = os.open(self.p(rel), os.O_RDWR)
            try:
                fcntl.flock(fd1, fcntl.LOCK_EX)
                try:
                    fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    out.append("flock:second-got-lock")
                except OSError as e:
                    out.append("flock:" + env.errname(e.errno))
                fcntl.flock(fd1, fcntl.LOCK_UN)
                fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
                out.append("flock:after-unlock-ok")
                fcntl.flock(fd2, fcntl.LOCK_UN)
                fcntl.lockf(fd1, fcntl.LOCK_EX, 10, 0)
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    try:
                        fd3 = os.open(self.p(rel), os.O_RDWR)
                        try:
                            fcntl.lockf(fd3, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
                            msg = b"posix:child-got-lock"
                        except OSError as e:
                            msg = ("posix:" + env.errname(e.errno)).encode()
                        try:
                            fcntl.lockf(fd3, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 20)
                            msg += b",other-range-ok"
                        except OSError as e:
                            msg += (",other-range:" + env.errname(e.errno)).encode()
                        os.write(w, msg)
                    finally:
                        os._exit(0)
                os.close(w)
                out.append(os.read(r, 200).decode())
                os.close(r)
                os.waitpid(pid, 0)
                fcntl.lockf(fd1, fcntl.LOCK_UN, 10, 0)
            finally:
                os.close(fd1)
                os.close(fd2)
            return out
        return self.do(f"locks({rel})", f)

    def as_user(self, uid, gid, fn):
        """Runs fn(Ops) in a forked child with real/effective/fs ids uid:gid; records its ops."""
        def become():
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        self.in_child(f"uid {uid}", become, fn)

    def as_root_without(self, cap, fn):
        """Runs fn(Ops) in a forked child that keeps uid 0 but has lost capability `cap` (env's
        CAP_* numbers) from every set; records its ops."""
        self.in_child(f"uid 0 without cap {cap}", lambda: env.drop_capability(cap), fn)

    def in_child(self, who, become, fn):
        """Runs become() and then fn(Ops) in a forked child; records its ops as [who] ..."""
        import pickle
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(r)
                become()
                child = Ops(self.root, self.verbose, f"{self.side} as {who}")
                fn(child)
                data = pickle.dumps(child.rec)
            except BaseException as e:  # report, don't raise out of a fork
                data = pickle.dumps([(f"{who} raised", ("exc", repr(e)))])
                code = 1
            with os.fdopen(w, "wb") as f:
                f.write(data)
            os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        for label, res in pickle.loads(data):
            self.rec.append((f"[{who}] {label}", res))
