"""Helpers for the container tests (python3 stdlib only): a busybox image built with umoci,
strata invocations, rootfs listings, and a check that a store is left clean."""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

SKIP = 77
STRATA = os.environ.get("STRATA_BIN", "strata")
TEST_USER = "strata-test"


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def need_env(rootless=False):
    if os.geteuid() != 0:
        skip("needs root (sets up the test user and /dev/fuse)")
    for t in ("umoci", "skopeo", "fusermount3", "busybox"):
        if shutil.which(t) is None:
            skip(f"{t} not installed")
    if not os.path.exists("/dev/fuse"):
        skip("no /dev/fuse")
    if not os.path.exists(os.environ.get("STRATA_FS", "")):
        skip("strata-fs not built")
    if rootless:
        if shutil.which("runuser") is None:
            skip("runuser not installed")
        subprocess.run(["useradd", "-m", TEST_USER], capture_output=True)
        os.chmod("/dev/fuse", 0o666)


def as_user(argv, user):
    """argv run as `user` through runuser (keeping STRATA_FS), or unchanged when user is None."""
    if user:
        return ["runuser", "-u", user, "--", "env", f"STRATA_FS={os.environ.get('STRATA_FS', '')}"] + argv
    return argv


def start_test(prefix):
    """The start of a test that runs as root or, given --rootless, as TEST_USER: need_env, and
    a work dir (mkdtemp with `prefix`, mode 0755). Returns (rootless, user or None, work)."""
    rootless = "--rootless" in sys.argv
    need_env(rootless)
    user = TEST_USER if rootless else None
    work = tempfile.mkdtemp(prefix=prefix)
    os.chmod(work, 0o755)
    return rootless, user, work


def report(failures, name, rootless):
    """Prints each failure, or PASS: name; returns the exit status (1 on any failure)."""
    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    print(f"PASS: {name}" + (" (rootless)" if rootless else ""))
    return 0


def run(*args, check=True, user=None, **kw):
    args = as_user([str(a) for a in args], user)
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return r


class Strata:
    def __init__(self, root, user=None):
        self.root, self.user = root, user

    def __call__(self, *args, check=True, **kw):
        return run(STRATA, "--root", self.root, *args, check=check, user=self.user, timeout=120, **kw)


def build_busybox_image(layout, tag="1"):
    """Two layers: busybox-static with `busybox --install -s` style links, passwd/group, /tmp;
    then /data with files a container will change and delete. Cmd /bin/sh."""
    bundle = layout + ".bundle"
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", f"{layout}:{tag}")
    run("umoci", "unpack", "--image", f"{layout}:{tag}", bundle)
    r = os.path.join(bundle, "rootfs")
    for d in ("bin", "etc", "tmp", "root", "home/user"):
        os.makedirs(os.path.join(r, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(r, "bin/busybox"))
    for name in run("busybox", "--list").stdout.split():
        if name != "busybox":
            os.symlink("busybox", os.path.join(r, "bin", name))
    with open(os.path.join(r, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    with open(os.path.join(r, "etc/group"), "w") as f:
        f.write("root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n")
    os.chmod(os.path.join(r, "tmp"), 0o1777)
    os.chown(os.path.join(r, "home/user"), 1000, 1000)
    run("umoci", "repack", "--image", f"{layout}:{tag}", bundle)
    shutil.rmtree(bundle)
    run("umoci", "unpack", "--image", f"{layout}:{tag}", bundle)
    r = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(r, "data/sub"))
    for name, text in (("data/lower.txt", "from the lower layer\n"), ("data/keep.txt", "keep\n"),
                       ("data/sub/deep.txt", "deep\n")):
        with open(os.path.join(r, name), "w") as f:
            f.write(text)
    run("umoci", "repack", "--image", f"{layout}:{tag}", bundle)
    shutil.rmtree(bundle)
    run("umoci", "config", "--image", f"{layout}:{tag}", "--config.cmd", "/bin/sh",
        "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin")


def load_busybox(S, work, user, tag):
    """Builds the busybox image in WORK/img, hands WORK to the test user (rootless) and loads
    the image into S's store as TAG."""
    layout = os.path.join(work, "img")
    build_busybox_image(layout)
    if user:
        run("chown", "-R", user, work)
    S("load", "-q", "-i", layout, "--tag", tag)


def listing(root, owners=True):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            ent = [stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode))]
            if owners:
                ent += [st.st_uid, st.st_gid]
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    ent += [st.st_size, hashlib.sha256(f.read()).hexdigest(), int(st.st_mtime)]
            elif stat.S_ISLNK(st.st_mode):
                ent.append(os.readlink(p))
            out[os.path.relpath(p, root)] = ent
    return out


