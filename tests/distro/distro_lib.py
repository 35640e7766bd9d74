"""A real distribution for the `distro` tests (python3 stdlib only): a Debian 12 minbase rootfs
built by mmdebstrap from the apt mirror this machine is configured with (cached under
/var/cache/strata-tests), made into a docker-archive, and the workloads run in it: apt-get
update and install, python3, bash heredocs and python temp files with TMPDIR on the overlay.

The mirror is read from the apt configuration, never written here. Skips (77) only when the
mirror cannot be reached or a tool is missing; every other problem is a failure."""
import fcntl
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "container"))
from container_test_lib import TEST_USER, run, skip, unmount_all_under  # noqa: E402,F401

SUITE = "bookworm"
CACHE_DIR = os.environ.get("STRATA_TEST_CACHE", "/var/cache/strata-tests")
# Bump when the mmdebstrap options change: the cache key changes with it.
ROOTFS_RECIPE = ["--variant=minbase", "--skip=output/dev"]
APT_TIMEOUT = 600  # seconds for one container running apt-get update + install


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Steps:
    """Runs named checks, times them, and collects every failure (a later step that needs an
    earlier one is recorded as not run), so one run reports everything that is broken."""

    def __init__(self):
        self.failures, self.t0 = [], time.monotonic()

    def check(self, name, fn):
        log(f"{name} ...")
        t = time.monotonic()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure goes in the report
            self.failures.append(f"{name}: {e}")
            log(f"{name}: FAIL ({time.monotonic() - t:.1f} s)\n{e}")
            return False
        log(f"{name}: ok ({time.monotonic() - t:.1f} s)")
        return True

    def not_run(self, name, because):
        self.failures.append(f"{name}: not run ({because} failed)")
        log(f"{name}: not run ({because} failed)")

    def finish(self):
        log(f"total {time.monotonic() - self.t0:.1f} s")
        if self.failures:
            print("FAIL:\n  " + "\n  ".join(f.splitlines()[0] for f in self.failures))
            sys.exit(1)
        print("PASS")


# --- the mirror ---------------------------------------------------------------------------------

def _deb822_mirrors(text):
    for stanza in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split():
            yield from fields.get("uris", "").split()


def _one_line_mirrors(text):
    for line in text.splitlines():
        line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] == "deb" and line[2] == SUITE:
            yield line[1]


def apt_mirror():
    """The first http(s) URI this machine's apt configuration uses for bookworm."""
    found = []
    d = "/etc/apt/sources.list.d"
    files = ["/etc/apt/sources.list"] + sorted(os.path.join(d, f) for f in os.listdir(d)) if os.path.isdir(d) \
        else ["/etc/apt/sources.list"]
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            found += list(_deb822_mirrors(text))
        elif path.endswith(".list"):
            found += list(_one_line_mirrors(text))
    for uri in found:
        if uri.startswith(("http://", "https://")):
            return uri.rstrip("/")
    skip(f"no http(s) apt mirror for {SUITE} in /etc/apt/sources.list or /etc/apt/sources.list.d")


def need_mirror(mirror):
    """Skip unless the mirror answers within a few seconds."""
    url = f"{mirror}/dists/{SUITE}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5) as r:
            if r.status != 200:
                skip(f"apt mirror answers {r.status} for {url}")
    except OSError as e:
        skip(f"apt mirror unreachable ({url}: {e})")


def need_tools(*tools):
    for t in tools:
        if shutil.which(t) is None and not os.path.exists(os.path.join("/usr/sbin", t)):
            skip(f"{t} not installed")


# --- the rootfs tarball, cached -----------------------------------------------------------------

def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _rootfs_ok(tar_path):
    """A minbase rootfs that apt and bash can run in (reads the whole tar: catches truncation)."""
    want = {"usr/bin/apt-get", "usr/bin/bash", "etc/os-release", "usr/lib/os-release", "etc/apt/sources.list"}
    with tarfile.open(tar_path) as t:
        names = {m.name.lstrip("./").rstrip("/") for m in t}
    missing = want - names
    if missing:
        raise ValueError(f"{tar_path} lacks {sorted(missing)}")


