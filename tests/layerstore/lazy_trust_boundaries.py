#!/usr/bin/python3
"""What a lazy layer is served from must be beyond another local user's reach. A lazy mount
reads its blob in place long after verifying it, trusts its cache's indexes for owners, modes
and offsets, and strata-fs (root, as podman's mount program) reads whatever files a descriptor
names. Each case below is an attack by another user (uid 65534) that worked before:
- a cache dir that user owns: they plant a symlink where strata, as root, writes its
  verified/ record (predictable from the blob's stat), and strata wrote through it; a cache
  anyone can write, or whose index/ is a symlink, or reached through a symlink in their dir,
  is refused too, with no directory made first; one in sticky /tmp is fine;
- a blob file that user can write: mounted, then rewritten in place: the mount served the
  new bytes (a set-uid program's too) though only the old ones were verified;
- a descriptor (and index) that user wrote naming a root-only file: root's strata-fs served
  it to them; root's descriptor in their directory, naming its files relatively, too;
- a FIFO among an OCI layout's blobs hung `strata load` and `mount --lazy` forever.
Each is now refused with one line and nothing mounted or written."""
import hashlib
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403
from bad_input_corpus import GOOD, layer_blob, layout, make_tar, read_then_unmount  # noqa: E402

need_root()
need_tools("fusermount3", "setpriv")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")

STRATA_FS = os.environ.get("STRATA_FS", "strata-fs")
OTHER = 65534
work = workdir()
os.chmod(work, 0o755)
mnt = os.path.join(work, "mnt")
os.makedirs(mnt)
failures = []
GENUINE = b"genuine content of a verified layer\n"
SECRET = b"root-only bytes, the very same size\n"
assert len(GENUINE) == len(SECRET)


def check(cond, what):
    if not cond:
        failures.append(what)


def as_other(*cmd):
    return subprocess.run(["setpriv", f"--reuid={OTHER}", f"--regid={OTHER}", "--clear-groups", *cmd],
                          capture_output=True, timeout=30, cwd="/")


def write_as_other(path, data, mode):
    r = as_other("/usr/bin/python3", "-c", f"open({path!r}, {mode!r}).write({data!r})")
    if r.returncode != 0:
        raise AssertionError(f"writing {path} as uid {OTHER}: {r.stderr!r}")


def unmount_if_mounted(what):
    if os.path.ismount(mnt):
        failures.append(f"{what}: mounted")
        subprocess.run(["fusermount3", "-u", mnt])


def lazy_mount(root, path):
    return run(STRATA, "--root", root, "mount", "--lazy", path, mnt, check=False, timeout=60)


def refused(r, reason, what, prefix="strata: mount "):
    check(r.returncode != 0 and reason in r.stderr and r.stderr.startswith(prefix) and r.stderr.count("\n") == 1,
          f"{what}: exit {r.returncode}, stderr {r.stderr!r} (want one line naming {reason!r})")
    unmount_if_mounted(what)






def fresh_layout(name):
    return layout(os.path.join(work, name), [make_tar(GOOD + [("etc/motd", "file", GENUINE)])], compress="plain")


