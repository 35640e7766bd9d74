#!/usr/bin/python3
"""Two readers of one merged directory while it changes: each name present throughout is
returned to each reader exactly once (POSIX readdir), as kernel overlayfs does (it keeps a
listing per open directory).

strata-fs reads directories without handles (OPENDIR answered ENOSYS), so it cannot keep a
listing per open directory; the test makes the case that breaks a single shared listing:
reader A reads the first reply, a name A already read is unlinked through the mount, reader B
starts from the top (a new listing, one name shorter), then A reads on. A must neither skip
nor repeat a name. Each reader is an fd read with getdents64 and a one-page buffer, so every
call is one READDIR reply. Checked with and without a name added meanwhile, on a lower-only
directory and one merged from two layers, and with 17 such restarts during one read (more than
the listings a directory keeps: A then goes on in a new listing, and only its own position
there is checked to be sane: no name twice in a row, nothing past the end).

usage: readdir_readers.py STRATA_FS   (root; exits 77 without root or /dev/fuse)
"""
import ctypes
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fs_daemon import start_strata_fs  # noqa: E402

libc = ctypes.CDLL(None, use_errno=True)
SYS_getdents64 = 217  # x86_64
N = 800


def getdents(fd):
    """One getdents64 call: the names it returned ([] at the end)."""
    buf = ctypes.create_string_buffer(4096)
    n = libc.syscall(SYS_getdents64, fd, buf, len(buf))
    if n < 0:
        raise OSError(ctypes.get_errno(), "getdents64")
    names, pos, raw = [], 0, buf.raw[:n]
    while pos < n:
        reclen = int.from_bytes(raw[pos + 16:pos + 18], "little")
        name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0].decode()
        if name not in (".", ".."):
            names.append(name)
        pos += reclen
    return names


def read_rest(fd):
    out = []
    while True:
        got = getdents(fd)
        if not got:
            return out
        out += got


def mount(binary, base, lowers):
    upper, work, mnt = (os.path.join(base, d) for d in ("upper", "work", "mnt"))
    for d in (upper, work, mnt):
        os.mkdir(d)
    daemon, why = start_strata_fs(binary, f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}", mnt)
    if not daemon:
        raise RuntimeError(why)
    return daemon, mnt


def case(mnt, rel, add, restarts, failures):
    d = os.path.join(mnt, rel)
    everyone = set(os.listdir(d))
    fa = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        first = getdents(fa)
        if not first or len(first) >= len(everyone):
            failures.append(f"{rel}: the first reply holds {len(first)} of {len(everyone)} names; the case needs several")
            return
        removed = []
        for r in range(restarts):
            victim = first[r]
            os.unlink(os.path.join(d, victim))
            removed.append(victim)
            if add:
                open(os.path.join(d, f"added-{r:02d}"), "w").close()
            fb = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            try:
                getdents(fb)  # B starts from the top after the change
            finally:
                os.close(fb)
        got = first + read_rest(fa)
    finally:
        os.close(fa)
    steady = everyone - set(removed)
    seen = {}
    for name in got:
        seen[name] = seen.get(name, 0) + 1
    twice = sorted(n for n, c in seen.items() if c > 1)
    missed = sorted(steady - set(got))
    what = f"{rel}, {restarts} restart(s){', names added' if add else ''}"
    if twice:
        failures.append(f"{what}: {len(twice)} name(s) read twice, e.g. {twice[:3]}")
    if missed and restarts <= 4:
        failures.append(f"{what}: {len(missed)} name(s) present throughout never read, e.g. {missed[:3]}")
    print(f"{what}: {len(got)} names read, {len(twice)} twice, {len(missed)} missed")


def main():
    binary = sys.argv[1]
    if os.geteuid() != 0 or not os.access("/dev/fuse", os.R_OK | os.W_OK):
        print("skipped: needs root and /dev/fuse")
        return 77
    failures = []
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="strata-readdir-readers-") as tmp:
        low1, low2 = os.path.join(tmp, "low1"), os.path.join(tmp, "low2")
        for rel in ("plain", "plain2", "plain3", "merged", "many"):
            os.makedirs(os.path.join(low1, rel))
        os.makedirs(os.path.join(low2, "merged"))
        for rel in ("plain", "plain2", "plain3", "many"):
            for i in range(N):
                open(os.path.join(low1, rel, f"name-{i:04d}-padding-padding"), "w").close()
        for i in range(N):
            layer = low1 if i % 2 else low2
            open(os.path.join(layer, "merged", f"name-{i:04d}-padding-padding"), "w").close()
        base = os.path.join(tmp, "fs")
        os.mkdir(base)
        daemon, mnt = mount(binary, base, [low1, low2])
        try:
            case(mnt, "plain", False, 1, failures)
            case(mnt, "plain2", True, 1, failures)
            case(mnt, "merged", True, 1, failures)
            case(mnt, "plain3", True, 4, failures)
            case(mnt, "many", True, 17, failures)
        finally:
            subprocess.run(["fusermount3", "-u", mnt], check=False)
            daemon.wait()
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
