#!/usr/bin/python3
"""strata exec right after `strata run -d` (and `strata start`) returns, as root or (--rootless)
as the unprivileged test user, as a docker user scripts it: `run -d NAME ...; exec NAME ...`.

Rootless, strata cannot read the container's init (not dumpable, its memory the host user
namespace's), so exec joins the namespaces of the container's command; until that command has
executed it is a copy of the init and as unreadable. exec used to fail then ("open the
namespaces of container NAME: Permission denied"): a race, lost on this machine by 1 to 3 of
the 10 execs below on the previous build (it cannot be forced from outside). It now waits for the command to have executed. The same for `start`
of a stopped container. Every exec must succeed and see the container's hostname and files."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (load_busybox, Strata, report, run, start_test,  # noqa: E402
                                unmount_all_under)

IMG = "t/bb:1"
TRIES = 5


def main():
    rootless, user, work = start_test("strata-execstart-")
    store = os.path.join(work, "store")
    failures = []
    S = Strata(store, user)
    names = [f"x{i}" for i in range(TRIES)]
    try:
        load_busybox(S, work, user, IMG)
        for name in names:
            S("run", "-d", "--name", name, "--hostname", f"h-{name}", IMG, "sleep", "1000")
            r = S("exec", name, "sh", "-c", "hostname; cat /data/keep.txt", check=False)
            if r.returncode != 0 or r.stdout.split() != [f"h-{name}", "keep"]:
                failures.append(f"exec {name} right after run -d: {r.returncode} {r.stdout!r} {r.stderr.strip()!r}")
        for name in names:
            S("stop", "-t", "1", name)
            S("start", name)
            r = S("exec", name, "hostname", check=False)
            if r.returncode != 0 or r.stdout.strip() != f"h-{name}":
                failures.append(f"exec {name} right after start: {r.returncode} {r.stdout!r} {r.stderr.strip()!r}")
    finally:
        if os.path.isdir(store):  # a failed check leaves no container running
            S("rm", "-f", *names, check=False)
        unmount_all_under(work)
        run("rm", "-rf", work, check=False)
    return report(failures, "exec_after_start", rootless)


if __name__ == "__main__":
    sys.exit(main())
