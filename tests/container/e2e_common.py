"""The container scenario, run as root (e2e_root.py) or as an unprivileged user
(e2e_rootless.py): mount an image, run commands, change files, diff, commit, run the new
image, save in every format (checked by skopeo and umoci), rm and rmi to a clean store."""
import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import *  # noqa: E402,F403

HERE = os.path.dirname(os.path.abspath(__file__))


def listing_as(path, user, owners):
    if not user:
        return listing(path, owners)
    code = ("import json,sys; sys.path.insert(0, sys.argv[1]); from container_test_lib import listing; "
            "print(json.dumps(listing(sys.argv[2], sys.argv[3] == '1')))")
    out = run("/usr/bin/python3", "-c", code, HERE, path, "1" if owners else "0", user=user).stdout
    return {k: v for k, v in json.loads(out).items()}


def normalize(lst):
    return {k: list(v) for k, v in lst.items()}


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def scenario(user):
    work = tempfile.mkdtemp(prefix="strata-ct-")
    os.chmod(work, 0o755)
    store = os.path.join(work, "store")
    owners = user is None
    try:
        layout = os.path.join(work, "img")
        build_busybox_image(layout)
        ref = os.path.join(work, "ref")
        run("umoci", "unpack", "--image", f"{layout}:1", ref)
        if user:
            run("chown", "-R", user, work)
        S = Strata(store, user)
        S("load", "-q", "-i", layout, "--tag", "t/bb:1")

        # The image read-only: the same tree umoci unpacks.
        mnt = S("mount", "t/bb:1").stdout.strip()
        d = diff_listings(normalize(listing(os.path.join(ref, "rootfs"), owners)), listing_as(mnt, user, owners))
        S("umount", "t/bb:1")
        expect(not d, "strata mount differs from umoci unpack:\n" + "\n".join(d[:20]))
        expect(S("mount", "t/bb:1", os.path.join(work, "m2")).stdout.strip() == os.path.join(work, "m2"), "mount DIR")
        S("umount", os.path.join(work, "m2"))
        # umount takes down only strata's own mounts: a tmpfs (as root) or any other mount point
        # (/proc, as anyone) is refused with one line and stays mounted.
        other = os.path.join(work, "not-ours")
        os.makedirs(other)
        if user is None:
            run("mount", "-t", "tmpfs", "none", other)
        target = other if user is None else "/proc"
        try:
            r = S("umount", target, check=False)
            expect(r.returncode != 0 and "not a strata mount" in r.stderr,
                   f"strata umount {target}: exit {r.returncode}, {r.stderr!r}")
            expect(os.path.ismount(target), f"strata umount took down {target}")
        finally:
            if user is None:
                subprocess.run(["umount", other], capture_output=True)

        # Commands, exit codes, environment, volumes, users.
        r = S("run", "--rm", "t/bb:1", "echo", "hello world")
        expect(r.stdout == "hello world\n", f"echo printed {r.stdout!r}")
        scripts = os.path.join(work, "scripts")
        os.makedirs(scripts)
        with open(os.path.join(scripts, "s.sh"), "w") as f:
            f.write('echo "script $1"\nid -u\nhostname\ntest -c /dev/null && echo devnull\n'
                    'touch /scripts/x 2>/dev/null && echo writable || echo readonly\n'
                    'echo "$FOO $(pwd)"\ntest -d /proc/self && echo proc\nexit 7\n')
        if user:
            run("chown", "-R", user, scripts)
        r = S("run", "--rm", "--hostname", "box", "-e", "FOO=bar", "-w", "/tmp", "-v", f"{scripts}:/scripts:ro",
              "t/bb:1", "sh", "/scripts/s.sh", "arg", check=False)
        expect(r.returncode == 7, f"script exit {r.returncode}: {r.stderr}")
        expect(r.stdout == "script arg\n0\nbox\ndevnull\nreadonly\nbar /tmp\nproc\n", f"script printed {r.stdout!r}")
        r = S("run", "--rm", "t/bb:1", "sh", "-c", "exit 0")
        r = S("run", "--rm", "t/bb:1", "false", check=False)
        expect(r.returncode == 1, f"false exited {r.returncode}")
        r = S("run", "--rm", "t/bb:1", "no-such-command", check=False)
        expect(r.returncode == 127, f"missing command exited {r.returncode}")
        r = S("run", "--rm", "-u", "user", "t/bb:1", "id", check=False)
        if user and "not mapped" in r.stderr:
            print("note: no /etc/subuid range: -u user not checked rootless")
        else:
            expect(r.stdout.startswith("uid=1000(user) gid=1000(user)"), f"-u user: {r.stdout!r} {r.stderr}")

        # Changes: write, change, delete (one file and one dir from the lower layer).
        S("run", "--name", "c1", "t/bb:1", "sh", "-c",
          "echo new > /data/new.txt && echo more >> /data/keep.txt && rm /data/lower.txt && rm -r /data/sub"
          " && mkdir /newdir && touch /newdir/f")
        got = S("diff", "c1").stdout.splitlines()
        want = ["C /data", "C /data/keep.txt", "D /data/lower.txt", "A /data/new.txt", "D /data/sub", "A /newdir",
                "A /newdir/f"]
        expect(got == want, f"diff: {got}")
        ps = json.loads(S("ps", "-a", "--format", "json").stdout)
        expect([c["Names"] for c in ps] == ["c1"] and ps[0]["Status"] == "Exited (0)", f"ps: {ps}")
        expect(json.loads(S("ps", "--format", "json").stdout) == [], "ps without -a lists stopped containers")

        # The rw view on the host, and a stale mount (daemon killed) detected and remounted.
        p = S("container", "mount", "c1").stdout.strip()
        cat = run("cat", os.path.join(p, "data/new.txt"), user=user).stdout
        expect(cat == "new\n", f"container mount shows {cat!r}")
        pid = find_daemon(p)
        expect(pid, "no strata-fs daemon found for the container mount")
        os.kill(pid, signal.SIGKILL)
        while os.path.exists(f"/proc/{pid}"):  # wait for it to be gone (and reaped)
            time.sleep(0.05)
        r = S("container", "mount", "c1")
        expect("stale" in r.stderr, f"stale mount not reported: {r.stderr!r}")
        cat = run("cat", os.path.join(p, "data/keep.txt"), user=user).stdout
        expect(cat == "keep\nmore\n", f"remounted container shows {cat!r}")
        S("container", "umount", "c1")

        r = S("rmi", "t/bb:1", check=False)
        expect(r.returncode != 0 and "used by container c1" in r.stderr, f"rmi of a used image: {r.stderr}")

        # Commit and run the new image.
        S("commit", "c1", "t/bb:2")
        r = S("run", "--rm", "t/bb:2", "sh", "-c",
              "cat /data/new.txt /data/keep.txt; for f in /data/lower.txt /data/sub /newdir/f; do"
              " test -e $f && echo $f present || echo $f gone; done")
        expect(r.stdout == "new\nkeep\nmore\n/data/lower.txt gone\n/data/sub gone\n/newdir/f present\n",
               f"committed image: {r.stdout!r}")
        info = json.loads(S("inspect", "t/bb:2").stdout)[0]
        diff_ids = [l["diff_id"] for l in info["Layers"]]
        expect(len(diff_ids) == 3, f"committed image has {len(diff_ids)} layers")

        # Save in every format: skopeo and umoci read them, layers are the loaded ones.
        view = S("mount", "t/bb:2").stdout.strip()
        want_tree = listing_as(view, user, owners)
        S("umount", "t/bb:2")
        outs = os.path.join(work, "out")
        run("mkdir", outs, user=user)
        S("save", "t/bb:2", "-o", f"{outs}/d.tar")
        S("save", "t/bb:2", "-o", f"{outs}/o.tar", "--format", "oci-archive")
        S("save", "t/bb:2", "-o", f"{outs}/odir", "--format", "oci-dir")
        for src in (f"docker-archive:{outs}/d.tar", f"oci-archive:{outs}/o.tar", f"oci:{outs}/odir:2"):
            j = json.loads(run("skopeo", "inspect", src, user=user).stdout)
            expect(j["Layers"] == diff_ids, f"{src}: layers {j['Layers']} != {diff_ids}")
        for i, src in enumerate((f"docker-archive:{outs}/d.tar", f"oci-archive:{outs}/o.tar")):
            run("skopeo", "copy", src, f"oci:{outs}/copy{i}:x", user=user)
        for img in (f"{outs}/odir:2", f"{outs}/copy0:x", f"{outs}/copy1:x"):
            b = os.path.join(outs, "bundle-" + os.path.basename(img).replace(":", "-"))
            run("umoci", "unpack", *(["--rootless"] if user else []), "--image", img, b, user=user)
            d = diff_listings(want_tree, listing_as(os.path.join(b, "rootfs"), user, owners))
            expect(not d, f"umoci unpack {img} differs from the strata-fs view:\n" + "\n".join(d[:20]))

        # A lower directory renamed, written through its new name and given a hardlink to a file
        # outside it: diff, commit and the committed image see one tree, links kept.
        S("run", "--name", "c3", "t/bb:1", "sh", "-c",
          "mv /data/sub /data/moved && echo x >> /data/moved/deep.txt && ln /data/keep.txt /data/moved/hl"
          " && echo y >> /data/keep.txt")
        got = set(S("diff", "c3").stdout.splitlines())
        want = {"C /data", "C /data/keep.txt", "A /data/moved", "A /data/moved/deep.txt", "A /data/moved/hl",
                "D /data/sub"}
        expect(got == want, f"diff after a directory rename: {sorted(got)}")
        S("commit", "c3", "t/bb:3")
        r = S("run", "--rm", "t/bb:3", "sh", "-c",
              "cat /data/moved/deep.txt /data/moved/hl; test -e /data/sub && echo sub present;"
              " stat -c '%h %i' /data/keep.txt /data/moved/hl")
        lines = r.stdout.splitlines()
        expect(lines[:4] == ["deep", "x", "keep", "y"], f"committed renamed dir: {r.stdout!r}")
        links = [l.split() for l in lines[4:]]
        expect(len(links) == 2 and links[0] == links[1] and links[0][0] == "2",
               f"hardlink after commit (nlink inode per name): {links}")
        S("rm", "c3")
        S("rmi", "t/bb:3")

        # rm and rmi leave nothing behind.
        S("create", "--name", "c2", "t/bb:2")
        S("container", "mount", "c2")
        S("rm", "c1", "c2")
        # A mounted image is in use: rmi refuses it and leaves it mounted; rmi -f unmounts it.
        m3 = os.path.join(work, "m3")
        S("mount", "t/bb:2", m3)
        r = S("rmi", "t/bb:2", check=False)
        expect(r.returncode != 0 and f"is mounted at {m3}" in r.stderr, f"rmi of a mounted image: {r.stderr!r}")
        expect(is_mount_point(m3) and "t/bb" in S("images").stdout, "the refused rmi changed something")
        S("rmi", "-f", "t/bb:2")
        expect(not is_mount_point(m3), "rmi -f left the image mounted")
        S("rmi", "t/bb:1")
        S("verify")
        assert_clean_store(store)
        print("PASS")
    finally:
        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)
