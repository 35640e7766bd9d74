#!/usr/bin/python3
"""strata exec and cp on a running container whose command chrooted itself, as root or
(--rootless) as the unprivileged test user: both work at the container's root, as docker exec
and docker cp do, never inside the command's chroot.

Rootless, strata joins the namespaces of the container's command (its init cannot be read by
its user) and used to chroot to that command's /proc/PID/root: with `chroot /jail cmd` as the
command, `exec ls /` listed /jail and cp read and wrote there, while as root (the init's root)
they did not. Joining the mount namespace alone puts a process at the container's root."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (Strata, build_busybox_image, report, run, start_test,  # noqa: E402
                                unmount_all_under, wait_for)

IMG = "t/bb:1"


def main():
    rootless, user, work = start_test("strata-execroot-")
    store = os.path.join(work, "store")
    failures = []
    S = Strata(store, user)
    try:
        layout = os.path.join(work, "img")
        build_busybox_image(layout)
        out = os.path.join(work, "out")
        os.makedirs(out)
        with open(os.path.join(work, "in.txt"), "w") as f:
            f.write("copied in\n")
        if user:
            run("chown", "-R", user, work)
        S("load", "-q", "-i", layout, "--tag", IMG)
        marker = 100000 + os.getpid()  # a sleep no other test runs
        S("run", "-d", "--name", "j", IMG, "sh", "-c",
          "mkdir -p /jail/bin && cp /bin/busybox /jail/bin/ && echo jailed > /jail/where && "
          f"exec chroot /jail /bin/busybox sleep {marker}")
        # Seen from the host: inside the jail there is no /proc to look.
        wait_for("the command to chroot",
                 lambda: run("pgrep", "-f", f"^/bin/busybox sleep {marker}$", check=False).returncode == 0)
        r = S("exec", "j", "/bin/busybox", "ls", "/", check=False)
        names = r.stdout.split()
        if r.returncode != 0 or "data" not in names or "jail" not in names:
            failures.append(f"exec ls /: want the container's root (data, jail), got {r.returncode} {names} {r.stderr!r}")
        r = S("cp", "j:/data/keep.txt", out + "/", check=False)
        got = open(os.path.join(out, "keep.txt")).read() if os.path.exists(os.path.join(out, "keep.txt")) else None
        if r.returncode != 0 or got != "keep\n":
            failures.append(f"cp out of /data/keep.txt: {r.returncode} {got!r} {r.stderr!r}")
        S("cp", os.path.join(work, "in.txt"), "j:/in.txt", check=False)
        r = S("exec", "j", "/bin/busybox", "cat", "/in.txt", "/jail/where", check=False)
        if r.stdout != "copied in\njailed\n":
            failures.append(f"cp in to /in.txt: want it at the container's root, got {r.stdout!r} {r.stderr!r}")
    finally:
        if os.path.isdir(store):  # a failed check leaves no container running
            S("rm", "-f", "j", check=False)
        unmount_all_under(work)
        run("rm", "-rf", work, check=False)
    return report(failures, "exec_container_root", rootless)


if __name__ == "__main__":
    sys.exit(main())
