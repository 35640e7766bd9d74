#!/usr/bin/python3
"""strata run's seccomp filter against Docker's own: tests/container/syscalls.c calls each
syscall the profile decides on (modules, mounts, namespaces, keys, handles, clock, ...) with
harmless arguments and prints the errno; the listing under `docker run` (dockerd from Debian's
docker.io, its default profile and capabilities) and under `strata run` as root must be equal,
line by line. Skipped (77) without root, gcc or a dockerd that can start."""
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "docker"))
from container_test_lib import STRATA, need_env, run, skip, unmount_all_under  # noqa: E402
from docker_lib import DOCKERD, Dockerd, busybox_rootfs_tar  # noqa: E402


def main():
    need_env()
    if not DOCKERD:
        skip("dockerd not installed (scripts/deps.sh installs docker.io)")
    if shutil.which("gcc") is None:
        skip("gcc not installed")
    work = tempfile.mkdtemp(prefix="strata-seccomp-")
    d = None
    try:
        prog = os.path.join(work, "syscalls")
        r = subprocess.run(["gcc", "-static", "-O1", "-o", prog, os.path.join(HERE, "syscalls.c")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            skip(f"gcc -static failed: {r.stderr.strip()}")
        base = os.path.join(work, "base.tar")
        busybox_rootfs_tar(base)
        with tarfile.open(base, "a") as t:
            t.add(prog, "bin/syscalls")
        d = Dockerd(work, os.path.join(work, "docker"), "d")
        d.start()
        d("import", base, "sc:1")
        docker_out = d("run", "--rm", "--network", "none", "sc:1", "syscalls").stdout
        archive = os.path.join(work, "sc.tar")
        d("save", "-o", archive, "sc:1")
        d.stop()
        d = None
        store = os.path.join(work, "store")
        run(STRATA, "--root", store, "load", "-q", "-i", archive)
        strata_out = run(STRATA, "--root", store, "run", "--rm", "sc:1", "syscalls").stdout
        want, got = docker_out.splitlines(), strata_out.splitlines()
        diffs = [f"{w!r} under docker, {g!r} under strata" for w, g in zip(want, got) if w != g]
        if len(want) != len(got) or diffs or not want:
            print("FAIL: strata's seccomp filter answers differently from Docker's:\n" + "\n".join(diffs)
                  + f"\n(docker printed {len(want)} lines, strata {len(got)})")
            return 1
        print(f"PASS: {len(want)} syscalls answered as under Docker")
        return 0
    finally:
        if d is not None:
            d.stop()
        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
