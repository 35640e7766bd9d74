"""Mount lifecycle: external changes, unmount paths, SIGTERM, SIGKILL mid copy-up, CLI errors,
mount(8) helper, read-only mounts."""

import os
import signal
import subprocess

from .. import env
from .. import fixture as fx
from ..core import case
from ..fixture import F
from ..mounts import FuseMount, fuse_optstring, pid_alive, uring_fds

POLL_S = 5.0  # how long an external change may take to show (cache timeout is 1 s)


def _stack(ctx, name, layer=None):
    base = ctx.path(name)
    return base, fx.build_stack(base, [layer or [F("a", "a"), F("d/x", "x")]], ctx.kernel_form)


def _tree(path):
    out = {}
    for dp, dns, fns in os.walk(path):
        for n in dns + fns:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@case("external-changes", "lifecycle", ("root", "rootless", "userns"))
def external_changes(ctx):
    """Files added directly to the upper or a lower dir show in the mount (polled up to 5 s)."""
    base, (lowers, up, work) = _stack(ctx, "ext")
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"))
    os.listdir(os.path.join(m.path, "d"))
    os.stat(os.path.join(m.path, "d", "x"))
    with open(os.path.join(lowers[0], "d", "new_lower"), "w") as f:
        f.write("L")
    os.makedirs(os.path.join(up, "d"), exist_ok=True)
    with open(os.path.join(up, "d", "new_upper"), "w") as f:
        f.write("U")
    with open(os.path.join(up, "top_upper"), "w") as f:
        f.write("T")
    for rel in ["d/new_lower", "d/new_upper", "top_upper"]:
        p = os.path.join(m.path, rel)
        seen = env.wait_until(lambda: os.path.exists(p), guard=POLL_S, step=0.1)
        ctx.check(seen, f"{rel}: added beside the mount, not visible via lookup within {POLL_S} s")
    names = set()

    def listed():
        names.clear()
        names.update(os.listdir(os.path.join(m.path, "d")))
        return {"new_lower", "new_upper", "x"} <= names
    ctx.check(env.wait_until(listed, guard=POLL_S, step=0.1), f"readdir(d) shows {sorted(names)}")


def _detached(ctx, base, lowers, up, work, mnt):
    m = FuseMount(ctx.binary, lowers, up, work, mnt, foreground=False)
    ctx.mounts.append(m)
    m.start()
    ctx.check(m.pid is not None, "could not find the detached daemon's pid")
    return m


@case("unmount", "lifecycle", ("root", "rootless"))
def unmount(ctx):
    """Detaches once mounted; `fusermount3 -u` and `umount` (root) unmount and the daemon exits."""
    base, (lowers, up, work) = _stack(ctx, "umount")
    methods = ["fusermount3"] + (["umount"] if ctx.mode == "root" else [])
    for how in methods:
        mnt = os.path.join(base, "mnt-" + how)
        m = _detached(ctx, base, lowers, up, work, mnt)
        ctx.check(os.path.exists(os.path.join(mnt, "a")), "mount not usable right after detach")
        ctx.check(m.unmount(how), f"{how} failed")
        ctx.check(not env.is_mounted(mnt), f"still mounted after {how}")
        if m.pid:
            env.wait_until(lambda: not pid_alive(m.pid))
            ctx.check(not pid_alive(m.pid), f"daemon still running after {how}")
        ctx.unmount(m)


@case("sigterm", "lifecycle", ("root", "rootless", "userns"))
def sigterm(ctx):
    """SIGTERM to the daemon unmounts and it exits 0."""
    base, (lowers, up, work) = _stack(ctx, "term")
    mnt = os.path.join(base, "mnt")
    m = ctx.mount_fs(lowers, up, work, mnt)
    with open(os.path.join(mnt, "a"), "a") as f:
        f.write("x")
    m.signal(signal.SIGTERM)
    code = m.wait_exit()
    ctx.check(code == 0, f"daemon exit status after SIGTERM: {code} (want 0)\n{m.stderr()[-1000:]}")
    ctx.check(not env.is_mounted(mnt), "still mounted after SIGTERM")


