#!/usr/bin/python3
"""The container's pid 1 (strata's init, which forks the command and passes signals on) keeps no
more than the container's confinement, as root and (--rootless) as the unprivileged test user.

It sits in the container's pid namespace, and a container given CAP_SYS_PTRACE (--cap-add
SYS_PTRACE) may ptrace it although it is not dumpable (the capability overrides that): it used to
keep every capability and no seccomp filter (CapEff 000001fffeffffff, Seccomp 0 on the previous
build; its environ, maps and fds were readable from the container), a way out for any process in
the container. Docker's pid 1 is the command itself. Checked: pid 1's capability sets hold only
the command's (plus CAP_KILL, to pass signals on to a non-root command), the same seccomp mode
and no_new_privs, and `stop` still reaches the command through it (exit 143)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (load_busybox, Strata, container_state, report, run, start_test,  # noqa: E402
                                unmount_all_under, wait_for)

IMG = "t/bb:1"
CAP_KILL = 5


def status_fields(text, pid):
    out = {}
    for line in text.splitlines():
        prefix = f"/proc/{pid}/status:"
        if line.startswith(prefix):
            key, _, value = line[len(prefix):].partition(":")
            out[key] = value.strip()
    return out


def main():
    rootless, user, work = start_test("strata-initconf-")
    store = os.path.join(work, "store")
    failures = []
    S = Strata(store, user)
    try:
        load_busybox(S, work, user, IMG)
        for name, flags in (("ptr", ["--cap-add", "SYS_PTRACE"]),
                            ("nnp", ["--cap-drop", "KILL", "--security-opt", "no-new-privileges", "-u", "1000"])):
            S("run", "-d", "--name", name, *flags, IMG, "sleep", "1000")
            # run -d returns once the init runs; the command (pid 2) may not have exec'd yet.
            wait_for(f"{name}: the command to run", lambda: S("exec", name, "cat", "/proc/2/comm",
                                                            check=False).stdout.strip() == "sleep")
            r = S("exec", name, "grep", "-E", "^(Cap(Prm|Eff|Bnd|Inh)|Seccomp|NoNewPrivs):",
                  "/proc/1/status", "/proc/2/status", check=False)
            init, cmd = status_fields(r.stdout, 1), status_fields(r.stdout, 2)
            if r.returncode != 0 or not init or not cmd:
                failures.append(f"{name}: read the status of pid 1 and 2: {r.returncode} {r.stdout!r} {r.stderr!r}")
                continue
            allowed = int(cmd["CapBnd"], 16) | (1 << CAP_KILL)
            for key in ("CapPrm", "CapEff", "CapBnd", "CapInh"):
                if int(init[key], 16) & ~allowed:
                    failures.append(f"{name}: pid 1 {key} {init[key]} holds more than the command's {cmd['CapBnd']} + KILL")
            for key in ("Seccomp", "NoNewPrivs"):
                if init[key] != cmd[key]:
                    failures.append(f"{name}: pid 1 {key} {init[key]}, the command's {cmd[key]}")
            S("stop", "-t", "10", name)
            code = container_state(store, name)[1]["State"].get("ExitCode")
            if code != 143:
                failures.append(f"{name}: stop: want the command ended by SIGTERM (143), got {code!r}")
    finally:
        if os.path.isdir(store):  # a failed check leaves no container running
            S("rm", "-f", "ptr", "nnp", check=False)
        unmount_all_under(work)
        run("rm", "-rf", work, check=False)
    return report(failures, "init_confinement", rootless)


if __name__ == "__main__":
    sys.exit(main())
