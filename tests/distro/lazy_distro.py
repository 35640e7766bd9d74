#!/usr/bin/python3
"""Debian 12 over lazy layers, against the same image unpacked, in `strata run` as root or
(--rootless) as the unprivileged strata-test user. The image is lazy_image.py's two-layer gzip
OCI layout (minbase, then a committed `apt-get install procps less` with apt's lists). One
store loads it with `load --lazy`, another with `load`; in each, the same containers run:

- read: `dpkg -l`, `dpkg -V`, `find / -xdev` (type, mode, owner, mtime, links, size, symlink
  target of every name) and the sha256 of every regular file, i.e. every byte of the image;
- apt: `apt-get update` (the mirror), `apt-get install nano`, `dpkg -V`, `dpkg -l`; then
  `strata diff` and `commit` of that container, and nano and `dpkg -V` in the committed image.

The outputs must be the same over both stores (apt's download log aside), `dpkg -V` silent,
and the diffs equal. Each step's time is printed for both stores (not judged: the machine is
shared). Skipped (77) without root, /dev/fuse or the mirror."""
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distro_lib import APT_TIMEOUT, TEST_USER, Steps, expect_ok, log, need_tools, run, unmount_all_under  # noqa: E402
from container_test_lib import STRATA, need_env  # noqa: E402
from lazy_image import debian_gzip_layout  # noqa: E402

rootless = "--rootless" in sys.argv[1:]
need_env(rootless=rootless)
need_tools("mmdebstrap", "runuser", "gzip")
user = TEST_USER if rootless else None
if rootless:
    with open("/etc/subuid") as f:
        if not any(l.split(":")[0] == TEST_USER for l in f):
            raise SystemExit(f"FAIL: {TEST_USER} has no /etc/subuid range: apt's _apt sandbox needs one")

IMG = "strata-test/debian-procps:12"
IMG2 = "strata-test/debian-nano:12"

# Every name on the root overlay (bind-mounted /etc/hosts and friends, on another device,
# left out), then every regular file's sha256: all of the image's metadata and bytes.
# Directory sizes are left out (ext4 grows a directory's size, a lazy layer says 4096).
READ_ALL = r'''
set -eu
export LC_ALL=C
t() { echo "@time $1 $(date +%s.%N)" >&2; }
rd=$(stat -c %d /)
t start
echo "== dpkg -l"; dpkg -l
t dpkg-l
echo "== dpkg -V"; dpkg -V; echo "dpkg -V: $?"
t dpkg-V
echo "== find"
find / -xdev \( -type d -printf '%D|%y %#m %U:%G %T@ %n - %p\n' \) -o -printf '%D|%y %#m %U:%G %T@ %n %s %p -> %l\n' \
  | awk -F'|' -v d="$rd" '$1 == d { sub(/^[^|]*\|/, ""); print }' | sort
t find
echo "== sha256"
find / -xdev -type f -printf '%D|%p\n' | awk -F'|' -v d="$rd" '$1 == d { sub(/^[^|]*\|/, ""); print }' | sort \
  | xargs -d '\n' sha256sum
t sha256
'''

APT = r'''
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
t() { echo "@time $1 $(date +%s.%N)" >&2; }
t start
apt-get update >&2
t apt-update
apt-get install -y --no-install-recommends nano >&2
t apt-install
echo "== dpkg -V"; dpkg -V; echo "dpkg -V: $?"
t dpkg-V
echo "== dpkg -l"; dpkg -l
echo "== nano"; nano --version | head -1
'''

IN_COMMITTED = r'''
set -eu
export LC_ALL=C
echo "== dpkg -V"; dpkg -V; echo "dpkg -V: $?"
echo "== nano"; nano --version | head -1
'''

work = tempfile.mkdtemp(prefix="strata-lazy-distro-")
os.chmod(work, 0o755)
times = {}  # (store, step) -> seconds


def strata(store, *args, timeout=180):
    return run(STRATA, "--root", os.path.join(work, store), *args, check=False, user=user, timeout=timeout)


def step_times(stderr, store, what):
    """The container's `@time NAME EPOCH` lines as the seconds each step took."""
    last = None
    for line in stderr.splitlines():
        if line.startswith("@time "):
            _, name, at = line.split()
            if last is not None:
                times[(store, f"{what}: {name}")] = float(at) - last
            last = float(at)


def sections(out):
    """`== NAME` sections of a container's stdout. In `find`, an mtime after the image was
    ready is the container's own (its init layer: /, /etc, /.dockerenv, ...) and shows as NEW."""
    got, name = {}, None
    for line in out.splitlines():
        if line.startswith("== "):
            name = line[3:]
            got[name] = []
        elif name == "find":
            f = line.split(" ", 4)
            if len(f) == 5 and float(f[3]) >= image_ready:
                f[3] = "NEW"
            got[name].append(" ".join(f))
        elif name:
            got[name].append(line)
    if "find" in got:
        got["find"].sort()  # in the order of the lines as normalized
    return got