@case("sigkill-copyup", "lifecycle", ("root",))
def sigkill_copyup(ctx):
    """SIGKILL mid copy-up of a big file: after the next mount the upper holds the old or the
    new file, never half, and the workdir holds no leftovers."""
    base = ctx.path("kill")
    lowers, up, work = fx.build_stack(base, [[F("small", "s")]], ctx.kernel_form)
    big = os.path.join(lowers[0], "big")
    block = bytes(range(256)) * 4096  # 1 MiB of non-zero data: no holes to skip
    with open(big, "wb") as f:
        for _ in range(192):
            f.write(block)
    size = os.path.getsize(big)
    mnt = os.path.join(base, "mnt")
    m = ctx.mount_fs(lowers, up, work, mnt)
    with open(os.path.join(mnt, "small"), "a") as f:
        f.write("x")  # let the fs set up whatever it keeps in workdir
    baseline = set(_tree(work))
    writer = subprocess.Popen(["/usr/bin/python3", "-c",
                               "import sys; f=open(sys.argv[1],'ab'); f.write(b'TAIL'); f.close()",
                               os.path.join(mnt, "big")], stderr=subprocess.DEVNULL)
    # Kill as soon as the copy-up shows on disk (staged in workdir or in upper).
    env.wait_until(lambda: set(_tree(work)) != baseline or os.path.exists(os.path.join(up, "big"))
                   or writer.poll() is not None, step=0.001)
    m.signal(signal.SIGKILL)
    m.wait_exit()
    writer.wait()
    env.run(["fusermount3", "-uz", mnt])
    env.run(["umount", "-l", mnt])
    ctx.unmount(m)
    m2 = ctx.mount_fs(lowers, up, work, mnt)
    st = os.stat(os.path.join(mnt, "big"))
    ctx.check(st.st_size in (size, size + 4), f"big is {st.st_size} bytes after the crash, "
                                              f"want {size} (old) or {size + 4} (new)")
    ub = os.path.join(up, "big")
    if os.path.exists(ub):
        us = os.path.getsize(ub)
        ctx.check(us in (size, size + 4), f"upper/big is half a file: {us} of {size} bytes")
    with open(os.path.join(mnt, "big"), "rb") as f:
        head = f.read(1 << 20)
    ctx.check(head == block, "big's content changed")
    ctx.unmount(m2)
    left = sorted(p for p, (mode, _, _) in _tree(work).items() if not os.path.isdir(os.path.join(work, p)))
    ctx.check(not left, f"workdir leftovers after the next mount: {left}")


