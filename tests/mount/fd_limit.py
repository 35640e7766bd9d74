#!/usr/bin/python3
"""strata-fs under the open-file limit a user session or a service starts with (soft 1024):
the daemon holds directory fds in a cache and must neither fail a caller with EMFILE nor need
the caller to raise the limit. Untarring a rootfs in a rootless mount failed with "Too many
open files" once ~1000 directories had been touched. Here: 1500 directories each with a file
are created and read back through a mount whose daemon starts with soft limit 1024 (hard
limit as the machine's: the daemon raises its soft limit), and again with hard limit 1024 too
(nothing to raise: the daemon must fit in it).

usage: fd_limit.py STRATA_FS   (root; exits 77 without root or /dev/fuse)
"""
import os
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fs_daemon import start_strata_fs  # noqa: E402

DIRS = 1500


def run_case(binary, base, soft, hard, failures):
    upper, work, mnt, lower = (os.path.join(base, d) for d in ("upper", "work", "mnt", "lower"))
    for d in (upper, work, mnt, lower):
        os.mkdir(d)

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    what = f"soft {soft}, hard {hard}"
    daemon, why = start_strata_fs(binary, f"lowerdir={lower},upperdir={upper},workdir={work}", mnt, limit)
    if not daemon:
        failures.append(f"{what}: {why}")
        return
    try:
        try:
            for i in range(DIRS):
                d = os.path.join(mnt, f"d{i:04d}", "sub")
                os.makedirs(d)
                with open(os.path.join(d, "f"), "w") as f:
                    f.write(str(i))
            bad = [i for i in range(DIRS) if open(os.path.join(mnt, f"d{i:04d}", "sub", "f")).read() != str(i)]
            if bad:
                failures.append(f"{what}: {len(bad)} files read back wrong")
            print(f"{what}: {DIRS} directories made and read back")
        except OSError as e:
            failures.append(f"{what}: {e}")
    finally:
        subprocess.run(["fusermount3", "-u", mnt], check=False)
        daemon.wait()


def main():
    binary = sys.argv[1]
    if os.geteuid() != 0 or not os.access("/dev/fuse", os.R_OK | os.W_OK):
        print("skipped: needs root and /dev/fuse")
        return 77
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    failures = []
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="strata-fd-limit-") as tmp:
        for n, (soft, h) in enumerate(((1024, hard), (1024, 1024))):
            base = os.path.join(tmp, str(n))
            os.mkdir(base)
            run_case(binary, base, soft, h, failures)
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
