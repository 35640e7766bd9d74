"""Docker itself as the judge of Docker's layout (python3 stdlib only): a dockerd on temp dirs
(data-root, exec-root, socket, pidfile all under one work dir), a tiny busybox base image for it,
the layer tars of a docker-archive, and a snapshot of a tree that shows any write into it."""
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "container"))
from container_test_lib import run, skip  # noqa: E402

# Debian's docker.io puts dockerd in /usr/sbin, which a normal user's PATH may lack.
DOCKERD = shutil.which("dockerd", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or ""
# The client of the same package (/usr/bin/docker): another `docker` earlier in PATH may speak
# a different API version.
DOCKER = next((c for c in (os.path.join(os.path.dirname(DOCKERD), "docker"), "/usr/bin/docker") if os.path.exists(c)),
              shutil.which("docker") or "")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Steps:
    """Runs named checks and collects every failure, so one run reports all that is broken."""

    def __init__(self):
        self.failures, self.t0 = [], time.monotonic()

    def check(self, name, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure goes in the report
            self.failures.append(f"{name}: {e}")
            log(f"{name}: FAIL\n{e}")
            return False
        log(f"{name}: ok")
        return True

    def finish(self):
        log(f"total {time.monotonic() - self.t0:.1f} s")
        if self.failures:
            print("FAIL:\n  " + "\n  ".join(f.splitlines()[0] for f in self.failures))
            sys.exit(1)
        print("PASS")


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


class Dockerd:
    """One dockerd on `data_root`, every other file of it under `work`. start() skips the test
    (77) when the daemon cannot come up at all; stop() ends it (SIGTERM to the pid in its
    pidfile, so it stops its own containerd too) and waits until it is gone."""

    running = []  # started and not yet stopped: the test's cleanup stops them

    def __init__(self, work, data_root, name):
        self.data_root = data_root
        self.exec_root = os.path.join(work, f"{name}-exec")
        self.pidfile = os.path.join(work, f"{name}.pid")
        self.sock = os.path.join(work, f"{name}.sock")
        self.logfile = os.path.join(work, f"{name}.log")
        self.env = dict(os.environ, DOCKER_BUILDKIT="0", DOCKER_CONFIG=os.path.join(work, f"{name}-client"))
        self.proc = None

    def start(self, first=True):
        with open(self.logfile, "a") as logf:
            self.proc = subprocess.Popen(
                [DOCKERD, "--data-root", self.data_root, "--exec-root", self.exec_root, "--pidfile", self.pidfile,
                 "-H", f"unix://{self.sock}", "--iptables=false", "--ip-masq=false", "--bridge=none",
                 "--storage-driver", "overlay2"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        Dockerd.running.append(self)
        # Ready when the API answers; no deadline but the daemon's own exit.
        while subprocess.run([DOCKER, "-H", f"unix://{self.sock}", "version"], capture_output=True,
                             env=self.env).returncode != 0:
            if self.proc.poll() is not None:
                with open(self.logfile) as f:
                    tail = "".join(f.readlines()[-15:])
                self.proc = None
                Dockerd.running.remove(self)
                if first:
                    skip(f"dockerd cannot start here:\n{tail}")
                raise AssertionError(f"dockerd did not start again on {self.data_root}:\n{tail}")
            time.sleep(0.2)

    def __call__(self, *args, check=True, timeout=300):
        return run(DOCKER, "-H", f"unix://{self.sock}", *args, check=check, env=self.env, timeout=timeout)

    def stop(self):
        if self.proc is None:
            return
        with open(self.pidfile) as f:
            pid = int(f.read().strip())
        os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        Dockerd.running.remove(self)
        # A killed dockerd leaves its containerd behind: end that one too, by its own pidfile.
        cpid = os.path.join(self.exec_root, "containerd", "containerd.pid")
        if os.path.exists(cpid):
            try:
                with open(cpid) as f:
                    os.kill(int(f.read().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass


def busybox_rootfs_tar(path):
    """bin/busybox with a symlink per applet, etc/passwd and group: a base for `docker import`."""
    with tarfile.open(path, "w") as t:
        def add_dir(name):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        for d in ("bin", "etc", "tmp", "root"):
            add_dir(d)
        t.add("/bin/busybox", "bin/busybox")
        for name in run("busybox", "--list").stdout.split():
            if name != "busybox":
                ti = tarfile.TarInfo(f"bin/{name}")
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, "busybox", 0o777
                t.addfile(ti)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")):
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            t.addfile(ti, io.BytesIO(data))


def build_on_busybox(d, work, dockerfile, tag):
    """On the running dockerd `d`: import a busybox base as tbase:1 (the Dockerfile's FROM) and
    build `tag` from `dockerfile` with no network."""
    base = os.path.join(work, "base.tar")
    busybox_rootfs_tar(base)
    d("import", base, "tbase:1")
    ctx = os.path.join(work, "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    d("build", "--network", "none", "-t", tag, ctx)


# An image with what layer tars must carry exactly (a whiteout, an opaque directory, hardlinks,
# a set-uid file) on the busybox base, and a probe whose output shows them.
LAYERED_DOCKERFILE = """FROM tbase:1
RUN mkdir -p /low/keep /opq/old && echo gone > /low/gone.txt && echo keep > /low/keep/k.txt \\
 && echo old > /opq/old/o.txt
RUN rm /low/gone.txt && rm -rf /opq && mkdir -p /opq/new && echo new > /opq/new/n.txt \\
 && echo data > /hl1 && ln /hl1 /hl2 && touch /suid && chmod 4755 /suid
CMD ["/bin/sh"]
"""
LAYERED_PROBE = "ls /opq /low; cat /low/keep/k.txt; [ /hl1 -ef /hl2 ] && echo hardlinked; stat -c '%h %a' /hl1 /suid"


def build_and_save_layered(work):
    """dockerd builds LAYERED_DOCKERFILE as lz:1 on its own root and saves it. Returns (the
    probe's output under dockerd, the image id, the docker-archive's path); dockerd is stopped."""
    d = Dockerd(work, os.path.join(work, "docker-root"), "a")
    log("dockerd: import a busybox base, build lz:1, save it")
    d.start()
    build_on_busybox(d, work, LAYERED_DOCKERFILE, "lz:1")
    want = d("run", "--rm", "--network", "none", "lz:1", "sh", "-c", LAYERED_PROBE).stdout
    image_id = d("inspect", "--format", "{{.Id}}", "lz:1").stdout.strip()
    saved = os.path.join(work, "lz.tar")
    d("save", "-o", saved, "lz:1")
    d.stop()
    return want, image_id, saved


def archive_layers(path):
    """{image id: [sha256 of each layer tar, bottom first]} of a docker-archive."""
    out = {}
    with tarfile.open(path) as t:
        for m in json.load(t.extractfile("manifest.json")):
            cfg = m["Config"]
            image_id = "sha256:" + os.path.basename(cfg).removesuffix(".json")
            out[image_id] = [hashlib.sha256(t.extractfile(layer).read()).hexdigest() for layer in m["Layers"]]
    return out


def tree_state(root):
    """Every path under root with type, mode, owner, size, mtime, ctime and symlink target:
    any file or dir created, removed, written or chmodded changes it (reads do not)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [None] + dirnames + filenames:
            p = dirpath if name is None else os.path.join(dirpath, name)
            st = os.lstat(p)
            ent = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if os.path.islink(p):
                ent += (os.readlink(p),)
            out[os.path.relpath(p, root)] = ent
    return out


def tree_changes(before, after):
    return ([f"new: {p}" for p in sorted(set(after) - set(before))] +
            [f"gone: {p}" for p in sorted(set(before) - set(after))] +
            [f"changed: {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]])


def need_dockerd(tools=("busybox",)):
    """Skips (77) unless running as root with dockerd, docker and `tools` installed."""
    if os.geteuid() != 0:
        skip("needs root (dockerd)")
    if not DOCKERD or not os.path.exists(DOCKER):
        skip("dockerd not installed (scripts/deps.sh installs docker.io)")
    for t in tools:
        if shutil.which(t) is None:
            skip(f"{t} not installed")