def same_sections(a, b, what):
    """Every section the same over both stores; the first differing lines of each one that is not."""
    bad = []
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x == y:
            continue
        if x is None or y is None:
            bad.append(f"section {name} only over {'unpacked' if x is None else 'lazy'} layers")
            continue
        only_lazy = sorted(set(x) - set(y))[:8]
        only_unpacked = sorted(set(y) - set(x))[:8]
        bad.append(f"{name}: {len(x)} lines over lazy layers, {len(y)} unpacked\n  lazy only: "
                   + "\n    ".join(only_lazy) + "\n  unpacked only: " + "\n    ".join(only_unpacked))
    if bad:
        raise AssertionError(f"{what} differs over lazy and unpacked layers:\n" + "\n".join(bad))


def expect_silent_verify(got, what):
    if got.get("dpkg -V") != ["dpkg -V: 0"]:
        raise AssertionError(f"{what}: dpkg -V is not clean: {got.get('dpkg -V')}")


def container(store, what, *args, timeout=APT_TIMEOUT):
    t = time.monotonic()
    r = strata(store, "run", *args, timeout=timeout)
    times[(store, what)] = time.monotonic() - t
    step_times(r.stderr, store, what)
    expect_ok(r, f"{what} over {store} layers")
    return sections(r.stdout)


results = {}


def timed(store, what, *args, timeout=180):
    t = time.monotonic()
    r = strata(store, *args, timeout=timeout)
    times[(store, what)] = time.monotonic() - t
    expect_ok(r, f"strata {' '.join(args)} ({store})")
    return r


def read_all():
    for store in ("lazy", "unpacked"):
        results[("read", store)] = container(store, "read", "--rm", IMG, "bash", "-c", READ_ALL)
    lazy, unpacked = results[("read", "lazy")], results[("read", "unpacked")]
    same_sections(lazy, unpacked, "dpkg -l, dpkg -V, find and every file's sha256")
    expect_silent_verify(lazy, "read over lazy layers")
    if len(lazy["sha256"]) < 5000:
        raise AssertionError(f"only {len(lazy['sha256'])} files read: not the whole image")


def apt():
    for store in ("lazy", "unpacked"):
        results[("apt", store)] = container(store, "apt", "--name", "apt", IMG, "bash", "-c", APT)
    lazy, unpacked = results[("apt", "lazy")], results[("apt", "unpacked")]
    same_sections(lazy, unpacked, "dpkg -V, dpkg -l and nano after apt-get install nano")
    expect_silent_verify(lazy, "apt-get install over lazy layers")
    if not lazy["nano"] or "nano" not in lazy["nano"][0]:
        raise AssertionError(f"nano --version said {lazy['nano']}")


def diff_commit():
    diffs = {}
    for store in ("lazy", "unpacked"):
        diffs[store] = sorted(timed(store, "diff", "diff", "apt").stdout.splitlines())
        timed(store, "commit", "commit", "apt", IMG2)
    if diffs["lazy"] != diffs["unpacked"]:
        a, b = set(diffs["lazy"]), set(diffs["unpacked"])
        raise AssertionError(f"strata diff differs: lazy only {sorted(a - b)[:10]}, unpacked only {sorted(b - a)[:10]}")
    if len(diffs["lazy"]) < 20:
        raise AssertionError(f"strata diff of apt-get install nano lists only {diffs['lazy']}")
    for store in ("lazy", "unpacked"):
        results[("committed", store)] = container(store, "committed", "--rm", IMG2, "bash", "-c", IN_COMMITTED)
    same_sections(results[("committed", "lazy")], results[("committed", "unpacked")], "the committed image")
    expect_silent_verify(results[("committed", "lazy")], "the image committed over lazy layers")


try:
    layout = debian_gzip_layout(STRATA, work)
    image_ready = time.time()
    if user:
        run("chown", "-R", user, work)
    s = Steps()
    loaded = s.check("load --lazy and load", lambda: (timed("lazy", "load", "load", "-q", "--lazy", "--tag", IMG, "-i", layout),
                                                      timed("unpacked", "load", "load", "-q", "--tag", IMG, "-i", layout)))
    if not loaded:
        s.finish()
    s.check("read every file, dpkg -l, dpkg -V", read_all)
    if s.check("apt-get update, install nano", apt):
        s.check("diff and commit", diff_commit)
    else:
        s.not_run("diff and commit", "apt-get install nano")
    log("times (s), lazy / unpacked:")
    for what in dict.fromkeys(k[1] for k in times):
        lz, up = times.get(("lazy", what)), times.get(("unpacked", what))
        if lz is not None and up is not None:
            log(f"  {what:24} {lz:7.2f} {up:7.2f}  {lz / up if up else 0:5.2f}x")
    for store in ("lazy", "unpacked"):
        strata(store, "rm", "-f", "apt")
    s.finish()
finally:
    log("cleanup")
    unmount_all_under(work)
    shutil.rmtree(work, ignore_errors=True)
