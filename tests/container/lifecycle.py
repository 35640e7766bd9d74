#!/usr/bin/python3
"""The container lifecycle end to end with a busybox image: run -d (id printed, the caller's
pipes not held, the monitor in a session of its own, the rootfs served by its strata-fs, output
in the json-file log), logs [--tail], stop [-t] (the command's TERM trap, exit code recorded),
wait, start again on the same rw layer, kill [-s], restart, rm (refused while running, rm -f
with no stray fuse message), create + start -a [-i], stdin /dev/null without -i, -t with a real
pty (tty, stty size, SIGWINCH), and bad input (unknown container, start of a running one, stop
of a stopped one) as one line that changes nothing. As root, or with --rootless as the
unprivileged test user."""
import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (load_busybox, STRATA, Strata, as_user, container_state,  # noqa: E402
                                find_daemon, proc_stat, report, run, start_test, unmount_all_under,
                                wait_for)

IMG = "t/bb:1"
# Counts its starts in the rw layer, says so on stdout and stderr, and exits 7 on SIGTERM and
# 8 on SIGUSR1 (a shell waiting in `wait` runs a trap at once).
SERVICE = ("n=$(cat /starts 2>/dev/null || echo 0); n=$((n+1)); echo $n > /starts; echo start $n; "
           "echo err $n >&2; trap 'echo term; exit 7' TERM; trap 'echo usr1; exit 8' USR1; "
           "sleep 100000 & wait")


