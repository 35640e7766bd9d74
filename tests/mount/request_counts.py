#!/usr/bin/python3
"""Requests per operation, as the daemon counts them (kill -USR1 writes the counts to stderr).

Counts are what an operation costs over FUSE (each request is a round trip) and, unlike times,
do not move with the machine's load, so they can be checked exactly:
- a tree walked twice sends one OPENDIR in all (answered ENOSYS, after which the kernel opens
  directories without asking) and no RELEASEDIR; the listings are complete;
- a big directory read whole and then each name stat'ed (what find, du, ls -l and tar do)
  costs no LOOKUP: every READDIR reply carries the attributes (READDIRPLUS), not only the
  first one; with -o readdirplus=auto (the kernel's choice) the names past the first reply are
  looked up one by one;
- a directory read while each entry read is unlinked yields every name once, over several
  READDIR replies.

usage: request_counts.py STRATA_FS   (root; exits 77 without root or /dev/fuse)
"""
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fs_daemon import start_strata_fs  # noqa: E402

DIRS, FILES, BIG = 12, 40, 600
HUGE = 5000  # many replies: a listing of names and types (d_type) without a stat


def counts_from(line):
    words = line.split(":", 2)[2].split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def make_lower(lower):
    want = {}
    for i in range(DIRS):
        rel = f"d{i:02d}"
        os.mkdir(os.path.join(lower, rel))
        want[rel] = sorted(f"f{j:03d}" for j in range(FILES))
        for name in want[rel]:
            with open(os.path.join(lower, rel, name), "w") as f:
                f.write(name)
    big = sorted(f"entry-with-a-longish-name-{j:05d}" for j in range(BIG))
    for d in ("big", "big2"):
        os.mkdir(os.path.join(lower, d))
        for name in big:
            open(os.path.join(lower, d, name), "w").close()
    huge = os.path.join(lower, "huge")
    os.mkdir(huge)
    for j in range(HUGE):
        open(os.path.join(huge, f"n{j:05d}"), "w").close()
    os.mkdir(os.path.join(huge, "zz-dir"))
    os.symlink("n00000", os.path.join(huge, "zz-link"))
    return want, big


def check_huge(mnt, opts, failures):
    """A bare listing of a directory of many replies: names and types (d_type) right."""
    kinds = {}
    with os.scandir(os.path.join(mnt, "huge")) as it:
        for e in it:
            kinds[e.name] = "d" if e.is_dir(follow_symlinks=False) else "l" if e.is_symlink() else "f"
    want = {f"n{j:05d}": "f" for j in range(HUGE)}
    want.update({"zz-dir": "d", "zz-link": "l"})
    if kinds != want:
        wrong = sorted(set(kinds.items()) ^ set(want.items()))[:4]
        failures.append(f"[{opts}] huge directory listing: {len(kinds)} names, want {len(want)}; e.g. {wrong}")


def session(binary, base, lower, want, big, opts, failures):
    """Mounts on a fresh upper, runs the walks, returns the daemon's request counts."""
    upper, work, mnt = (os.path.join(base, d) for d in ("upper", "work", "mnt"))
    for d in (upper, work, mnt):
        os.mkdir(d)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}" + (f",{opts}" if opts else "")
    daemon, why = start_strata_fs(binary, options, mnt)
    if not daemon:
        failures.append(f"[{opts}] {why}")
        return None
    line = ""
    try:
        for walk in (1, 2):
            got = {rel: sorted(os.listdir(os.path.join(mnt, rel))) for rel in want}
            for rel in want:
                for name in got[rel]:
                    os.stat(os.path.join(mnt, rel, name))
            if got != want:
                failures.append(f"[{opts}] walk {walk}: listings differ from the lower tree")
        names = os.listdir(os.path.join(mnt, "big"))
        for name in names:
            os.lstat(os.path.join(mnt, "big", name))
        if sorted(names) != big:
            failures.append(f"[{opts}] big directory: {len(names)} names listed, want {len(big)}")
        seen = []
        with os.scandir(os.path.join(mnt, "big2")) as it:
            for e in it:
                seen.append(e.name)
                os.unlink(os.path.join(mnt, "big2", e.name))
        if sorted(seen) != big:
            dup = len(seen) - len(set(seen))
            failures.append(f"[{opts}] unlink while reading: {len(seen)} names read ({dup} twice), want {len(big)}")
        left = os.listdir(os.path.join(mnt, "big2"))
        if left:
            failures.append(f"[{opts}] unlink while reading: {len(left)} names left, e.g. {left[:3]}")
        check_huge(mnt, opts, failures)
        daemon.send_signal(signal.SIGUSR1)
        while not line.startswith("strata-fs: requests:"):
            line = daemon.stderr.readline()
            if not line:
                break
    finally:
        subprocess.run(["fusermount3", "-u", mnt], check=False)
        daemon.wait()
    if not line:
        failures.append(f"[{opts}] the daemon wrote no request counts on SIGUSR1")
        return None
    print(f"[{opts or 'defaults'}]", line.strip())
    return counts_from(line)


def main():
    binary = sys.argv[1]
    if os.geteuid() != 0 or not os.access("/dev/fuse", os.R_OK | os.W_OK):
        print("skipped: needs root and /dev/fuse")
        return 77
    failures = []
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="strata-request-counts-") as tmp:
        lower = os.path.join(tmp, "lower")
        os.mkdir(lower)
        want, big = make_lower(lower)
        for opts in ("", "readdirplus=auto"):
            base = os.path.join(tmp, opts or "defaults")
            os.mkdir(base)
            counts = session(binary, base, lower, want, big, opts, failures)
            if counts is None:
                continue
            if counts.get("OPENDIR", 0) > 1:
                failures.append(f"[{opts}] OPENDIR sent {counts['OPENDIR']} times (want at most once: "
                                "the daemon answers ENOSYS)")
            if counts.get("RELEASEDIR", 0):
                failures.append(f"[{opts}] RELEASEDIR sent {counts['RELEASEDIR']} times (want 0)")
            listings = counts.get("READDIR", 0) + counts.get("READDIRPLUS", 0)
            if listings < DIRS + 4:
                failures.append(f"[{opts}] only {listings} READDIR(PLUS) requests: the big directories "
                                "did not span replies")
            # One LOOKUP per directory name (the walk's dirs, big, big2, huge); none for the files
            # in them, unless the kernel chooses (auto): then big's names past its first reply.
            lookups = counts.get("LOOKUP", 0)
            if not opts and lookups > DIRS + 3:
                failures.append(f"{lookups} LOOKUPs (want at most {DIRS + 3}): names a listing returned "
                                "were looked up again")
            if opts and lookups <= DIRS + 3:
                failures.append(f"[{opts}] {lookups} LOOKUPs: the option did not give the kernel its choice")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