def debian_rootfs(mirror):
    """Path and sha256 of the cached minbase tarball for this mirror, built when it is missing
    or does not match its recorded digest. Concurrent tests wait for one build (flock)."""
    os.makedirs(CACHE_DIR, exist_ok=True)
    key = hashlib.sha256(json.dumps([mirror, SUITE, ROOTFS_RECIPE]).encode()).hexdigest()[:12]
    base = f"debian-{SUITE}-minbase-{key}"
    tar_path = os.path.join(CACHE_DIR, base + ".tar")
    meta_path = tar_path + ".json"
    with open(os.path.join(CACHE_DIR, f"debian-{SUITE}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            if os.path.getsize(tar_path) == meta["size"] and _sha256_file(tar_path) == meta["sha256"]:
                log(f"rootfs: cached {tar_path}")
                return tar_path, meta["sha256"]
            log(f"rootfs: {tar_path} does not match {meta_path}: rebuilding")
        except (OSError, ValueError, KeyError):
            pass
        for n in os.listdir(CACHE_DIR):  # older keys and partial builds
            if n.startswith(f"debian-{SUITE}-minbase-"):
                os.unlink(os.path.join(CACHE_DIR, n))
        partial = os.path.join(CACHE_DIR, base + ".partial.tar")
        log(f"rootfs: mmdebstrap {' '.join(ROOTFS_RECIPE)} {SUITE} (about a minute)")
        t = time.monotonic()
        r = subprocess.run(["mmdebstrap", "--quiet", *ROOTFS_RECIPE, SUITE, partial, mirror],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            if os.path.exists(partial):
                os.unlink(partial)
            raise AssertionError(f"mmdebstrap failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        _rootfs_ok(partial)
        digest = _sha256_file(partial)
        os.rename(partial, tar_path)
        with open(meta_path + ".tmp", "w") as f:
            json.dump({"sha256": digest, "size": os.path.getsize(tar_path), "mirror": mirror,
                       "recipe": ROOTFS_RECIPE, "built": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
        os.rename(meta_path + ".tmp", meta_path)
        log(f"rootfs: built in {time.monotonic() - t:.0f} s")
        return tar_path, digest


def go_arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}.get(m, m)


def docker_archive(rootfs_tar, diff_id, out, tag):
    """A docker-archive (manifest.json, config, one uncompressed layer: the rootfs tar as is)."""
    config = {
        "architecture": go_arch(), "os": "linux", "created": "2023-06-10T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["bash"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": "2023-06-10T00:00:00Z", "created_by": f"mmdebstrap {' '.join(ROOTFS_RECIPE)} {SUITE}"}],
    }
    cfg = json.dumps(config, separators=(",", ":")).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [tag], "Layers": [f"{diff_id}/layer.tar"]}]).encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        def add(name, data=None, path=None):
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.mode = 0, 0o644
            if path:
                ti.size = os.path.getsize(path)
                with open(path, "rb") as f:
                    t.addfile(ti, f)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo(diff_id)
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        t.addfile(ti)
        add(f"{diff_id}/layer.tar", path=rootfs_tar)
        add(cfg_name, cfg)
        add("manifest.json", manifest)


def prepare_image(work, tag):
    """Mirror check, cached rootfs, and a docker-archive of it in work: returns its path."""
    mirror = apt_mirror()
    need_mirror(mirror)
    rootfs, digest = debian_rootfs(mirror)
    out = os.path.join(work, "debian.tar")
    docker_archive(rootfs, digest, out, tag)
    os.chmod(out, 0o644)
    return out


# --- podman -------------------------------------------------------------------------------------