def diff_listings(a, b):
    return [f"{k}: {a.get(k)} != {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def assert_clean_store(root):
    """After rm and rmi of everything: no layer, link, mount, container or staging left."""
    left = []
    ov = os.path.join(root, "overlay2")
    for n in os.listdir(ov):
        if n not in ("l", ".staging"):
            left.append(f"overlay2/{n}")
    for sub in ("overlay2/l", "overlay2/.staging", "image/overlay2/layerdb/sha256", "image/overlay2/layerdb/tmp",
                "image/overlay2/layerdb/mounts", "image/overlay2/imagedb/content/sha256", "containers"):
        p = os.path.join(root, sub)
        if os.path.isdir(p):
            left += [f"{sub}/{n}" for n in os.listdir(p)]
    assert not left, "left behind:\n" + "\n".join(left)
    with open("/proc/self/mountinfo") as f:
        mounts = [l for l in f if root in l]
    assert not mounts, "mounts left:\n" + "".join(mounts)


def is_mount_point(path):
    """Listed in /proc/self/mountinfo (os.path.ismount cannot stat another user's FUSE mount)."""
    with open("/proc/self/mountinfo") as f:
        return any(l.split()[4] == path for l in f)


def unmount_all_under(path):
    """Teardown: unmount anything still mounted below path (innermost first)."""
    with open("/proc/self/mountinfo") as f:
        points = [l.split()[4] for l in f]
    for p in sorted((p for p in points if p.startswith(path)), key=len, reverse=True):
        subprocess.run(["fusermount3", "-u", "-z", p], capture_output=True)
        subprocess.run(["umount", "-l", p], capture_output=True)


def find_daemon(mountpoint):
    """pid of the strata-fs serving mountpoint."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"strata-fs") and mountpoint.encode() in argv:
            return int(pid)
    return None


def build_probe_image(layout, work):
    """The busybox image plus /bin/probe (tests/container/probe.c, built static with gcc)."""
    if shutil.which("gcc") is None:
        skip("gcc not installed (builds the static probe program)")
    prog = os.path.join(work, "probe")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.c")
    r = subprocess.run(["gcc", "-static", "-O1", "-o", prog, src], capture_output=True, text=True)
    if r.returncode != 0:
        skip(f"gcc -static failed (no static libc?): {r.stderr.strip()}")
    build_busybox_image(layout)
    bundle = layout + ".bundle"
    run("umoci", "unpack", "--image", f"{layout}:1", bundle)
    dst = os.path.join(bundle, "rootfs", "bin", "probe")
    shutil.copy(prog, dst)
    os.chmod(dst, 0o755)
    run("umoci", "repack", "--image", f"{layout}:1", bundle)
    shutil.rmtree(bundle)


def container_state(store, ref):
    """config.v2.json of the container named or id-prefixed `ref` (read as root)."""
    base = os.path.join(store, "containers")
    for cid in os.listdir(base):
        with open(os.path.join(base, cid, "config.v2.json")) as f:
            cfg = json.load(f)
        if cid.startswith(ref) or cfg.get("Name") == "/" + ref:
            return cid, cfg
    raise AssertionError(f"no container {ref} in {base}")


def proc_stat(pid):
    """(state, ppid, start time) of a process from /proc/PID/stat, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            line = f.read()
    except OSError:
        return None
    fields = line[line.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def wait_for(what, cond, limit=60):
    """Polls cond() until it is true; fails naming `what` after `limit` seconds (a generous
    bound for a loaded machine, not a measurement)."""
    import time
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def lazy_and_unpacked(work, user, layout, img, out_img, changes, show, store_problems, check):
    """Loads the OCI layout as `img` into two stores under WORK (handed to `user` first when
    rootless): "lazy" with load --lazy, "unpacked" with load. Then runs `changes && show` in a
    container named c over each, `diff`, `commit` to `out_img`, `show` in the committed image
    and `rm`. Rootless, `store_problems(store_dir, uid)` lists what the store's user could not
    use after the run (checked). Returns (stores, S, {store: run}, {store: diff}, {store:
    committed run}), each result (exit status, output, stderr), the diff's lines sorted."""
    stores = {"lazy": os.path.join(work, "lazy"), "unpacked": os.path.join(work, "unpacked")}
    S = {k: Strata(v, user) for k, v in stores.items()}
    if user:
        run("chown", "-R", user, work)
    S["lazy"]("load", "-q", "--lazy", "-i", layout, "--tag", img)
    S["unpacked"]("load", "-q", "-i", layout, "--tag", img)
    out, diff, committed = {}, {}, {}
    for k in stores:
        r = S[k]("run", "--name", "c", img, "sh", "-c", changes + " && " + show, check=False)
        out[k] = (r.returncode, r.stdout, r.stderr)
        if user:
            bad = store_problems(stores[k], int(run("id", "-u", user).stdout))
            check(not bad, f"{k}: files of the rootless store its user cannot use:\n  " + "\n  ".join(bad[:10]))
        r = S[k]("diff", "c", check=False)
        diff[k] = (r.returncode, sorted(r.stdout.splitlines()), r.stderr)
        r = S[k]("commit", "-q", "c", out_img, check=False)
        check(r.returncode == 0, f"{k}: commit: {r.stderr}")
        r = S[k]("run", "--rm", out_img, "sh", "-c", show, check=False)
        committed[k] = (r.returncode, r.stdout, r.stderr)
        r = S[k]("rm", "c", check=False)
        check(r.returncode == 0, f"{k}: rm: {r.stderr}")
    check(out["lazy"] == out["unpacked"], f"run over lazy layers {out['lazy']} != unpacked {out['unpacked']}")
    check(diff["lazy"] == diff["unpacked"], f"diff over lazy layers {diff['lazy']} != unpacked {diff['unpacked']}")
    return stores, S, out, diff, committed


def rmi_leaves_clean_stores(S, stores, images, failures):
    """rmi of `images` in each store, then nothing of them may be left (assert_clean_store)."""
    for k in stores:
        r = S[k]("rmi", *images, check=False)
        try:
            assert_clean_store(stores[k])
        except AssertionError as e:
            failures.append(f"{k}: rmi: {r.stderr.strip()}; {e}")