def main():
    rootless, user, work = start_test("strata-lifecycle-")
    store = os.path.join(work, "store")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    def one_line_error(r, what, want):
        lines = r.stderr.strip().splitlines()
        check(r.returncode != 0 and len(lines) == 1 and want in lines[0],
              f"{what}: exit {r.returncode}, stderr {r.stderr!r} (want one line with {want!r})")

    def ps_status(name):
        rows = json.loads(S("ps", "-a", "--format", "json").stdout)
        return next((r["Status"] for r in rows if r["Names"] == name), None)

    def logs(*args):
        r = S("logs", *args, "svc")
        return r.stdout, r.stderr

    try:
        S = Strata(store, user)
        load_busybox(S, work, user, IMG)

        # run -d: returns with the id while the container runs on; capture_output would hang
        # if the monitor kept the caller's stdout or stderr open.
        r = S("run", "-d", "--name", "svc", IMG, "sh", "-c", SERVICE)
        cid = r.stdout.strip()
        check(re.fullmatch(r"[0-9a-f]{64}", cid), f"run -d printed {r.stdout!r}, stderr {r.stderr!r}")
        check(ps_status("svc") == "Up", f"ps after run -d: {ps_status('svc')!r}")
        _, cfg = container_state(store, "svc")
        st = cfg["State"]
        merged = os.path.join(store, "overlay2", cfg["MountId"], "merged")
        check(find_daemon(merged) is not None, "no strata-fs serves the detached container's rootfs")
        monitor = st.get("MonitorPid", 0)
        check(monitor and proc_stat(monitor) and os.getsid(monitor) == monitor,
              f"the monitor {monitor} is not the leader of a session of its own")
        if monitor and proc_stat(monitor):
            fds = sorted(int(x) for x in os.listdir(f"/proc/{monitor}/fd"))
            check(fds == [0, 1, 2], f"the monitor holds fds {fds} (want only 0, 1, 2)")
        wait_for("the service's output in logs", lambda: logs()[0] == "start 1\n")
        out, err = logs()
        check(err == "err 1\n", f"logs stderr {err!r}")
        log = os.path.join(store, "containers", cid, f"{cid}-json.log")
        with open(log) as f:
            entries = [json.loads(line) for line in f]
        check(sorted((e["stream"], e["log"]) for e in entries) == [("stderr", "err 1\n"), ("stdout", "start 1\n")]
              and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["time"]) for e in entries),
              f"json-file log: {entries}")

        # Bad input: one line, nothing changed.
        one_line_error(S("start", "svc", check=False), "start of a running container", "already running")
        for cmd in (["start"], ["stop"], ["kill"], ["wait"], ["logs"], ["restart"]):
            one_line_error(S(*cmd, "nosuch", check=False), f"{cmd[0]} of an unknown container", "no such container")
        one_line_error(S("kill", "-s", "NOSUCH", "svc", check=False), "kill -s NOSUCH", "invalid signal")
        one_line_error(S("rm", "svc", check=False), "rm of a running container", "is running")
        check(ps_status("svc") == "Up", f"bad input changed the container: {ps_status('svc')!r}")

        # stop: SIGTERM reaches the command's trap; the exit code is recorded and waited for.
        r = S("stop", "-t", "60", "svc")
        check(r.stdout == "svc\n", f"stop printed {r.stdout!r}")
        check(ps_status("svc") == "Exited (7)", f"ps after stop: {ps_status('svc')!r}")
        check(S("wait", "svc").stdout == "7\n", "wait after stop")
        check(logs()[0] == "start 1\nterm\n", f"logs after stop: {logs()!r}")
        check(logs("--tail", "1")[0] == "term\n", f"logs --tail 1: {logs('--tail', '1')!r}")
        check(find_daemon(merged) is None, "strata-fs still runs after stop")
        one_line_error(S("stop", "svc", check=False), "stop of a stopped container", "not running")
        one_line_error(S("kill", "svc", check=False), "kill of a stopped container", "not running")

        # start: the same rw layer (the count goes on), in the background; kill -s USR1.
        check(S("start", "svc").stdout == "svc\n", "start printed the name")
        check(ps_status("svc") == "Up", f"ps after start: {ps_status('svc')!r}")
        wait_for("the second start's output", lambda: "start 2\n" in logs()[0])
        p = subprocess.Popen(as_user([STRATA, "--root", store, "wait", "svc"], user), stdout=subprocess.PIPE, text=True)
        S("kill", "-s", "USR1", "svc")
        check(p.communicate(timeout=120)[0] == "8\n", "wait during kill -s USR1 did not print 8")
        check(ps_status("svc") == "Exited (8)", f"ps after kill -s USR1: {ps_status('svc')!r}")

        # restart of an exited container, then kill (SIGKILL): 137.
        S("restart", "svc")
        wait_for("the third start's output", lambda: "start 3\n" in logs()[0])
        S("kill", "svc")
        check(S("wait", "svc").stdout == "137\n", "wait after kill")
        # logs -f of an exited container ends by itself.
        check(logs("-f")[0] == "start 1\nterm\nstart 2\nusr1\nstart 3\n", f"logs -f: {logs('-f')!r}")

        # rm -f of a running container: stopped, removed, no stray fuse message, nothing mounted.
        S("start", "svc")
        fs = wait_for("strata-fs of the restarted container", lambda: find_daemon(merged))
        r = S("rm", "-f", "svc")
        check(r.stderr == "", f"rm -f printed {r.stderr!r}")
        check(ps_status("svc") is None, "rm -f left the container")
        check(proc_stat(fs) is None or proc_stat(fs)[0] in "ZX", "rm -f left strata-fs running")
        check(not os.path.exists(os.path.join(store, "containers", cid)), "rm -f left the container dir")

        # rm -f of a container that a foreground strata run waits for: that run's stderr stays
        # clean too (strata-fs unmounts before the mount point is deleted).
        p = subprocess.Popen(as_user([STRATA, "--root", store, "run", "--name", "fg", IMG, "sleep", "100000"], user),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for("fg to be Up", lambda: ps_status("fg") == "Up")
        r = S("rm", "-f", "fg")
        _, err = p.communicate(timeout=120)
        check(r.stderr == "" and "failed to unmount" not in err,
              f"rm -f of a foreground container: rm said {r.stderr!r}, strata run said {err!r}")

        # create + start -a: attached, the command's output and exit status; -i passes stdin,
        # without -i the command's stdin is /dev/null.
        S("create", "--name", "once", IMG, "sh", "-c", "echo hi; exit 3")
        check(ps_status("once") == "Created", f"ps after create: {ps_status('once')!r}")
        r = S("start", "-a", "once", check=False)
        check((r.returncode, r.stdout) == (3, "hi\n"), f"start -a: {r.returncode} {r.stdout!r} {r.stderr!r}")
        S("create", "--name", "cat", IMG, "cat")
        r = S("start", "-a", "-i", "cat", input="piped\n")
        check(r.stdout == "piped\n", f"start -a -i: {r.stdout!r}")
        r = S("run", "--rm", IMG, "cat", input="not for you\n")
        check(r.stdout == "", f"run without -i read stdin: {r.stdout!r}")
        r = S("run", "--rm", "-i", IMG, "cat", input="for you\n")
        check(r.stdout == "for you\n", f"run -i: {r.stdout!r}")

        # -t: a pty of the container's own devpts with the caller's window size, and SIGWINCH.
        out, code = in_pty(as_user([STRATA, "--root", store, "run", "--rm", "-t", IMG, "sh", "-c",
                                    "tty; stty size; echo $TERM"], user), (33, 101))
        check(code == 0 and out.split() == ["/dev/pts/0", "33", "101", "xterm"], f"run -t: {code} {out!r}")
        script = "trap 'stty size; exit 5' WINCH; echo ready; while :; do sleep 100000 & wait; done"
        out, code = in_pty(as_user([STRATA, "--root", store, "run", "--rm", "-it", IMG, "sh", "-c", script], user),
                           (24, 80), resize=(40, 120))
        check(code == 5 and out.split()[-2:] == ["40", "120"], f"run -it after SIGWINCH: {code} {out!r}")
        S("run", "-d", "-t", "--name", "dt", IMG, "sh", "-c", "tty")
        check(S("wait", "dt").stdout == "0\n", "run -d -t exit")
        check(logs_of(S, "dt").strip() == "/dev/pts/0", f"run -d -t logs: {logs_of(S, 'dt')!r}")

        # A monitor killed (SIGKILL: nothing it can record) takes its container down with it;
        # `wait` then says the exit code is unknown in one line, and rm -f still cleans up.
        S("run", "-d", "--name", "orphan", IMG, "sleep", "100000")
        monitor = container_state(store, "orphan")[1]["State"]["MonitorPid"]
        os.kill(monitor, signal.SIGKILL)
        one_line_error(S("wait", "orphan", check=False), "wait after the monitor was killed",
                       "exit code is unknown (its monitor was killed")
        r = S("rm", "-f", "orphan", check=False)
        check(r.returncode == 0 and "orphan" not in S("ps", "-a").stdout, f"rm -f of a monitor-less container: {r.stderr!r}")

        return report(failures, "lifecycle", rootless)
    finally:
        for name in ("svc", "fg", "dt", "orphan"):
            try:
                subprocess.run(as_user([STRATA, "--root", store, "rm", "-f", name], user), capture_output=True,
                               timeout=120)
            except subprocess.TimeoutExpired:
                pass
        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


def logs_of(S, name):
    return S("logs", name).stdout


def in_pty(argv, size, resize=None):
    """Runs argv with a new pty as stdin/stdout/stderr, window `size` (rows, cols). With
    `resize`, once the command printed "ready", the window changes and strata gets SIGWINCH
    as from a terminal. Returns (output, exit status)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    resized = False
    while True:
        if not select.select([master], [], [], 120)[0]:  # a hang fails the test instead of blocking it
            os.killpg(p.pid, signal.SIGKILL)
            out += b"(no output for 120 s: killed)"
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every slave closed
            break
        if not chunk:
            break
        out += chunk
        if resize and not resized and b"ready" in out:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", resize[0], resize[1], 0, 0))
            for pid in _strata_pids(p.pid):
                os.kill(pid, signal.SIGWINCH)
            resized = True
    os.close(master)
    return out.decode(errors="replace").replace("\r", ""), p.wait(timeout=120)


def _strata_pids(top):
    """strata processes (STRATA_BIN's name) at or right below `top` (runuser runs strata as its
    child)."""
    out = []
    for pid in [top] + _children(top):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if os.path.basename(f.read().split(b"\0")[0]) == os.path.basename(STRATA).encode():
                    out.append(pid)
        except OSError:
            pass
    return out


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


if __name__ == "__main__":
    sys.exit(main())