class Podman:
    """A root podman of its own: containers.conf, storage.conf, --root and --runroot under `dir`,
    overlay storage driver with `mount_program` (strata-fs, fuse-overlayfs), or kernel overlayfs
    when it is None; `mountopt` adds mount options (containers/storage passes them to the mount
    program too). podman here needs runc and explicit ulimits (crun refuses this machine's
    cgroups; the hard nofile limit is 20000). Used by the distro test and bench/podman_dpkg.py."""

    def __init__(self, dir, mount_program=None, mountopt=None):
        os.makedirs(dir, exist_ok=True)
        self.dir = dir
        conf = os.path.join(dir, "containers.conf")
        storage_conf = os.path.join(dir, "storage.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n'
                    '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    f'tmp_dir = "{dir}/tmp"\n')
        program = (f'mount_program = "{mount_program}"\n' if mount_program else "") + \
            (f'mountopt = "{mountopt}"\n' if mountopt else "")
        with open(storage_conf, "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{dir}/root"\nrunroot = "{dir}/runroot"\n'
                    + (f"[storage.options.overlay]\n{program}" if program else ""))
        self.env = dict(os.environ, CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage_conf)
        self.cmd = ["podman", "--root", f"{dir}/root", "--runroot", f"{dir}/runroot", "--storage-driver", "overlay"]
        if mount_program:
            self.cmd += ["--storage-opt", f"overlay.mount_program={mount_program}"]
        if mountopt:
            self.cmd += ["--storage-opt", f"overlay.mountopt={mountopt}"]

    def __call__(self, *args, timeout=180):
        return run(*self.cmd, *args, check=False, env=self.env, timeout=timeout)

    def run(self, *args, timeout=180):
        """podman run with the host's network (the mirror) and the images loaded here only."""
        return self("run", "--network", "host", "--pull", "never", *args, timeout=timeout)

    def remove_all(self):
        """Teardown: every container and image of this podman."""
        self("rm", "-a", "-f", timeout=120)
        self("rmi", "-a", "-f", timeout=120)


# --- the workloads ------------------------------------------------------------------------------

# Run with `bash -c`. Bash 5.2 writes a here-document bigger than a pipe buffer to a temp file in
# $TMPDIR, unlinks it and reads it back through the open fd (as apt and TemporaryFile do);
# BASH_COMPAT=50 makes even a small one a temp file.
HEREDOC = r'''
export TMPDIR=/tmp/heredoc-$(id -u)
mkdir -p "$TMPDIR" || exit 3
[ "$(stat -c %d /)" = "$(stat -c %d "$TMPDIR")" ] || { echo "TMPDIR $TMPDIR is not on the root overlay"; exit 3; }
big=$(head -c 300000 /dev/zero | tr '\0' x)
n=$(wc -c <<EOF
$big
EOF
) || n=failed
echo "big heredoc: $n"
small=$(BASH_COMPAT=50; cat <<EOF
small $(id -u)
EOF
) || small=failed
echo "small heredoc: $small"
'''


def heredoc_expect(uid):
    return f"big heredoc: 300001\nsmall heredoc: small {uid}\n"


APT_INSTALL = r'''
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3
python3 -c 'print(42)'
'''

# Python's temp files on the overlay: TemporaryFile (O_TMPFILE, else create + unlink) and
# mkstemp + unlink, each written, fstat'ed and read back through the open fd.
TEMPFILE_PY = """
import os, tempfile
data = os.urandom(1 << 20)
def check(f, what):
    f.write(data)
    f.flush()
    assert os.fstat(f.fileno()).st_size == len(data), (what, os.fstat(f.fileno()))
    f.seek(0)
    assert f.read() == data, what + ": read-back differs"
with tempfile.TemporaryFile() as f:
    check(f, "TemporaryFile")
fd, name = tempfile.mkstemp()
os.unlink(name)
with os.fdopen(fd, "w+b") as f:
    check(f, "mkstemp+unlink")
print("tempfile ok")
"""
assert "'" not in TEMPFILE_PY
TEMPFILE = r'''
set -eu
export TMPDIR=/tmp/tempfile-$(id -u)
mkdir -p "$TMPDIR"
[ "$(stat -c %d /)" = "$(stat -c %d "$TMPDIR")" ] || { echo "TMPDIR $TMPDIR is not on the root overlay"; exit 3; }
python3 -c ''' + "'" + TEMPFILE_PY + "'\n"


def first_error(r):
    """The line that says what went wrong: apt's first E:, else the first line naming an error
    (Python's exception line comes last in a traceback), else the last line of stderr."""
    err = [l.strip() for l in r.stderr.splitlines() if l.strip()]
    for l in err + r.stdout.splitlines():
        if l.startswith("E:"):
            return l
    tb = [l for l in err if re.match(r"^\w*(Error|Exception)\b", l)]
    if tb:
        return tb[-1]
    for l in err:
        if "rror" in l or "denied" in l or "No such file" in l:
            return l
    return err[-1] if err else "(no stderr)"


def _fail(r, what, got):
    raise AssertionError(f"{what}: exit {r.returncode}, {got}: {first_error(r)}\n"
                         f"stdout (end): {r.stdout[-2000:]}\nstderr (end): {r.stderr[-3000:]}")


def expect_ok(r, what):
    if r.returncode != 0:
        _fail(r, what, "stdout " + repr(r.stdout[-200:]))


def expect_output(r, want, what):
    if r.returncode != 0 or r.stdout != want:
        _fail(r, what, f"stdout {r.stdout[-200:]!r} (want {want!r})")


def expect_last_line(r, want, what):
    lines = r.stdout.splitlines()
    if r.returncode != 0 or not lines or lines[-1] != want:
        _fail(r, what, f"last line {lines[-1] if lines else None!r} (want {want!r})")


def expect_apt(r, what):
    """The install script printed 42 last, and apt's downloads ran as _apt: apt falls back to
    root with a warning when _apt cannot reach /var/lib/apt/lists/partial."""
    unsandboxed = [l for l in (r.stdout + r.stderr).splitlines() if "unsandboxed" in l]
    try:
        expect_last_line(r, "42", what)
    except AssertionError as e:
        if unsandboxed:
            first, _, rest = str(e).partition("\n")
            raise AssertionError(f"{first}\n{unsandboxed[0]}\n{rest}") from None
        raise
    if unsandboxed:
        raise AssertionError(f"{what}: apt could not use its _apt sandbox: {unsandboxed[0]}")
