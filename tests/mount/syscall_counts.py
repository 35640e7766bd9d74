#!/usr/bin/python3
"""The daemon's own system calls per created file, counted exactly with strace.

The kernel's requests per created file are fixed (LOOKUP, CREATE, GETXATTR of
security.capability before the first write, RELEASE, the parent's GETATTR: request_counts.py);
what the daemon does to answer them is not. Checked here, for files created with a umask in
directories the mount made, and renamed over absent names as dpkg does:
- each new name is looked at once (the LOOKUP's probe), not again by the CREATE or the RENAME
  onto it (a renamed file's old name twice: its LOOKUP and the RENAME's look at its source);
- no `.wh.NAME` probe and no `.wh.NAME` unlink in an upper directory that holds no whiteout
  files (the mount writes whiteouts as devices);
- the parent's default ACL is read once per directory, not per create;
- the kernel's GETXATTR of security.capability on a file the mount created costs no syscall;
- a file created through the mount is stat'ed through its new fd, never by name again;
- a small lower file copied up (a byte appended) costs no hole search (lseek), no second
  reflink attempt on an upper without reflinks, and no capability read for the write.
Then, with a .wh.NAME whiteout file in the upper (an upper another overlay wrote), the probes
come back for that directory and the name stays hidden.

usage: syscall_counts.py STRATA_FS   (root; exits 77 without root, /dev/fuse or strace)
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fs_daemon import start_strata_fs  # noqa: E402

DIRS, FILES = 3, 40
COPYUPS = 20
CALL = re.compile(r'^\d+\s+(\w+)\((.*)$')


def counts_from(line):
    words = line.split(":", 2)[2].split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def workload(mnt):
    """What cp, tar and dpkg do: new dirs, new files written once, a rename over an absent name."""
    old = os.umask(0o022)
    try:
        for d in range(DIRS):
            os.mkdir(os.path.join(mnt, f"d{d}"))
            for f in range(FILES):
                p = os.path.join(mnt, f"d{d}", f"f{f:03d}")
                fd = os.open(p + ".new", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
                os.write(fd, b"x")
                os.close(fd)
                os.rename(p + ".new", p)
        for f in range(COPYUPS):
            with open(os.path.join(mnt, "cu", f"c{f:02d}"), "ab") as fh:
                fh.write(b"+")
    finally:
        os.umask(old)


def traced(binary, base, lower, failures, upper_setup=None):
    """Mounts on a fresh upper, runs `workload` under strace; returns (calls, request counts)."""
    upper, work, mnt = (os.path.join(base, d) for d in ("upper", "work", "mnt"))
    for d in (upper, work, mnt):
        os.mkdir(d)
    if upper_setup:
        upper_setup(upper)
    daemon, why = start_strata_fs(binary, f"lowerdir={lower},upperdir={upper},workdir={work}", mnt)
    if not daemon:
        failures.append(why)
        return None, None
    log = os.path.join(base, "strace")
    calls, line = [], ""
    try:
        tracer = subprocess.Popen(["strace", "-f", "-qq", "-o", log, "-e", "signal=none",
                                   "-e", "trace=newfstatat,lgetxattr,getxattr,fgetxattr,unlinkat,lseek,ioctl",
                                   "-p", str(daemon.pid)], stderr=subprocess.PIPE, text=True)
        # strace writes its first line once attached: until then calls would go uncounted.
        for _ in range(200):
            os.stat(mnt)
            if os.path.exists(log) and os.path.getsize(log) > 0:
                break
            time.sleep(0.05)
        else:
            failures.append("strace did not attach to the daemon")
        with open(log) as f:
            skip = len(f.readlines())
        workload(mnt) if not upper_setup else upper_setup.workload(mnt)
        daemon.send_signal(signal.SIGUSR1)
        while not line.startswith("strata-fs: requests:"):
            line = daemon.stderr.readline()
            if not line:
                break
        tracer.send_signal(signal.SIGINT)
        tracer.wait()
        with open(log) as f:
            for entry in f.readlines()[skip:]:
                m = CALL.match(entry.strip())
                if m:
                    calls.append((m.group(1), m.group(2)))
    finally:
        subprocess.run(["fusermount3", "-u", mnt], check=False)
        daemon.wait()
    if not line:
        failures.append("the daemon wrote no request counts on SIGUSR1")
        return calls, None
    return calls, counts_from(line)


def named(calls, syscall, pattern):
    return [args for name, args in calls if name == syscall and re.search(pattern, args)]


def check_new_tree(binary, tmp, lower, failures):
    calls, counts = traced(binary, os.path.join(tmp, "new"), lower, failures)
    if counts is None:
        return
    created = DIRS * FILES
    print("requests:", counts)
    if counts.get("GETXATTR", 0) < created:
        failures.append(f"only {counts.get('GETXATTR', 0)} GETXATTR requests for {created} new files "
                        "written: the kernel no longer asks security.capability (update this test)")
    for f in range(FILES):
        for name, want in ((f"f{f:03d}.new", 2), (f"f{f:03d}", 1)):
            # The same name in each of the DIRS directories.
            n = len(named(calls, "newfstatat", rf'^\d+, "{re.escape(name)}",'))
            if n != want * DIRS and not failures:
                failures.append(f"{name}: looked at by name {n} times in {DIRS} dirs (want {want * DIRS})")
    # Names in the dirs the mount made (d0/ itself is looked up in the root before the first
    # entry is made, which is when the mount learns that it writes whiteouts as devices).
    wh = named(calls, "newfstatat", r'"\.wh\.f') + named(calls, "unlinkat", r'"\.wh\.f')
    if wh:
        failures.append(f"{len(wh)} .wh.NAME probes or unlinks in upper dirs the mount made, e.g. {wh[:2]}")
    caps = [a for n, a in calls if n.endswith("getxattr") and "security.capability" in a]
    if caps:
        failures.append(f"{len(caps)} security.capability reads for files the mount created, e.g. {caps[:2]}")
    acls = [a for n, a in calls if n.endswith("getxattr") and "posix_acl_default" in a]
    if len(acls) > DIRS + 1:
        failures.append(f"the parent's default ACL read {len(acls)} times for {created} creates in "
                        f"{DIRS} dirs (want at most once per dir)")
    seeks = [a for n, a in calls if n == "lseek"]
    if seeks:
        failures.append(f"{len(seeks)} lseek calls copying up {COPYUPS} one-block files, e.g. {seeks[:2]}")
    clones = [a for n, a in calls if n == "ioctl" and "FICLONE" in a]
    if clones and "= 0" not in clones[0] and len(clones) > 1:
        failures.append(f"reflink tried {len(clones)} times on an upper that refused the first: {clones[0]}")
    print(f"{created} files: {len(calls)} traced calls; ACL reads {len(acls)}; reflink attempts {len(clones)}")


class WhiteoutFileUpper:
    """An upper with old/ holding a .wh.f000 whiteout file (as an overlay without mknod writes
    it) over the lower's old/f000: the name stays hidden and the probes are made there."""

    def __call__(self, upper):
        os.mkdir(os.path.join(upper, "old"))
        open(os.path.join(upper, "old", ".wh.f000"), "w").close()

    def workload(self, mnt):
        if os.path.exists(os.path.join(mnt, "old", "f000")):
            raise RuntimeError("old/f000 shows through its .wh.f000 whiteout file")
        with open(os.path.join(mnt, "old", "f001"), "w") as f:
            f.write("y")


