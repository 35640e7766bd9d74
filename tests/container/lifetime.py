#!/usr/bin/python3
"""A container lives as long as its init and its strata run: strata run SIGKILLed takes the
command and strata-fs with it and `ps` says Exited; a recorded pid that now names another
process (wrong start time) is neither reported Up nor killed by `rm -f`; a group SIGTERM
reaches the command's trap with its root still there (not SIGBUS, 135); a group SIGINT is
seen once. As root, or with --rootless as the unprivileged test user."""
import json
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (load_busybox, STRATA, Strata, as_user, container_state,  # noqa: E402
                                find_daemon, proc_stat, report, run, start_test, unmount_all_under,
                                wait_for)

IMG = "t/bb:1"


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def main():
    rootless, user, work = start_test("strata-life-")
    store = os.path.join(work, "store")
    failures, leftovers = [], []

    def check(cond, what):
        if not cond:
            failures.append(what)

    def strata_cmd(*args, session=False):
        cmd = [STRATA, "--root", store, *args]
        if session:
            cmd = ["setsid"] + cmd  # strata run leads a process group of its own, as under a shell
        return as_user(cmd, user)

    def ps_status(name):
        rows = json.loads(S("ps", "-a", "--format", "json").stdout)
        return next((r["Status"] for r in rows if r["Names"] == name), None)

    try:
        S = Strata(store, user)
        load_busybox(S, work, user, IMG)

        # strata run SIGKILLed: the command, strata-fs and the mount go; ps says Exited.
        p = subprocess.Popen(strata_cmd("run", "--name", "k1", IMG, "sleep", "1000"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, cfg = wait_for("k1 to be Up", lambda: (ps_status("k1") == "Up") and container_state(store, "k1"))
        merged = os.path.join(store, "overlay2", cfg["MountId"], "merged")
        monitor = wait_for("strata run", lambda: _strata_pid(p.pid))
        sleep_pid = wait_for("the command of k1", lambda: _find_command(monitor, [b"sleep", b"1000"]))
        sleep_start = proc_stat(sleep_pid)[2]
        fs = wait_for("the strata-fs of k1", lambda: find_daemon(merged))
        leftovers += [(sleep_pid, sleep_start)]
        os.kill(monitor, signal.SIGKILL)
        p.wait(timeout=60)

        def gone(pid, start):
            s = proc_stat(pid)
            return s is None or s[2] != start or s[0] in "ZX"

        try:
            wait_for("the command to die with strata run", lambda: gone(sleep_pid, sleep_start), limit=20)
        except AssertionError as e:
            failures.append(f"{e}: `sleep 1000` (pid {sleep_pid}) still runs after strata run was killed")
        try:
            wait_for("strata-fs to exit", lambda: find_daemon(merged) is None, limit=20)
        except AssertionError as e:
            failures.append(f"{e}: strata-fs {fs} still serves the container's rootfs")
        st = ps_status("k1")
        check(st and st.startswith("Exited"), f"ps after strata run was killed: {st!r}")

        # A recorded pid now used by an unrelated process (another start time): not Up, not killed.
        other = subprocess.Popen(["sleep", "1000"])
        leftovers.append((other.pid, proc_stat(other.pid)[2]))
        cid, cfg = container_state(store, "k1")
        cfg["State"].update({"Running": True, "Pid": other.pid, "PidStartTime": proc_stat(other.pid)[2] + 1})
        with open(os.path.join(store, "containers", cid, "config.v2.json"), "w") as f:
            json.dump(cfg, f)
        st = ps_status("k1")
        check(st != "Up", f"ps trusts a reused pid: {st!r}")
        S("rm", "-f", "k1", check=False)
        check(other.poll() is None, "rm -f killed an unrelated process that had the recorded pid")
        other.kill()
        other.wait()

        # A group SIGTERM (systemd stop, timeout, kill -- -PGID) reaches the command's trap once,
        # with its root still mounted; a group SIGINT is counted once.
        script = ("n=0; trap 'n=$((n+1)); echo int' INT; trap 'echo got; echo count=$n; cat /etc/hostname"
                  " >/dev/null && exit 3' TERM; sleep 1000 & echo ready; while :; do wait; done")
        p = subprocess.Popen(strata_cmd("run", "--rm", IMG, "sh", "-c", script, session=True),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            check(p.stdout.readline() == "ready\n", "the command did not start")
            pgid = os.getpgid(wait_for("strata run", lambda: _strata_pid(p.pid)))
            os.killpg(pgid, signal.SIGINT)
            line = p.stdout.readline()
            check(line == "int\n", f"after a group SIGINT the command printed {line!r}")
            os.killpg(pgid, signal.SIGTERM)
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            out, err = "", "(still running a minute after the group SIGTERM)"
        finally:
            if p.poll() is None:
                for pid in _tree(p.pid):
                    os.kill(pid, signal.SIGKILL)
                p.wait()
        check(p.returncode == 3, f"group SIGTERM: exit {p.returncode} (want the trap's 3; 135 is SIGBUS from a "
                                 f"root that went first), stderr {err!r}")
        check(out == "got\ncount=1\n", f"group SIGINT then SIGTERM: the command printed {out!r} (want one INT)")

        return report(failures, "lifetime", rootless)
    finally:
        for pid, start in leftovers:  # what the code under test failed to stop
            s = proc_stat(pid)
            if s and s[2] == start:
                os.kill(pid, signal.SIGKILL)
        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return []


def _strata_pid(pid):
    """strata run: the process started, or its child when runuser started it (rootless)."""
    for p in [pid] + children(pid):
        argv = _cmdline(p)
        if argv and argv[0].endswith(b"strata"):
            return p
    return None


def _tree(top):
    """`top` and its descendants."""
    out, todo = [], [top]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def _find_command(top, argv):
    """A descendant of `top` running `argv`."""
    todo = [top]
    while todo:
        p = todo.pop()
        if _cmdline(p) == argv:
            return p
        todo += children(p)
    return None


if __name__ == "__main__":
    sys.exit(main())
