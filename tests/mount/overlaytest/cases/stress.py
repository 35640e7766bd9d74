"""Concurrency: writer/reader processes and threads on the same files and dirs through the fs."""

import errno
import os
import threading

from .. import fixture as fx
from ..core import case
from ..fixture import F

WORKERS = 4       # processes
THREADS = 3       # threads per process
ROUNDS = 60       # iterations per thread
SHARED = 8        # lower files appended to (copied up) by everyone at once


def _worker(mnt, wid, out_fd):
    errors = []

    def note(op, e):
        errors.append(f"w{wid}: {op}: {errno.errorcode.get(e.errno, e.errno)}")

    def thread(tid):
        me = f"w{wid}t{tid}"
        for i in range(ROUNDS):
            try:  # every thread appends one line to every shared lower file: racing copy-ups
                if i < SHARED:
                    fd = os.open(os.path.join(mnt, "shared", f"f{i}"), os.O_WRONLY | os.O_APPEND)
                    os.write(fd, f"{me}\n".encode())
                    os.close(fd)
            except OSError as e:
                note(f"append shared/f{i}", e)
            try:
                p = os.path.join(mnt, "dir", f"{me}-{i}")
                with open(p + ".tmp", "w") as f:
                    f.write(me * 10)
                os.rename(p + ".tmp", p)
                if i % 3 == 0:
                    os.unlink(p)
                with open(os.path.join(mnt, "logs", me), "a") as f:
                    f.write(f"{i}\n")
            except OSError as e:
                note(f"create/rename/unlink {me}-{i}", e)
            try:
                for n in os.listdir(os.path.join(mnt, "dir")):
                    try:
                        os.lstat(os.path.join(mnt, "dir", n))
                    except FileNotFoundError:
                        pass  # unlinked by another thread meanwhile
                os.listdir(os.path.join(mnt, "lowerdir"))
                os.stat(os.path.join(mnt, "lowerdir", f"l{i % 20}"))
            except OSError as e:
                note("readdir/stat", e)
            if i % 10 == 0:
                try:  # mkdir/rmdir in a shared dir; EEXIST/ENOENT/ENOTEMPTY are races, not bugs
                    d = os.path.join(mnt, "dir", f"sub{i % 4}")
                    os.mkdir(d)
                    os.rmdir(d)
                except OSError as e:
                    if e.errno not in (errno.EEXIST, errno.ENOENT, errno.ENOTEMPTY):
                        note("mkdir/rmdir", e)

    ts = [threading.Thread(target=thread, args=(t,)) for t in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    os.write(out_fd, ("\n".join(errors) + "\n").encode())


def _stress(ctx):
    base = ctx.path("stress")
    lower = [F(f"shared/f{i}", f"lower {i}\n") for i in range(SHARED)]
    lower += [F(f"lowerdir/l{i}", "x") for i in range(20)] + [F("dir/from_lower", "l")]
    lowers, up, work = fx.build_stack(base, [lower], ctx.kernel_form)
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"))
    os.mkdir(os.path.join(m.path, "logs"))
    pids, pipes = [], []
    for w in range(WORKERS):
        r, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                _worker(m.path, w, wr)
            finally:
                os._exit(0)
        os.close(wr)
        pids.append(pid)
        pipes.append(r)
    errors = []
    for pid, r in zip(pids, pipes):
        with os.fdopen(r) as f:
            errors += [ln for ln in f.read().splitlines() if ln.strip()]
        os.waitpid(pid, 0)
    ctx.check(not errors, "errors during the run:\n" + "\n".join(errors[:40]))

    names = [f"w{w}t{t}" for w in range(WORKERS) for t in range(THREADS)]
    for i in range(SHARED):
        with open(os.path.join(m.path, "shared", f"f{i}")) as f:
            lines = f.read().splitlines()
        ctx.check(lines[:1] == [f"lower {i}"] and sorted(lines[1:]) == sorted(names),
                  f"shared/f{i}: {len(lines) - 1} appended lines, want {len(names)} "
                  f"(lost or torn appends during concurrent copy-up)")
    want_dir = {"from_lower"} | {f"{n}-{i}" for n in names for i in range(ROUNDS) if i % 3}
    got_dir = set(os.listdir(os.path.join(m.path, "dir")))
    ctx.check(got_dir == want_dir, f"dir: missing {sorted(want_dir - got_dir)[:10]}, "
                                   f"extra {sorted(got_dir - want_dir)[:10]}")
    for n in sorted(want_dir - {"from_lower"})[:50]:
        with open(os.path.join(m.path, "dir", n)) as f:
            who = n.split("-")[0]
            ctx.check(f.read() == who * 10, f"dir/{n}: wrong content")
    for n in names:
        with open(os.path.join(m.path, "logs", n)) as f:
            ctx.check(f.read() == "".join(f"{i}\n" for i in range(ROUNDS)), f"logs/{n}: wrong")
    ctx.unmount(m)
    # What the fs left must read the same after a remount.
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"))
    got2 = set(os.listdir(os.path.join(m.path, "dir")))
    ctx.check(got2 == want_dir, "dir differs after remount")


@case("stress", "stress", ("root",))
def stress(ctx):
    """N processes x threads: create/append/rename/unlink/readdir/stat in shared dirs and racing
    copy-ups of the same lower files; final contents exact, no errors."""
    _stress(ctx)
