#!/usr/bin/python3
"""What a container's command can reach: Docker's default capabilities and seccomp profile,
--cap-add/--cap-drop/--security-opt/--privileged, masked and read-only /proc and /sys, a
nodev,noexec /dev, /etc/hosts from the container's own dir (open_by_handle_at through it
refused), and no fd of the caller above stderr in the command or in strata-fs.
As root, or with --rootless as the unprivileged test user (capabilities are then those of the
user namespace; the kernel already keeps the host's /proc/sys and sysfs out of reach there)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (STRATA, Strata, as_user, build_probe_image, container_state,  # noqa: E402
                                find_daemon, report, run, start_test, unmount_all_under, wait_for)

DOCKER_DEFAULT_CAPS = "00000000a80425fb"
IMG = "t/probe:1"


def own_status():
    with open("/proc/self/status") as f:
        return dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)


def main():
    rootless, user, work = start_test("strata-contain-")
    store = os.path.join(work, "store")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    try:
        layout = os.path.join(work, "img")
        build_probe_image(layout, work)
        vol = os.path.join(work, "vol")
        os.makedirs(vol)
        if user:
            run("chown", "-R", user, work)
        S = Strata(store, user)
        S("load", "-q", "-i", layout, "--tag", IMG)

        def sh(script, *opts, **kw):
            return S("run", "--rm", *opts, IMG, "sh", "-c", script, check=False, **kw)

        def status(*opts):
            r = S("run", "--rm", *opts, IMG, "cat", "/proc/self/status", check=False)
            check(r.returncode == 0, f"run {' '.join(opts)}: exit {r.returncode}: {r.stderr.strip()}")
            return {k: v.strip() for k, v in (l.split(":", 1) for l in r.stdout.splitlines() if ":" in l)}

        # The user namespace: rootless, container root is the caller (never host root); as root
        # there is none (no --userns yet), so the map is the identity.
        r = S("run", "--rm", IMG, "cat", "/proc/self/uid_map", check=False)
        uid_map = r.stdout.split()
        if rootless:
            check(len(uid_map) >= 3 and uid_map[0] == "0" and uid_map[1] != "0",
                  f"rootless uid_map {r.stdout.strip()!r}: container root must map to the caller, not host root")
        else:
            check(uid_map[:3] == ["0", "0", "4294967295"], f"root uid_map {r.stdout.strip()!r}")

        # Capabilities and seccomp.
        st = status()
        for k in ("CapEff", "CapPrm", "CapBnd"):
            check(st.get(k) == DOCKER_DEFAULT_CAPS, f"default {k} {st.get(k)} (want Docker's {DOCKER_DEFAULT_CAPS})")
        for k in ("CapInh", "CapAmb"):
            check(st.get(k) == "0" * 16, f"default {k} {st.get(k)} (want empty)")
        check(st.get("Seccomp") == "2", f"default Seccomp {st.get('Seccomp')} (want 2: a filter)")
        check(st.get("NoNewPrivs") == "0", f"default NoNewPrivs {st.get('NoNewPrivs')} (want 0)")
        st = status("--security-opt", "no-new-privileges")
        check(st.get("NoNewPrivs") == "1", f"no-new-privileges: NoNewPrivs {st.get('NoNewPrivs')}")
        st = status("--security-opt", "seccomp=unconfined")
        check(st.get("Seccomp") == "0" and st.get("CapEff") == DOCKER_DEFAULT_CAPS,
              f"seccomp=unconfined: Seccomp {st.get('Seccomp')} CapEff {st.get('CapEff')}")
        st = status("--privileged")
        with open("/proc/sys/kernel/cap_last_cap") as f:
            full = format((1 << (int(f.read()) + 1)) - 1, "016x")
        want = full if rootless else own_status()["CapEff"].strip()
        check(st.get("CapEff") == want and st.get("Seccomp") == "0",
              f"--privileged: CapEff {st.get('CapEff')} (want {want}) Seccomp {st.get('Seccomp')}")
        chown = "touch /tmp/f && chown 1000 /tmp/f && echo chowned || echo refused"
        check(sh(chown).stdout.strip() == "chowned", "chown refused with the default capabilities")
        r = sh(chown, "--cap-drop", "CHOWN")
        check(r.stdout.strip() == "refused", f"--cap-drop CHOWN: {r.stdout.strip()!r}")
        mnt = "mkdir -p /m && mount -t tmpfs t /m 2>/dev/null && echo mounted || echo refused"
        check(sh(mnt).stdout.strip() == "refused", "mount allowed without CAP_SYS_ADMIN")
        r = sh(mnt, "--cap-add", "CAP_SYS_ADMIN")
        check(r.stdout.strip() == "mounted", f"--cap-add CAP_SYS_ADMIN: mount {r.stdout.strip()!r} {r.stderr}")
        r = S("run", "--rm", "--cap-add", "NO_SUCH_CAP", IMG, "true", check=False)
        check(r.returncode != 0 and "unknown capability" in r.stderr, f"--cap-add NO_SUCH_CAP: {r.stderr!r}")
        r = S("run", "--rm", "--security-opt", "apparmor=x", IMG, "true", check=False)
        check(r.returncode != 0 and "security-opt" in r.stderr, f"--security-opt apparmor=x: {r.stderr!r}")

        # open_by_handle_at through the bind-mounted /etc/hosts: refused by seccomp, and by the
        # missing CAP_DAC_READ_SEARCH without it.
        for opts in ((), ("--security-opt", "seccomp=unconfined")):
            r = S("run", "--rm", *opts, IMG, "probe", "handle", "/etc/hosts", check=False)
            check("open_by_handle_at: EPERM" in r.stdout.splitlines() and "opened" not in r.stdout,
                  f"open_by_handle_at {' '.join(opts) or '(default)'}: {r.stdout!r}")
        r = S("run", "--rm", IMG, "grep", " /etc/hosts ", "/proc/self/mountinfo")
        root = r.stdout.split()[3] if r.stdout.split() else ""
        check(re.search(r"/containers/[0-9a-f]{64}/hosts$", root),
              f"/etc/hosts is not the container's own file: {r.stdout!r}")

        # Masked and read-only kernel paths: each one this kernel has is covered by a mount and
        # shows nothing.
        masked = [p for p in ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                              "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                              "/sys/firmware", "/sys/devices/virtual/powercap")
                  if os.path.exists(p) and not (rootless and p.startswith("/sys/"))]
        r = sh("for p in " + " ".join(masked) + "; do echo $p $(grep -c \" $p \" /proc/self/mountinfo)"
               " $( ([ -d $p ] && ls -A $p || head -c 64 $p) 2>/dev/null | wc -c); done")
        got = [l.split() for l in r.stdout.splitlines()]
        check(len(got) == len(masked) and all(g[1:] == ["1", "0"] for g in got),
              f"masked paths (path, mounts over it, bytes shown): {got}")
        before = open("/proc/sys/kernel/core_pattern").read()
        r = sh("cat /proc/sys/kernel/core_pattern > /tmp/cp; cat /tmp/cp > /proc/sys/kernel/core_pattern 2>/dev/null"
               " && echo wrote || echo refused; grep ' /proc/sys ' /proc/self/mountinfo")
        after = open("/proc/sys/kernel/core_pattern").read()
        check(r.stdout.startswith("refused\n"), f"write to /proc/sys/kernel/core_pattern: {r.stdout!r}")
        check(" ro," in r.stdout, f"/proc/sys is not read-only: {r.stdout!r}")
        check(before == after, f"the host's core_pattern changed: {before!r} -> {after!r}")
        if not rootless:
            try:
                r = sh("grep ' /sys ' /proc/self/mountinfo; mount -o remount,ro /sys 2>/dev/null && echo remounted"
                       " || echo refused")
                check(r.stdout.endswith("refused\n"), f"mount -o remount,ro /sys inside: {r.stdout!r}")
                check(" ro," in r.stdout.splitlines()[0], f"/sys is not read-only: {r.stdout!r}")
            finally:
                if os.statvfs("/sys").f_flag & os.ST_RDONLY:
                    failures.append("the host's /sys became read-only (remounted rw again)")
                    subprocess.run(["mount", "-o", "remount,rw", "/sys"])

        # /dev: only the standard nodes, on a nosuid,nodev,noexec tmpfs; a node made with
        # CAP_MKNOD opens neither there nor in a volume.
        r = S("run", "--rm", IMG, "ls", "/dev")
        want_dev = "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero".split()
        check(sorted(r.stdout.split()) == want_dev, f"/dev holds {sorted(r.stdout.split())}")
        r = sh("grep ' /dev ' /proc/self/mountinfo")
        opts = r.stdout.split()[5].split(",") if r.stdout.split() else []
        check({"nosuid", "nodev", "noexec"} <= set(opts), f"/dev mount options {opts}")
        r = sh("for d in /dev /vol; do mknod $d/z c 1 5 2>/dev/null && { head -c 1 $d/z >/dev/null 2>&1 &&"
               " echo $d opened || echo $d refused; }; done", "-v", f"{vol}:/vol")
        check("opened" not in r.stdout, f"a device node made in the container opens: {r.stdout!r}")

        # Only fds 0-2 cross into the container, and none into strata-fs.
        marker = os.path.join(work, "marker")
        open(marker, "w").close()
        root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        marker_fd = os.open(marker, os.O_RDONLY)
        os.dup2(root_fd, 5)
        os.dup2(marker_fd, 7)
        try:
            r = S("run", "--rm", IMG, "sh", "-c", "probe fds; cat /proc/self/fd/5/etc/hostname >/dev/null 2>&1"
                  " && echo host-reachable || echo closed", pass_fds=(5, 7), check=False)
            check(r.stdout == "0 1 2\nclosed\n", f"fds in the container: {r.stdout!r} {r.stderr!r}")
            cmd = [STRATA, "--root", store, "run", "--name", "fdc", IMG, "sleep", "1000"]
            cmd = as_user(cmd, user)
            p = subprocess.Popen(cmd, pass_fds=(5, 7), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                cid, cfg = wait_for("container fdc", lambda: _state(store, "fdc"))
                merged = os.path.join(store, "overlay2", cfg["MountId"], "merged")
                fs = wait_for("the strata-fs of fdc", lambda: find_daemon(merged))
                targets = [os.readlink(f"/proc/{fs}/fd/{n}") for n in os.listdir(f"/proc/{fs}/fd")]
                check(marker not in targets and "/" not in targets, f"strata-fs holds the caller's fds: {targets}")
            finally:
                S("rm", "-f", "fdc", check=False)
                p.wait(timeout=60)
        finally:
            for fd in {5, 7, root_fd, marker_fd}:
                os.close(fd)

        return report(failures, "containment", rootless)
    finally:
        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


def _state(store, name):
    try:
        return container_state(store, name)
    except (AssertionError, OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