try:
    good = fresh_layout("good")
    blob = layer_blob(good)

    # A cache in a private dir below sticky /tmp works (the control for what follows).
    cache_root = os.path.join(work, "cache")
    r = lazy_mount(cache_root, good)
    check(r.returncode == 0 and read_then_unmount(mnt, "etc/motd") == GENUINE, f"a private cache: {r.stderr!r}")

    # 1. The other user's cache dir, a symlink planted where strata writes its verified/ record.
    shared = os.path.join(work, "shared")
    os.makedirs(os.path.join(shared, "lazy/verified"))
    for d in ("", "lazy", "lazy/verified"):
        os.chown(os.path.join(shared, d), OTHER, OTHER)
    st = os.stat(blob)
    key = (f"sha256-{os.path.basename(blob)}\n0\n{st.st_size}\n"
           f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")
    victim = os.path.join(work, "root-only-victim")
    with open(victim, "w") as f:
        f.write("root's own data\n")
    os.chmod(victim, 0o600)
    marker = os.path.join(shared, "lazy/verified", hashlib.sha256(key.encode()).hexdigest())
    os.symlink(victim, marker)
    os.lchown(marker, OTHER, OTHER)
    refused(lazy_mount(shared, good), "owned by uid 65534", "a cache dir another user owns")
    with open(victim) as f:
        check(f.read() == "root's own data\n", "strata wrote through a symlink in another user's cache dir")
    check(sorted(os.listdir(os.path.join(shared, "lazy"))) == ["verified"], "strata made dirs in another user's cache dir")
    # A --root through a symlink in the other user's dir (to a dir of root's): refused, nothing made.
    target = os.path.join(work, "target")
    os.makedirs(target)
    os.symlink(target, os.path.join(shared, "link"))
    refused(lazy_mount(os.path.join(shared, "link"), good), "owned by uid 65534", "a cache through their symlink")
    check(os.listdir(target) == [], "strata made dirs through a symlink in another user's dir")

    # A cache anyone can write, and one whose index/ is a symlink (to a dir the other user owns).
    open_cache = os.path.join(work, "open")
    os.makedirs(open_cache)
    os.chmod(open_cache, 0o777)
    refused(lazy_mount(open_cache, good), "writable by all users", "a world-writable cache dir")
    linked = os.path.join(work, "linked")
    os.makedirs(os.path.join(linked, "lazy"), mode=0o700)
    os.symlink(os.path.join(shared, "lazy/verified"), os.path.join(linked, "lazy/index"))
    refused(lazy_mount(linked, good), "not a directory", "a cache whose index/ is a symlink")

    # 2. A blob file another user can write, mounted then rewritten by them.
    for owner, mode, reason in ((OTHER, 0o644, "owned by uid 65534"), (0, 0o666, "writable by all users")):
        theirs = fresh_layout(f"theirs-{owner}-{mode:o}")
        their_blob = layer_blob(theirs)
        os.chown(their_blob, owner, owner)
        os.chmod(their_blob, mode)
        r = lazy_mount(cache_root, theirs)
        if os.path.ismount(mnt):  # the attack: rewritten after its digest was checked
            with open(their_blob, "rb") as f:
                forged = f.read().replace(GENUINE, SECRET)
            write_as_other(their_blob, forged, "r+b")
            with open(os.path.join(mnt, "etc/motd"), "rb") as f:
                check(f.read() != SECRET, f"a blob {reason}: the mount served its rewritten bytes")
        refused(r, reason, f"a blob {reason}")

    # 3. strata-fs as root: the other user's descriptor and index name a root-only file.
    index = os.path.join(cache_root, "lazy/index", "sha256-" + os.path.basename(blob))
    secret = os.path.join(work, "secret")
    with open(blob, "rb") as f:
        data = f.read()
    with open(secret, "wb") as f:
        f.write(data.replace(GENUINE, SECRET))
    os.chmod(secret, 0o600)
    check(as_other("cat", secret).returncode != 0, "the other user can read the root-only file")
    theirs = os.path.join(work, "their-dir")
    os.makedirs(theirs)
    os.chown(theirs, OTHER, OTHER)
    shutil.copy(index, os.path.join(theirs, "index"))
    os.chown(os.path.join(theirs, "index"), OTHER, OTHER)
    desc = os.path.join(theirs, "layer")
    write_as_other(desc, f"strata-lazy-layer 1\nindex=index\nblob={secret}\noffset=0\n", "w")
    r = run(STRATA_FS, "-o", f"lowerdir={desc}", mnt, check=False, timeout=60)
    refused(r, "owned by uid 65534", "strata-fs: another user's descriptor", prefix="strata-fs: ")
    # Root's own descriptor, in the other user's dir, naming its files relatively: they choose them.
    os.unlink(desc)
    with open(desc, "w") as f:
        f.write(f"strata-lazy-layer 1\nindex=index\nblob={secret}\noffset=0\n")
    r = run(STRATA_FS, "-o", f"lowerdir={desc}", mnt, check=False, timeout=60)
    refused(r, "owned by uid 65534", "strata-fs: relative names in another user's dir", prefix="strata-fs: ")
    # The control: root's descriptor in root's dir is served.
    mine = os.path.join(work, "layer")
    with open(mine, "w") as f:
        f.write(f"strata-lazy-layer 1\nindex={index}\nblob={secret}\noffset=0\n")
    r = run(STRATA_FS, "-o", f"lowerdir={mine}", mnt, check=False, timeout=60)
    check(r.returncode == 0 and read_then_unmount(mnt, "etc/motd") == SECRET, f"strata-fs, root's own descriptor: {r.stderr!r}")
    # Root's descriptor naming (absolutely) an index another user can write: they choose the
    # modes and owners the bytes show with.
    with open(mine, "w") as f:
        f.write(f"strata-lazy-layer 1\nindex={os.path.join(theirs, 'index')}\nblob={secret}\noffset=0\n")
    r = run(STRATA_FS, "-o", f"lowerdir={mine}", mnt, check=False, timeout=60)
    refused(r, "owned by uid 65534", "strata-fs: an index another user can write", prefix="strata-fs: ")
    # A FIFO named as index or blob: refused, not waited on.
    pipe = os.path.join(work, "pipe")
    os.mkfifo(pipe)
    for desc_text, what in ((f"index={pipe}\nblob={secret}", "index"), (f"index={index}\nblob={pipe}", "blob")):
        with open(mine, "w") as f:
            f.write(f"strata-lazy-layer 1\n{desc_text}\noffset=0\n")
        try:
            r = run(STRATA_FS, "-o", f"lowerdir={mine}", mnt, check=False, timeout=30)
            refused(r, "not a regular file", f"strata-fs: a FIFO as the {what}", prefix="strata-fs: ")
        except subprocess.TimeoutExpired:
            failures.append(f"strata-fs: a FIFO as the {what} hangs")

    # 4. A FIFO among a layout's blobs: refused at once, for load as for mount --lazy.
    fifo = fresh_layout("fifo")
    os.unlink(layer_blob(fifo))
    os.mkfifo(layer_blob(fifo))
    for args in (("mount", "--lazy", fifo, mnt), ("load", "-q", "-i", fifo)):
        try:
            r = run(STRATA, "--root", os.path.join(work, "store"), *args, check=False, timeout=30)
            refused(r, "not a regular file", f"a FIFO blob, {args[0]}", prefix=f"strata: {args[0]} ")
        except subprocess.TimeoutExpired:
            failures.append(f"a FIFO blob: {args[0]} hangs")
finally:
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", mnt])
    shutil.rmtree(work, ignore_errors=True)

conclude(failures, "lazy trust boundaries")
