#!/usr/bin/python3
"""strata import, exec and cp against dockerd (Debian's docker.io) doing the same: the same rootfs
tar imported by both has the same diff_id; in a container of it, running under each, the same
exec commands give the same output and exit status (also into a stopped container); the same
cp commands (a file or a directory to a new name, into an existing directory, DIR/., a symlink
with and without -L, a hardlinked pair, copies in with and without -a) leave the same trees on
the host and in the container (types, modes, owners, contents, link targets, which names are
one file), and fail alike (a missing file, a directory onto a file). Label `docker`; skipped
(77) without root or a dockerd that can start."""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker_lib import DOCKER, Dockerd, need_dockerd, Steps, busybox_rootfs_tar, expect, log  # noqa: E402
from container_test_lib import STRATA, run  # noqa: E402

SETUP = ("mkdir -p /d/sub && echo a > /d/a.txt && echo b > /d/sub/b.txt && ln -s a.txt /d/link && "
         "ln /d/a.txt /d/hard && echo f > /f.txt && chmod 0600 /d/sub/b.txt")
EXECS = [  # (flags, argv, stdin)
    ([], ["sh", "-c", "exit 7"], None),
    ([], ["no-such-command"], None),
    ([], ["sh", "-c", "kill -TERM $$"], None),
    (["-e", "A=1", "-w", "/d"], ["sh", "-c", "echo $A $HOME; pwd; id -u"], None),
    ([], ["cat"], "to stdin\n"),
    (["-i"], ["cat"], "to stdin\n"),
]
CP_OUT = [  # (flags, container path, host name, host dir made first)
    ([], "/f.txt", "new.txt", None),
    ([], "/d", "newdir", None),
    ([], "/d", "exist", "exist"),
    ([], "/d/.", "exist2", "exist2"),
    ([], "/d/link", "link", None),
    (["-L"], "/d/link", "linkL", None),
    ([], "/nope", "nope", None),
    ([], "/d", "new.txt", None),  # a directory onto the file copied first: refused
]
CP_IN = [  # (flags, host path under hin/, container path)
    ([], "h.txt", "/tmp/h.txt"),
    (["-a"], "h.txt", "/tmp/ha.txt"),
    ([], "hdir", "/tmp/hdir"),
    ([], "hdir/.", "/tmp/contents"),
]
LIST = "cd /tmp && find . | sort | while read p; do stat -c '%n %u %g %a %F' \"$p\"; done; cat /tmp/hdir/x.txt"


def tree(root):
    """path -> (type, mode, uid, gid, sha256 or link target, the first name of the same inode)."""
    out, first = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    what = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            else:
                what = None
            key = (st.st_dev, st.st_ino)
            same = first.setdefault(key, rel) if not stat.S_ISDIR(st.st_mode) else rel
            out[rel] = (stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, what,
                        same if same != rel else None)
    return out


def host_input(base):
    os.makedirs(os.path.join(base, "hdir/deep"))
    for name, text, mode in (("h.txt", "host\n", 0o640), ("hdir/x.txt", "x\n", 0o644), ("hdir/deep/y.txt", "y\n", 0o600)):
        p = os.path.join(base, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), 1234, 2345)


def exercise(tool, cname, work):
    """Runs EXECS, CP_OUT and CP_IN with `tool` (docker or strata); returns what they gave."""
    got = {"exec": [], "cp_out": [], "cp_in": [], "tree_out": None, "tree_in": None}
    tool("exec", cname, "sh", "-c", SETUP)
    for flags, argv, stdin in EXECS:
        r = tool("exec", *flags, cname, *argv, check=False, input=stdin)
        got["exec"].append((r.returncode, r.stdout))
    out = os.path.join(work, "out")
    os.makedirs(out)
    for flags, src, dest, made in CP_OUT:
        if made:
            os.makedirs(os.path.join(out, made), exist_ok=True)
        r = tool("cp", *flags, f"{cname}:{src}", os.path.join(out, dest), check=False)
        got["cp_out"].append(r.returncode == 0)
    got["tree_out"] = tree(out)
    hin = os.path.join(work, "hin")
    host_input(hin)
    for flags, src, dest in CP_IN:
        r = tool("cp", *flags, os.path.join(hin, src), f"{cname}:{dest}", check=False)
        got["cp_in"].append(r.returncode == 0)
    got["tree_in"] = tool("exec", cname, "sh", "-c", LIST, check=False).stdout
    return got


