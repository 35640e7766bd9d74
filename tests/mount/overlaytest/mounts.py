"""Mounting the oracle (kernel overlayfs) and the filesystem under test (a FUSE daemon)."""

import os
import signal
import subprocess
import time

from . import env, lazy_lowers
from .env import Failure, Skip, run, wait_until


class KernelMount:
    """Kernel overlayfs. mode: root (plain mount), userns (we are root in a user namespace:
    plain mount with userxattr) or rootless (a helper `unshare -rm` process holds the mount and
    we reach it through /proc/PID/root)."""

    def __init__(self, mode, lowers, upper, work, mnt, opts=""):
        self.mode, self.lowers, self.upper, self.work, self.mnt = mode, lowers, upper, work, mnt
        self.opts = opts
        self.helper = None
        self.path = mnt

    def optstring(self):
        lowers = list(self.lowers)
        if not self.upper and len(lowers) < 2:  # a read-only kernel mount needs two lowers
            empty = os.path.join(os.path.dirname(self.mnt), "k-empty-lower")
            os.makedirs(empty, exist_ok=True)
            lowers.append(empty)
        o = ["lowerdir=" + ":".join(lowers)]
        if self.upper:
            o += ["upperdir=" + self.upper, "workdir=" + self.work]
        if self.mode != "root":
            o.append("userxattr")
        if self.opts:
            o.append(self.opts)
        return ",".join(o)

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        cmd = ["mount", "-t", "overlay", "overlay", "-o", self.optstring(), self.mnt]
        if self.mode in ("root", "userns"):
            p = run(cmd)
            if p.returncode != 0:
                raise Failure(f"kernel overlay mount failed ({self.optstring()}): {p.stderr.strip()}")
            return self
        script = 'mount -t overlay overlay -o "$1" "$2" || exit 1; echo READY; exec cat >/dev/null'
        self.helper = subprocess.Popen(["unshare", "-rm", "sh", "-c", script, "sh",
                                        self.optstring(), self.mnt], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.helper.stdout.readline()
        if line.strip() != "READY":
            err = self.helper.stderr.read()
            self.helper.wait()
            raise Failure(f"rootless kernel overlay mount failed: {err.strip()}")
        self.path = f"/proc/{self.helper.pid}/root{self.mnt}"
        return self

    def stop(self):
        if self.helper:
            try:
                self.helper.stdin.close()
            except OSError:
                pass
            try:
                self.helper.wait(timeout=env.HANG_GUARD_S)
            except subprocess.TimeoutExpired:
                self.helper.kill()
                self.helper.wait()
            self.helper = None
            return
        if env.is_mounted(self.mnt):
            if run(["umount", self.mnt]).returncode != 0:
                run(["umount", "-l", self.mnt])


def fuse_optstring(lowers, upper, work, extra=""):
    if lazy_lowers.enabled():
        lowers = [lazy_lowers.descriptor_for(l) for l in lowers]
    o = ["lowerdir=" + ":".join(lowers)]
    if upper:
        o += ["upperdir=" + upper, "workdir=" + work]
    if extra:
        o.append(extra)
    return ",".join(o)


def find_daemon(binary, mnt):
    """pid of a detached daemon serving `mnt` (matched by argv), or None."""
    want = os.path.basename(binary)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == want and os.path.realpath(mnt) in [
                os.path.realpath(a) for a in argv[1:] if a.startswith("/")]:
            return int(d)
    return None


def uring_fds(pid):
    """How many io_uring instances the process `pid` holds open."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[io_uring]"
            except OSError:
                pass
    except OSError:
        pass
    return n


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class FuseMount:
    """The filesystem under test, started in the foreground (-f) so we own the process."""

    def __init__(self, binary, lowers, upper, work, mnt, opts="", env_vars=None, log=None,
                 foreground=True, args=None, uring_check=True):
        self.binary, self.mnt = binary, mnt
        self.uring_check = uring_check  # False: a case that chooses the transport itself
        # run.py --fs-opts: options every fs mount of the run gets (e.g. writeback=1).
        extra = ",".join(o for o in (opts, os.environ.get("OVERLAYTEST_FS_OPTS", "")) if o)
        self.optstr = fuse_optstring(lowers, upper, work, extra)
        self.env = dict(os.environ, **(env_vars or {}))
        self.log = log or (mnt.rstrip("/") + ".daemon.log")
        self.foreground = foreground
        self.args = args
        self.proc = None
        self.pid = None
        self.path = mnt
        self.exit_code = None

    def argv(self):
        if self.args is not None:
            return [self.binary] + self.args
        return [self.binary] + (["-f"] if self.foreground else []) + ["-o", self.optstr, self.mnt]

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=logf, env=self.env)
        logf.close()
        if self.foreground:
            self.pid = self.proc.pid
            ok = wait_until(lambda: env.is_mounted(self.mnt, "fuse") or self.proc.poll() is not None)
            if not ok or not env.is_mounted(self.mnt, "fuse"):
                code = self.proc.poll()
                self.stop()
                raise Failure(f"{self.binary} did not mount {self.mnt} (exit {code}): "
                              f"{self.stderr().strip()[-2000:]}")
        else:
            try:
                code = self.proc.wait(timeout=env.HANG_GUARD_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise Failure(f"{self.binary} did not detach")
            if code != 0 or not env.is_mounted(self.mnt, "fuse"):
                raise Failure(f"{self.binary} exited {code}, mounted={env.is_mounted(self.mnt)}: "
                              f"{self.stderr().strip()[-2000:]}")
            self.pid = find_daemon(self.binary, self.mnt)
        if os.environ.get("OVERLAYTEST_URING") == "1" and self.uring_check:
            self.require_uring()
        return self

    def require_uring(self):
        """run.py --uring: the daemon must serve this mount through io_uring. A request (the
        stat) waits for the INIT answer, and strata-fs closes its rings before answering INIT
        when it cannot use them, so after it the rings are open exactly when they are used."""
        os.stat(self.mnt)
        rings = uring_fds(self.pid)
        if rings == 0:
            raise Failure(f"{self.binary} serves {self.mnt} through /dev/fuse, not io_uring "
                          f"(remount with -o debug: the daemon logs why)")

    def stderr(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def unmount(self, how="fusermount3"):
        if not env.is_mounted(self.mnt):
            return True
        cmd = ["fusermount3", "-u", self.mnt] if how == "fusermount3" else ["umount", self.mnt]
        return run(cmd).returncode == 0

    def wait_exit(self):
        """Waits for the daemon to exit; returns its exit code (None if not ours/unknown)."""
        if self.proc is not None and self.foreground:
            try:
                self.exit_code = self.proc.wait(timeout=env.HANG_GUARD_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.exit_code = "hung"
            return self.exit_code
        if self.pid:
            wait_until(lambda: not pid_alive(self.pid))
            if pid_alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
                self.exit_code = "hung"
        return self.exit_code

    def stop(self):
        """Teardown: unmount by any means, then wait for the daemon. Never raises."""
        try:
            if env.is_mounted(self.mnt):
                if not self.unmount("fusermount3") and not self.unmount("umount"):
                    run(["umount", "-l", self.mnt])
                    run(["fusermount3", "-uz", self.mnt])
            self.wait_exit()
        except Exception:
            pass
        return self.exit_code

    def signal(self, sig):
        os.kill(self.pid, sig)

    def rss_kib(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:") or line.startswith("VmRSS:"):
                        key, val = line.split(":")
                        if key == "VmHWM":
                            return int(val.split()[0])
        except (OSError, TypeError):
            pass
        return None


def require_kernel_overlay():
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            run(["modprobe", "overlay"])
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            raise Skip("kernel overlayfs is not available")


def require_fuse(binary):
    if not os.path.exists("/dev/fuse"):
        raise Skip("/dev/fuse does not exist")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise Skip("/dev/fuse is not accessible to this user (mode 600? run setup as root)")
    if not binary or not os.path.exists(binary):
        raise Skip(f"filesystem binary {binary!r} does not exist (not built yet?)")
    if not os.access(binary, os.X_OK):
        raise Skip(f"filesystem binary {binary!r} is not executable by this user")


def settle():
    time.sleep(0)