@case("interrupted-open", "lifecycle", ("root", "rootless", "userns"))
def interrupted_open(ctx):
    """A caller signalled while its open copies up a big file: the kernel sends the daemon
    FUSE_INTERRUPT (on /dev/fuse, also when the open itself came through io_uring), the open
    still completes, the write lands, and the mount serves on and unmounts."""
    base = ctx.path("intr")
    lowers, up, work = fx.build_stack(base, [[F("small", "s")]], ctx.kernel_form)
    block = bytes(range(256)) * 4096  # 1 MiB of non-zero data: the copy-up takes a while
    with open(os.path.join(lowers[0], "big"), "wb") as f:
        for _ in range(192):
            f.write(block)
    mnt = os.path.join(base, "mnt")
    m = ctx.mount_fs(lowers, up, work, mnt, opts="debug")  # the log shows the INTERRUPT
    script = ("import os, signal, sys\n"
              "signal.signal(signal.SIGUSR1, lambda *a: None)\n"
              "sys.stdout.write('R'); sys.stdout.flush()\n"
              "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
              "signal.signal(signal.SIGUSR1, signal.SIG_IGN)\n"
              "os.write(fd, b'TAIL'); os.close(fd)\n")
    staged = set(_tree(work))
    child = subprocess.Popen(["/usr/bin/python3", "-c", script, os.path.join(mnt, "big")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ctx.check(child.stdout.read(1) == b"R", "the writer did not start")
    # Signal only once the copy-up shows on disk: the OPEN is then with the daemon, and the
    # kernel sends FUSE_INTERRUPT for it. A first signal while the request is still queued
    # only marks it (the kernel then waits killably): under the ThreadSanitizer daemon over
    # io_uring no INTERRUPT reached the daemon that way in 2 of 10 runs.
    env.wait_until(lambda: set(_tree(work)) != staged or os.path.exists(os.path.join(up, "big"))
                   or child.poll() is not None, step=0.001)
    while child.poll() is None:  # signal it until its open returns (no timing assumption)
        try:
            os.kill(child.pid, signal.SIGUSR1)
        except ProcessLookupError:
            break
        env.wait_until(lambda: child.poll() is not None, guard=0.002, step=0.001)
    err = child.stderr.read().decode(errors="replace").strip()
    ctx.check(child.wait() == 0, f"the interrupted writer failed: {err[-500:]}")
    ctx.check("opcode: INTERRUPT" in m.stderr(),
              "no FUSE_INTERRUPT reached the daemon while it copied the file up")
    with open(os.path.join(mnt, "big"), "rb") as f:
        f.seek(-(len(block) + 4), os.SEEK_END)
        tail = f.read()
    ctx.check(tail == block + b"TAIL", "big does not end with its last block and TAIL")
    ctx.check(os.listdir(mnt) and os.stat(os.path.join(mnt, "small")).st_size == 1,
              "the mount stopped answering after the interrupt")
    ctx.unmount(m)
    ctx.check(m.wait_exit() == 0, f"the daemon exited {m.exit_code} after unmount")


@case("upper-in-use", "lifecycle", ("root", "rootless"))
def upper_in_use(ctx):
    """fs only: a second mount of an upper dir and workdir another daemon serves fails with one
    line and mounts nothing (it used to mount, and cleaned work/ below the first daemon's
    copy-ups in flight); after the first unmounts, the same command mounts."""
    base, (lowers, up, work) = _stack(ctx, "inuse")
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"))
    with open(os.path.join(m.path, "a"), "a") as f:
        f.write("x")
    # Stands for a copy-up the first daemon has staged and not yet published.
    staged = os.path.join(work, "work", "staged-by-the-first-daemon")
    with open(staged, "w") as f:
        f.write("s")
    second = os.path.join(base, "mnt2")
    os.makedirs(second)
    args = ["-o", fuse_optstring(lowers, up, work), second]
    _cli(ctx, args, base, up, work, "second mount of a served upper")
    if ctx.check(os.path.exists(staged), "the second daemon cleaned the first one's work/"):
        os.unlink(staged)
    ctx.unmount(m)
    _cli(ctx, args, base, up, work, "mount after the first unmounted", expect_ok=True)


@case("uring-off", "lifecycle", ("root", "rootless", "userns"))
def uring_off(ctx):
    """-o uring=off serves through /dev/fuse whatever the kernel offers (run.py --uring turns
    FUSE over io_uring on): no io_uring in the daemon, the log says why, the mount works."""
    base, (lowers, up, work) = _stack(ctx, "uring-off")
    mnt = os.path.join(base, "mnt")
    m = ctx.mount_fs(lowers, up, work, mnt, opts="debug,uring=off", uring_check=False)
    with open(os.path.join(mnt, "a")) as f:
        ctx.check(f.read() == "a", "a reads wrong")
    ctx.check(uring_fds(m.pid) == 0, f"the daemon holds {uring_fds(m.pid)} io_uring instances")
    ctx.check("transport: /dev/fuse (uring=off)" in m.stderr(),
              "the daemon's log does not say it serves /dev/fuse because of uring=off")
    ctx.unmount(m)
    ctx.check(m.wait_exit() == 0, f"the daemon exited {m.exit_code} after unmount")


def _cli(ctx, args, base, up, work, what, expect_ok=False):
    before_u, before_w = _tree(up), _tree(work)
    mnt = args[-1]
    mounts_before = env.mount_count(mnt)
    p = env.run([ctx.binary] + args, timeout=env.HANG_GUARD_S)
    mounted = env.mount_count(mnt) > mounts_before
    if mounted:
        env.run(["fusermount3", "-u", mnt])
        env.run(["umount", "-l", mnt])
    if expect_ok:
        ctx.check(p.returncode == 0 and mounted, f"{what}: exit {p.returncode}, mounted={mounted}: "
                                                 f"{p.stderr.strip()}")
        return
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    ctx.check(p.returncode != 0, f"{what}: exit status 0")
    ctx.check(len(lines) == 1, f"{what}: want one line on stderr, got {len(lines)}: {lines}")
    ctx.check(not mounted, f"{what}: something was mounted")
    ctx.check(_tree(up) == before_u and _tree(work) == before_w, f"{what}: upper/work changed")
    ctx.log(f"{what}: exit {p.returncode}: {p.stderr.strip()}")


@case("cli-errors", "cli", ("root",))
def cli_errors(ctx):
    """Bad command lines: one stderr line, non-zero exit, nothing mounted or written. A trailing
    comma in -o works."""
    ctx.require_root()
    base, (lowers, up, work) = _stack(ctx, "cli")
    mnt = os.path.join(base, "mnt")
    os.makedirs(mnt)
    lo = "lowerdir=" + ":".join(lowers)
    good = f"{lo},upperdir={up},workdir={work}"
    _cli(ctx, ["-o", good + ",no_such_option_xyz", mnt], base, up, work, "unknown option")
    _cli(ctx, ["-o", f"upperdir={up},workdir={work}", mnt], base, up, work, "missing lowerdir")
    _cli(ctx, ["-o", f"{lo}:{base}/does-not-exist,upperdir={up},workdir={work}", mnt], base, up,
         work, "missing lower dir")
    t = os.path.join(base, "tmpfs")
    os.makedirs(t)
    env.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", t], check=True)
    from .fileops import _Tmpfs
    ctx.mounts.append(_Tmpfs(t))
    os.makedirs(os.path.join(t, "work"))
    _cli(ctx, ["-o", f"{lo},upperdir={up},workdir={t}/work", mnt], base, up, work,
         "workdir on another filesystem")
    busy = os.path.join(base, "busy")
    os.makedirs(busy)
    env.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", busy], check=True)
    ctx.mounts.append(_Tmpfs(busy))
    _cli(ctx, ["-o", good, busy], base, up, work, "mountpoint already a mount point")
    _cli(ctx, ["-o", good + ",", mnt], base, up, work, "trailing comma", expect_ok=True)


@case("mount-helper", "cli", ("root",))
def mount_helper(ctx):
    """`mount -t fuse.strata-fs overlay MNT -o lowerdir=...` with strata-fs found in PATH."""
    ctx.require_root()
    if not os.path.exists("/sbin/mount.fuse3") and not os.path.exists("/usr/sbin/mount.fuse3"):
        raise env.Skip("mount.fuse3 is not installed")
    base, (lowers, up, work) = _stack(ctx, "helper")
    bindir = os.path.join(base, "bin")
    os.makedirs(bindir)
    os.symlink(ctx.binary, os.path.join(bindir, "strata-fs"))
    mnt = os.path.join(base, "mnt")
    os.makedirs(mnt)
    e = dict(os.environ, PATH=f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin")
    opts = fuse_optstring(lowers, up, work)
    # mount(8) may run helpers with a sanitized PATH; mount.fuse3 itself honours ours.
    tries = [["mount", "-t", "fuse.strata-fs", "overlay", mnt, "-o", opts],
             ["mount.fuse3", "overlay", mnt, "-t", "fuse.strata-fs", "-o", opts]]
    errors = []
    for cmd in tries:
        p = env.run(cmd, env=e, timeout=env.HANG_GUARD_S)
        if p.returncode == 0 and env.is_mounted(mnt, "fuse"):
            ctx.log(f"mounted with: {' '.join(cmd[:4])}")
            ctx.check(os.path.exists(os.path.join(mnt, "d", "x")), "mounted but the view is wrong")
            env.run(["umount", mnt])
            ctx.check(not env.is_mounted(mnt), "umount of the helper mount failed")
            break
        errors.append(f"{cmd[0]}: exit {p.returncode}: {p.stderr.strip()}")
        if env.is_mounted(mnt):
            env.run(["umount", "-l", mnt])
    else:
        if all("not found" in x for x in errors):
            raise env.Skip("neither mount(8) nor mount.fuse3 found strata-fs in PATH: "
                           + "; ".join(errors))
        ctx.fail("mount helper: " + "; ".join(errors))
    if env.is_mounted(mnt):
        env.run(["umount", "-l", mnt])


@case("read-only", "readonly", ("root", "rootless", "userns"))
def read_only(ctx):
    """No upperdir: writes fail with EROFS; the view equals the kernel's read-only mount."""
    layers = [[F("a", "a"), F("d/x", "x")], [F("b", "b"), F("d/y", "y")]]

    def script(t):
        t.write("a", "x", "a")
        t.create("new")
        t.mkdir("nd")
        t.unlink("b")
        t.rename("a", "z")
        t.chmod("a", 0o600)
        t.setxattr("a", "user.x", "1")
        t.truncate("a", 0)
        t.read("d/y")
    ctx.differential("ro", layers, script, readonly=True, share_lowers=True)