def main():
    need_dockerd()
    work = tempfile.mkdtemp(prefix="strata-execcp-docker-", dir="/var/tmp")
    d = None
    try:
        s = Steps()
        bb = os.path.join(work, "bb.tar")
        busybox_rootfs_tar(bb)
        d = Dockerd(work, os.path.join(work, "droot"), "d")
        d.start()
        d("import", bb, "bb:1")
        docker_diff = json.loads(d("inspect", "bb:1").stdout)[0]["RootFS"]["Layers"]
        d("run", "-d", "--network", "none", "--name", "dc", "bb:1", "sleep", "1000")

        def docker(*args, check=True, input=None):
            return subprocess.run([DOCKER, "-H", f"unix://{d.sock}", *args], capture_output=True, text=True,
                                  env=d.env, input=input, check=check, timeout=300)

        want = exercise(docker, "dc", os.path.join(work, "docker"))
        docker("stop", "-t", "1", "dc")
        want["stopped"] = docker("exec", "dc", "true", check=False).returncode
        want["unknown"] = docker("exec", "nope", "true", check=False).returncode
        want["cp_stopped"] = docker("cp", "dc:/tmp/h.txt", os.path.join(work, "docker", "stopped.txt"),
                                    check=False).returncode
        d.stop()
        log("dockerd stopped; strata on its own store")

        sroot = os.path.join(work, "sroot")

        def strata(*args, check=True, input=None):
            return subprocess.run([STRATA, "--root", sroot, *args], capture_output=True, text=True, input=input,
                                  check=check, timeout=300)

        strata("import", "-q", bb, "bb:1")
        s.check("import: the diff_id docker gave the same tar",
                lambda: expect(json.loads(strata("inspect", "bb:1").stdout)[0]["Config"]["rootfs"]["diff_ids"] ==
                               docker_diff, "diff_ids differ"))
        strata("run", "-d", "--name", "sc", "bb:1", "sleep", "1000")
        got = exercise(strata, "sc", os.path.join(work, "strata"))
        for i, (w, g) in enumerate(zip(want["exec"], got["exec"])):
            if w[1].startswith("OCI runtime"):  # docker's CLI prints runc's error on stdout: the status only
                w, g = w[0], g[0]
            s.check(f"exec {EXECS[i][0]} {EXECS[i][1]}", lambda w=w, g=g: expect(w == g, f"docker {w}, strata {g}"))
        for i, (w, g) in enumerate(zip(want["cp_out"], got["cp_out"])):
            s.check(f"cp out {CP_OUT[i]} succeeds or fails as docker's",
                    lambda w=w, g=g: expect(w == g, f"docker ok={w}, strata ok={g}"))
        s.check("cp out: the same host tree", lambda: expect(
            want["tree_out"] == got["tree_out"],
            "\n".join(f"{k}: docker {want['tree_out'].get(k)} strata {got['tree_out'].get(k)}"
                      for k in sorted(set(want["tree_out"]) | set(got["tree_out"]))
                      if want["tree_out"].get(k) != got["tree_out"].get(k))))
        for i, (w, g) in enumerate(zip(want["cp_in"], got["cp_in"])):
            s.check(f"cp in {CP_IN[i]} succeeds as docker's", lambda w=w, g=g: expect(w == g, f"docker {w}, strata {g}"))
        s.check("cp in: the same tree in the container (owners, modes)",
                lambda: expect(want["tree_in"] == got["tree_in"], f"docker:\n{want['tree_in']}\nstrata:\n{got['tree_in']}"))
        strata("stop", "-t", "1", "sc")
        s.check("exec into a stopped container: docker's exit status",
                lambda: expect(strata("exec", "sc", "true", check=False).returncode == want["stopped"],
                               f"docker {want['stopped']}"))
        s.check("exec into an unknown container: docker's exit status",
                lambda: expect(strata("exec", "nope", "true", check=False).returncode == want["unknown"],
                               f"docker {want['unknown']}"))
        s.check("cp out of a stopped container works as docker's",
                lambda: expect(strata("cp", "sc:/tmp/h.txt", os.path.join(work, "strata", "stopped.txt"),
                                      check=False).returncode == want["cp_stopped"], f"docker {want['cp_stopped']}"))
        strata("rm", "sc")
        return s.finish()
    finally:
        for dd in list(Dockerd.running):
            dd.stop()
        run("sh", "-c", f"grep -o ' {work}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l", check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