def check_whiteout_file_upper(binary, tmp, lower, failures):
    calls, counts = traced(binary, os.path.join(tmp, "whfile"), lower, failures, WhiteoutFileUpper())
    if counts is None:
        return
    probes = named(calls, "newfstatat", r'"\.wh\.f00[01]"')
    if not probes:
        failures.append("no .wh.NAME probe in an upper dir that holds a .wh.NAME whiteout file")


def main():
    binary = sys.argv[1]
    if os.geteuid() != 0 or not os.access("/dev/fuse", os.R_OK | os.W_OK):
        print("skipped: needs root and /dev/fuse")
        return 77
    if not shutil.which("strace"):
        print("skipped: needs strace (scripts/deps.sh installs it)")
        return 77
    failures = []
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="strata-syscall-counts-") as tmp:
        lower = os.path.join(tmp, "lower")
        os.makedirs(os.path.join(lower, "old"))
        os.makedirs(os.path.join(lower, "cu"))
        for f in range(COPYUPS):
            with open(os.path.join(lower, "cu", f"c{f:02d}"), "w") as fh:
                fh.write("small lower file\n")
        with open(os.path.join(lower, "old", "f000"), "w") as f:
            f.write("lower")
        os.mkdir(os.path.join(tmp, "new"))
        check_new_tree(binary, tmp, lower, failures)
        os.mkdir(os.path.join(tmp, "whfile"))
        try:
            check_whiteout_file_upper(binary, tmp, lower, failures)
        except RuntimeError as e:
            failures.append(str(e))
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
