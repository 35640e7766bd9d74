#!/usr/bin/python3
"""strata exec and strata cp end to end, as root or (--rootless) as the unprivileged test user.

exec: joins the running container (its hostname, mount and pid namespaces: the container's
files and pid numbers), the container's confinement (Docker's capability set minus its
--cap-drop, its no-new-privileges, seccomp), its Env plus -e, -u, -w, -i (else stdin is
/dev/null), -t (a pty with the caller's window size), only fds 0-2, exit statuses passed on; a
stopped or unknown container: one line, exit 1 (docker's), nothing changed.
cp: out and in, files and directories by docker cp's naming rules, `-` tar streams, owners
(the host files' ids, as dockerd keeps them), a missing file (one line, nothing written); symlinks the container planted
pointing at host paths (as a parent, as the file, with -L, `..` past the root) reach only the
container's own files; then the same on the stopped container through its rw view, where a
file the container deleted (whiteout) is not found."""
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (STRATA, Strata, as_user, build_busybox_image, container_state,  # noqa: E402
                                report, run, start_test, unmount_all_under, wait_for)

IMG = "t/bb:1"


def main():
    rootless, user, work = start_test("strata-execcp-")
    store = os.path.join(work, "store")
    failures = []
    procs = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    def one_line_error(r, what, code):
        lines = r.stderr.strip().splitlines()
        check(r.returncode == code and len(lines) == 1 and lines[0].startswith("strata: "),
              f"{what}: want exit {code} and one 'strata: ' line, got {r.returncode} {r.stderr!r}")

    try:
        layout = os.path.join(work, "img")
        build_busybox_image(layout)
        # Host files: a secret the container must not reach, a dir a planted link points at.
        host = os.path.join(work, "host")
        os.makedirs(os.path.join(host, "victim"))
        with open(os.path.join(host, "secret.txt"), "w") as f:
            f.write("host secret\n")
        os.makedirs(os.path.join(host, "tree/sub"))
        for name, text in (("in.txt", "copied in\n"), ("tree/a.txt", "a\n"), ("tree/sub/b.txt", "b\n")):
            with open(os.path.join(host, name), "w") as f:
                f.write(text)
        if user:
            run("chown", "-R", user, work)
        else:
            os.chown(os.path.join(host, "in.txt"), 1234, 1234)
        S = Strata(store, user)
        S("load", "-q", "-i", layout, "--tag", IMG)

        p = subprocess.Popen(as_user([STRATA, "--root", store, "run", "--name", "e1", "--cap-drop", "NET_RAW",
                                      "--security-opt", "no-new-privileges",
                                      "-e", "FROM_RUN=1", IMG, "sleep", "1000"], user),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(p)

        def ps_up():
            r = S("ps", check=False)
            return " Up " in r.stdout and "e1" in r.stdout

        wait_for("e1 to be Up", ps_up)
        _, cfg = container_state(store, "e1")
        init = cfg["State"]["Pid"]

        # --- exec ---
        r = S("exec", "e1", "sh", "-c", "hostname; cat /data/keep.txt; echo $$; cat /proc/1/cmdline | tr '\\0' ' '",
              check=False)
        lines = r.stdout.splitlines()
        check(r.returncode == 0 and lines[:2] == [cfg["Config"]["Hostname"], "keep"],
              f"exec hostname/file: {r.returncode} {r.stdout!r} {r.stderr!r}")
        check(len(lines) > 3 and int(lines[2]) < 50 and " run " in lines[3],
              f"exec is not in the container's pid namespace (pid, pid 1): {lines[2:]}")
        own = S("exec", "e1", "sh", "-c", "for n in mnt pid uts; do readlink /proc/self/ns/$n; done",
                check=False).stdout.split()
        want = [os.readlink(f"/proc/{init}/ns/{n}") for n in ("mnt", "pid", "uts")]
        check(own == want, f"exec namespaces {own} != the container init's {want}")
        r = S("exec", "e1", "sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
              check=False)
        check(r.stdout.split() == ["CapEff:", "00000000a80405fb", "CapBnd:", "00000000a80405fb", "NoNewPrivs:", "1",
                                   "Seccomp:", "2"],
              f"exec confinement (Docker's set minus NET_RAW, no-new-privileges, seccomp): {r.stdout!r} {r.stderr!r}")
        r = S("exec", "-e", "FOO=bar", "-e", "FROM_RUN=2", "-w", "/data", "e1", "sh", "-c",
              "pwd; echo $FOO $FROM_RUN $PATH $HOME", check=False)
        check(r.stdout == "/data\nbar 2 /usr/sbin:/usr/bin:/sbin:/bin /root\n", f"exec -e/-w: {r.stdout!r} {r.stderr!r}")
        r = S("exec", "-u", "user", "e1", "id", check=False)
        if user and "not mapped" in r.stderr:
            print("note: no /etc/subuid range: exec -u user not checked rootless")
        else:
            check(r.stdout.startswith("uid=1000(user) gid=1000(user)"), f"exec -u user: {r.stdout!r} {r.stderr!r}")
        r = S("exec", "e1", "sh", "-c", "exit 7", check=False)
        check(r.returncode == 7, f"exec exit status {r.returncode}")
        r = S("exec", "e1", "sh", "-c", "kill -TERM $$", check=False)
        check(r.returncode == 143, f"exec killed by SIGTERM: {r.returncode}")
        r = S("exec", "e1", "no-such-command", check=False)
        check(r.returncode == 126, f"exec of a missing command: {r.returncode} (docker exec: 126)")
        r = S("exec", "-i", "e1", "cat", input="to stdin\n", check=False)
        check(r.stdout == "to stdin\n", f"exec -i: {r.stdout!r}")
        r = S("exec", "e1", "cat", input="to stdin\n", check=False)
        check(r.returncode == 0 and r.stdout == "", f"exec without -i read stdin: {r.stdout!r}")
        # An fd of the caller's above 2 does not cross.
        extra = os.open(os.path.join(host, "secret.txt"), os.O_RDONLY)
        try:
            r = run(*as_user([STRATA, "--root", store, "exec", "e1", "ls", "/proc/self/fd"], user), check=False,
                    pass_fds=[extra])
        finally:
            os.close(extra)
        check(r.stdout.split() == ["0", "1", "2", "3"], f"fds in exec: {r.stdout.split()} (want 0 1 2 and ls's own)")
        S("exec", "e1", "sh", "-c", "echo made by exec > /tmp/by-exec")
        r = S("exec", "e1", "cat", "/tmp/by-exec", check=False)
        check(r.stdout == "made by exec\n", f"a file exec wrote: {r.stdout!r}")
        one_line_error(S("exec", "nope", "true", check=False), "exec into an unknown container", 1)
        # -t: a pty of the container's devpts with the caller's window size (script(1) gives us a terminal).
        if shutil.which("script"):
            argv = " ".join(as_user([STRATA, "--root", store, "exec", "-t", "e1", "sh", "-c",
                                     "'tty; stty size; echo $TERM; exit 3'"], user))
            r = subprocess.run(["script", "-qec", f"stty cols 91 rows 33; {argv}", "/dev/null"],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
            got = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]  # the pty writes CR LF
            check(r.returncode == 3 and got == ["/dev/pts/0", "33 91", "xterm"],
                  f"exec -t: {r.returncode} {got} {r.stderr!r}")
        else:
            print("note: script(1) missing: exec -t not checked")

        # --- cp, running ---
        out = os.path.join(work, "out")
        os.makedirs(out)
        if user:
            run("chown", user, out)

        def rd(path):
            with open(path) as f:
                return f.read()

        S("cp", "e1:/data/keep.txt", os.path.join(out, "keep.txt"))
        check(rd(os.path.join(out, "keep.txt")) == "keep\n", "cp out of a file")
        st = os.stat(os.path.join(out, "keep.txt"))
        want_uid = int(run("id", "-u", user).stdout) if user else 0
        check(st.st_uid == want_uid, f"a file copied out is owned by {st.st_uid}, not the caller {want_uid}")
        S("exec", "e1", "sh", "-c", "mkdir /data/hl && echo linked > /data/hl/one && ln /data/hl/one /data/hl/two")
        S("cp", "e1:/data/hl", os.path.join(out, "hl"))
        one, two = (os.stat(os.path.join(out, "hl", n)) for n in ("one", "two"))
        check(one.st_ino == two.st_ino and one.st_nlink == 2, "cp out: a hardlinked pair became two files")
        S("exec", "e1", "rm", "-r", "/data/hl")
        S("cp", "e1:/data", os.path.join(out, "d1"))  # a new name: the directory itself
        check(sorted(os.listdir(os.path.join(out, "d1"))) == ["keep.txt", "lower.txt", "sub"], "cp out of a dir")
        S("cp", "e1:/data/sub", os.path.join(out, "d1/sub/x"))  # a file's new name in an existing dir
        S("cp", "e1:/data/sub", os.path.join(out, "d1/sub/x"))  # now an existing dir: into it
        check(rd(os.path.join(out, "d1/sub/x/sub/deep.txt")) == "deep\n", "cp out into an existing dir")
        r = subprocess.run(as_user([STRATA, "--root", store, "cp", "e1:/data", "-"], user), capture_output=True)
        names = sorted(tarfile.open(fileobj=io.BytesIO(r.stdout)).getnames()) if r.returncode == 0 else []
        check(names == ["data", "data/keep.txt", "data/lower.txt", "data/sub", "data/sub/deep.txt"],
              f"cp out to - (a tar): {names} {r.stderr!r}")

        S("cp", os.path.join(host, "in.txt"), "e1:/tmp/in.txt")
        S("cp", "-a", os.path.join(host, "in.txt"), "e1:/tmp/in-a.txt")
        S("cp", os.path.join(host, "tree"), "e1:/tmp/tree")
        S("cp", os.path.join(host, "tree") + "/.", "e1:/data/sub")  # contents into an existing dir
        r = S("exec", "e1", "sh", "-c", "cat /tmp/in.txt /tmp/tree/sub/b.txt /data/sub/a.txt; "
              "stat -c %u:%g /tmp/in.txt /tmp/in-a.txt /tmp/tree/a.txt", check=False)
        # dockerd 20.10 keeps the host files' ids, as numbers (-a: the container's User, if it had one)
        ids = ["{0.st_uid}:{0.st_gid}".format(os.stat(os.path.join(host, n))) for n in ("in.txt", "in.txt", "tree/a.txt")]
        check(r.stdout == "copied in\nb\na\n" + "".join(i + "\n" for i in ids),
              f"cp in (content, owners {ids}): {r.stdout!r} {r.stderr!r}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = b"from a tar\n"
            ti = tarfile.TarInfo("t1/s.txt")
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        r = subprocess.run(as_user([STRATA, "--root", store, "cp", "-", "e1:/tmp"], user), input=buf.getvalue(),
                           capture_output=True)
        check(r.returncode == 0, f"cp - e1:/tmp: {r.stderr!r}")
        check(S("exec", "e1", "cat", "/tmp/t1/s.txt", check=False).stdout == "from a tar\n", "cp in from a tar on stdin")

        # Missing files and bad destinations: one line, nothing written.
        before = sorted(os.listdir(out))
        one_line_error(S("cp", "e1:/nope", os.path.join(out, "nope"), check=False), "cp of a missing file", 1)
        one_line_error(S("cp", os.path.join(host, "nope"), "e1:/tmp/x", check=False), "cp in of a missing host file", 1)
        one_line_error(S("cp", "e1:/data", os.path.join(out, "keep.txt"), check=False), "cp of a dir onto a file", 1)
        one_line_error(S("cp", "nope:/etc/passwd", os.path.join(out, "x"), check=False), "cp from an unknown container", 1)
        check(sorted(os.listdir(out)) == before, f"a failed cp wrote into {out}: {sorted(os.listdir(out))}")

        # Hostile links: the container points names at host paths; cp resolves them in its root.
        victim = os.path.join(host, "victim")
        secret = os.path.join(host, "secret.txt")
        S("exec", "e1", "sh", "-c", f"ln -s {host} /tmp/hostdir; ln -s {secret} /tmp/leak; "
          f"ln -s {victim} /tmp/drop; ln -s {victim}/planted /tmp/plant; ln -s / /tmp/rootlink")
        one_line_error(S("cp", "e1:/tmp/hostdir/secret.txt", os.path.join(out, "s1"), check=False),
                       "cp through a planted parent link", 1)
        one_line_error(S("cp", "-L", "e1:/tmp/leak", os.path.join(out, "s2"), check=False), "cp -L of a planted link", 1)
        S("cp", "e1:/tmp/leak", os.path.join(out, "s3"))
        check(os.path.islink(os.path.join(out, "s3")), "cp of a link without -L copies the link itself")
        S("cp", "e1:/tmp/rootlink/etc/passwd", os.path.join(out, "s4"))
        check("user:x:1000" in rd(os.path.join(out, "s4")), "a link to / resolved outside the container's root")
        S("cp", "e1:/../../../../etc/hostname", os.path.join(out, "s5"))
        check(rd(os.path.join(out, "s5")).strip() == cfg["Config"]["Hostname"], "cp of /../.. left the container's root")
        for s in ("s1", "s2"):
            check(not os.path.exists(os.path.join(out, s)), f"{s}: a planted link leaked the host's file")
        one_line_error(S("cp", os.path.join(host, "in.txt"), "e1:/tmp/drop/x", check=False), "cp in through a planted link", 1)
        S("cp", os.path.join(host, "in.txt"), "e1:/tmp/plant", check=False)
        check(os.listdir(victim) == [], f"cp in wrote on the host through a planted link: {os.listdir(victim)}")
        check(rd(secret) == "host secret\n", "the host's secret changed")

        # --- the container stopped: its rw view (whiteouts, the upper) ---
        S("exec", "e1", "sh", "-c", "rm /data/keep.txt; echo changed > /data/lower.txt; "
          "echo private > /data/private; chown 1000:1000 /data/private; chmod 600 /data/private", check=False)
        S("exec", "e1", "sh", "-c", "kill 1", check=False)  # the init passes it on; sleep exits, and the pid
        # namespace goes with it (this sh too: its status is 0 or 137, whichever comes first)
        procs.remove(p)
        p.wait(timeout=60)
        wait_for("e1 to stop", lambda: not ps_up())
        one_line_error(S("exec", "e1", "true", check=False), "exec into a stopped container", 1)
        S("cp", "e1:/data", os.path.join(out, "stopped"))
        check(sorted(os.listdir(os.path.join(out, "stopped"))) == ["lower.txt", "private", "sub"],
              f"cp out of a stopped container: {sorted(os.listdir(os.path.join(out, 'stopped')))} (keep.txt was deleted)")
        check(rd(os.path.join(out, "stopped/lower.txt")) == "changed\n", "cp out of a stopped container: the upper")
        subuid = not user or any(l.startswith(f"{user}:") for l in open("/etc/subuid"))
        if subuid:  # a file of the container's user 1000, mode 600: read as its root reads it
            priv = os.path.join(out, "stopped/private")
            check(os.path.exists(priv) and rd(priv) == "private\n", "cp out of a stopped container: uid 1000's 0600 file")
            r = subprocess.run(as_user([STRATA, "--root", store, "cp", "e1:/data/private", "-"], user),
                               capture_output=True)
            members = tarfile.open(fileobj=io.BytesIO(r.stdout)).getmembers() if r.returncode == 0 else []
            check([(m.name, m.uid, m.gid) for m in members] == [("private", 1000, 1000)],
                  f"owner of a stopped container's file as cp sees it: {[(m.name, m.uid) for m in members]} {r.stderr!r}")
        one_line_error(S("cp", "e1:/data/keep.txt", os.path.join(out, "gone"), check=False),
                       "cp of a file the stopped container deleted", 1)
        S("cp", os.path.join(host, "in.txt"), "e1:/tmp/in-stopped.txt")
        S("cp", "e1:/tmp/in-stopped.txt", os.path.join(out, "back.txt"))
        check(rd(os.path.join(out, "back.txt")) == "copied in\n", "cp in and out of a stopped container")
        check("A /tmp/in-stopped.txt" in S("diff", "e1").stdout, "strata diff does not show the file copied in")
        one_line_error(S("cp", "e1:/tmp/hostdir/secret.txt", os.path.join(out, "s6"), check=False),
                       "cp through a planted link (stopped)", 1)
        one_line_error(S("cp", os.path.join(host, "in.txt"), "e1:/tmp/drop/x", check=False),
                       "cp in through a planted link (stopped)", 1)
        check(os.listdir(victim) == [], "cp in (stopped) wrote on the host through a planted link")
        with open("/proc/self/mountinfo") as f:
            left = [l for l in f if store in l]
        check(not left, f"mounts left after cp on a stopped container: {left}")

        S("rm", "e1")
        S("rmi", IMG)
        return report(failures, "exec_cp", rootless)
    finally:
        for q in procs:
            q.send_signal(signal.SIGKILL)
            q.wait()
        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
