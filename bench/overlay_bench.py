#!/usr/bin/python3
"""Side-by-side benchmark: kernel overlayfs vs fuse-overlayfs vs strata-fs.

Driven by bench/run.sh (which builds strata and checks the prerequisites). One run:
  1. generates a layered tree (3 lower layers: merged dirs of 4 KiB files with shadowed
     files and whiteouts, a 100k-entry directory split over the layers, a big file) under a
     fresh dir in /var/tmp, used read-only as the lowers of every mount;
  2. builds (once, cached in /var/tmp/strata-bench-cache) a real rootfs tarball with GNU tar
     from files Debian packages installed under /usr on this machine;
  3. runs every workload on every implementation (and strata-fs variant: --features,
     --variant), interleaved, repeated (median), each try on a fresh mount with its own fresh
     upper/work dirs; cold tries drop caches first; --rootless does all of it as a user;
  4. checks each result (counts, sizes, checksums) so a fast wrong answer does not count;
  5. prints a table with ratios and PASS/MISS against the targets; --json writes all
     raw samples and medians.
"""
import argparse
import datetime
import fcntl
import hashlib
import json
import os
import platform
import pwd
import random
import shlex
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRATA_FS = os.environ.get("STRATA_FS") or os.path.join(ROOT, "build", "fs", "strata-fs")
IMPLS = ["kernel", "fuse-overlayfs", "strata-fs"]
# --variant NAME=OPTS (repeatable) adds column NAME: the same strata-fs mounted with OPTS after its
# defaults (passthrough=off, uring=off, writeback=1, copyup_sync=off, ...); columns NAME/s and
# NAME/k are its ratios to strata-fs with its defaults and to the kernel. --features adds one
# variant per performance feature, each turning that feature off.
VARIANTS = {}
# the features strata-fs has on by default (the writeback cache is opt-in: --variant wb=writeback=1;
# once it is a default it belongs here as nowb=writeback=0)
FEATURES_OFF = {"nopt": "passthrough=off", "nouring": "uring=off", "rdpauto": "readdirplus=auto"}
# --rootless: every mount is made by an unprivileged user inside `unshare -rm --map-auto` (as rootless
# podman mounts fuse-overlayfs), the workloads run there too; the root parent only drops caches
# for it (DROP_PIPE) and turns the io_uring switch.
ROOTLESS = False
TEST_USER = "strata-test"  # the rootless tests' user: --rootless's default, made by --smoke if missing
DROP_PIPE = None  # (read fd, write fd) to the root parent, in a rootless worker
# --baseline BIN adds "strata-base": another strata-fs build (say, the previous commit's) timed in
# the same run, so a change is judged by same-run ratios (s/b column).
STRATA_BASE = None
# --uring adds "strata-uring": the same strata-fs served through FUSE over io_uring (the kernel's
# enable_uring switch is turned on for the run and restored after; "strata-fs" then runs with
# uring=off, so the two columns are the two transports). Column u/s = strata-uring / strata-fs.
URING_SWITCH = "/sys/module/fuse/parameters/enable_uring"
URING_LOCK = "/run/lock/strata-fuse-uring.lock"  # tests/mount/run.py --uring takes it too
URING_LOCK_FILE = None  # open (and flock-ed) while this run holds the switch
CACHE = "/var/tmp/strata-bench-cache"
MiB = 1 << 20

SIZES = {
    # small_dirs x 100 files of 4 KiB; many: entries of the big directory
    "full": dict(small_dirs=200, many=100_000, big_mib=1024, create=10_000, unlink=10_000,
                 copyup=5_000, chmod=10_000, write_mib=1024, rootfs_mib=300, reps=3),
    "quick": dict(small_dirs=50, many=20_000, big_mib=256, create=2_000, unlink=2_000,
                  copyup=1_000, chmod=2_000, write_mib=256, rootfs_mib=40, reps=1),
    # --smoke (the bench_smoke test): every workload runs and is checked, nothing is measured
    "smoke": dict(small_dirs=4, many=300, big_mib=8, create=150, unlink=150, copyup=100, chmod=150,
                  write_mib=8, rootfs_mib=4, reps=1),
}
FILES_PER_DIR = 100
SMALL = 4096


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, cwd=None, check=True):
    """Runs a bash command line; returns stdout. Raises with stderr on failure."""
    p = subprocess.run(["bash", "-c", cmd], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"`{cmd}` failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return p.stdout


def drop_caches():
    os.sync()
    if DROP_PIPE:  # a rootless worker cannot write drop_caches: the root parent does it
        os.write(DROP_PIPE[1], b"d")
        if os.read(DROP_PIPE[0], 1) != b"k":
            raise RuntimeError("the root parent did not drop the caches")
        return
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def q(p):
    return shlex.quote(p)


# ----------------------------------------------------------------------------- the tree

class Tree:
    """The layered lower tree and everything the checks expect of its merged view."""

    def __init__(self, run, sz):
        self.run = run
        self.sz = sz
        self.layers = [os.path.join(run, "tree", f"L{i + 1}") for i in range(3)]  # L1 top-most
        self.lowerdir = ":".join(self.layers)

    def small_name(self, d, i):
        return f"small/d{d:03d}/f{i:03d}"

    def generate(self):
        sz = self.sz
        t0 = time.perf_counter()
        base = os.urandom(16384)

        def content(tag, idx):
            off = (idx * 37) % 8192
            return (f"{tag}:{idx}\n".encode() + base[off:off + SMALL])[:SMALL]

        for L in self.layers:
            os.makedirs(os.path.join(L, "many"))
            for d in range(sz["small_dirs"]):
                os.makedirs(os.path.join(L, f"small/d{d:03d}"))
        os.makedirs(os.path.join(self.layers[2], "big"))
        visible = []  # (merged relative path, path of the file that must show through)
        for d in range(sz["small_dirs"]):
            for i in range(FILES_PER_DIR):
                idx = d * FILES_PER_DIR + i
                rel = self.small_name(d, i)
                layer = idx % 3
                src = os.path.join(self.layers[layer], rel)
                with open(src, "wb") as f:
                    f.write(content(f"L{layer + 1}", idx))
                if idx % 50 == 0 and layer < 2:   # a stale copy further down, shadowed
                    with open(os.path.join(self.layers[2], rel), "wb") as f:
                        f.write(content("stale", idx))
                if idx % 97 == 1 and layer == 2:  # whited out by the top layer
                    os.mknod(os.path.join(self.layers[0], rel), 0o600 | stat.S_IFCHR, os.makedev(0, 0))
                    continue
                visible.append((rel, src))
        for i in range(sz["many"]):
            open(os.path.join(self.layers[i % 3], "many", f"e{i:06d}"), "wb").close()
        chunk = bytearray(os.urandom(MiB))
        with open(os.path.join(self.layers[2], "big", "big.bin"), "wb") as f:
            for m in range(sz["big_mib"]):
                chunk[:8] = m.to_bytes(8, "little")
                f.write(chunk)
        self.big_rel = "big/big.bin"
        self.big_size = sz["big_mib"] * MiB
        self.visible = visible
        self.small_files = len(visible)
        # merged view: root, small/, small dirs, visible files, many/, entries, big/, big.bin
        self.count = 1 + 1 + sz["small_dirs"] + len(visible) + 1 + sz["many"] + 1 + 1
        self.fsize = len(visible) * SMALL + self.big_size
        # file lists (NUL-separated, relative to a mount) and expected checksums, made by
        # the same tools the workloads use, over the files that must show through
        lists = os.path.join(self.run, "lists")
        os.makedirs(lists)
        self.list_all = os.path.join(lists, "small.all")
        self.lists_q = [os.path.join(lists, f"small.q{k}") for k in range(4)]
        self._write_list(self.list_all, [r for r, _ in visible])
        self.ck_all = self._cksum_of([s for _, s in visible])
        self.ck_q = []
        for k in range(4):
            part = visible[k::4]
            self._write_list(self.lists_q[k], [r for r, _ in part])
            self.ck_q.append(self._cksum_of([s for _, s in part]))
        self.big_ck = sh(f"cksum < {q(os.path.join(self.layers[2], self.big_rel))}").split()[:2]
        # a source tree for `cp -r` (create small files), in the run dir, kept warm
        self.create_src = os.path.join(self.run, "create-src")
        for n in range(sz["create"]):
            d = os.path.join(self.create_src, f"c{n // FILES_PER_DIR:03d}")
            if n % FILES_PER_DIR == 0:
                os.makedirs(d)
            with open(os.path.join(d, f"n{n:05d}"), "wb") as f:
                f.write(content("new", n))
        self.create_ck = sh("find . -type f -print0 | sort -z | xargs -0 cat | cksum", cwd=self.create_src).split()[:2]
        os.sync()
        log(f"tree: {self.small_files} small files in {sz['small_dirs']} merged dirs, "
            f"{sz['many']}-entry dir, {sz['big_mib']} MiB file, 3 layers "
            f"({time.perf_counter() - t0:.1f} s)")

    def _write_list(self, path, rels):
        with open(path, "wb") as f:
            f.write(b"".join(r.encode() + b"\0" for r in rels))

    def _cksum_of(self, paths):
        tmp = os.path.join(self.run, "lists", "tmp.src")
        self._write_list(tmp, paths)
        return sh(f"xargs -0 cat < {q(tmp)} | cksum").split()[:2]

    def dirs_for(self, nfiles, first=0):
        """Small dirs (relative) holding about nfiles lower files, starting at dir `first`."""
        n = max(1, min(self.sz["small_dirs"] - first, (nfiles + FILES_PER_DIR - 1) // FILES_PER_DIR))
        return [f"small/d{d:03d}" for d in range(first, first + n)]


# --------------------------------------------------------------------------- the rootfs

def rootfs_tar(limit_mib):
    """A tarball of a real Debian tree (files under /usr installed by Debian packages),
    made by GNU tar, about limit_mib MiB; cached. Returns (path, manifest)."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"rootfs-v2-{limit_mib}m.tar")
    man_path = path + ".manifest-v2.json"
    if os.path.exists(path) and os.path.exists(man_path):
        with open(man_path) as f:
            return path, json.load(f)
    t0 = time.perf_counter()
    # a mix like a real rootfs: many small text files (perl, python, docs, man pages),
    # executables and shared libraries; files over 16 MiB left out
    roots = ["usr/share/perl", "usr/lib/python3", "usr/share/doc", "usr/share/man", "usr/bin",
             "usr/sbin", "usr/lib/x86_64-linux-gnu", "usr/share/locale", "usr/include", "usr/share"]
    limit = limit_mib * MiB
    total, names, seen = 0, [], set()

    def add_tree(top):
        nonlocal total
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            rel = dirpath[1:]
            if rel in seen:
                dirnames[:] = []
                continue
            seen.add(rel)
            names.append(rel)
            for fn in sorted(filenames):
                p = os.path.join(dirpath, fn)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    if st.st_size > 16 * MiB or not os.access(p, os.R_OK):
                        continue
                    if total + st.st_size > limit:
                        return True
                    total += st.st_size
                elif not stat.S_ISLNK(st.st_mode):
                    continue
                names.append(p[1:])
        return False

    for r in roots:
        if add_tree("/" + r):
            break
    lst = path + ".list"
    with open(lst, "w") as f:
        f.write("\n".join(names) + "\n")
    sh(f"tar -C / --no-recursion -cf {q(path)}.tmp -T {q(lst)}")
    os.rename(path + ".tmp", path)
    # manifest: type and size per path, content hashes of a sample of regular files
    entries, sample, rnd = {}, {}, random.Random(1)
    with tarfile.open(path) as t:
        members = t.getmembers()
        sizes = {m.name: m.size for m in members if m.isreg()}
        for m in members:
            name = m.name.rstrip("/")
            if m.isdir():
                entries[name] = ["d", 0]
            elif m.issym():
                entries[name] = ["l", 0]
            elif m.islnk():
                entries[name] = ["f", sizes.get(m.linkname, 0)]
            elif m.isreg():
                entries[name] = ["f", m.size]
                if rnd.random() < 0.02:
                    sample[name] = hashlib.sha256(t.extractfile(m).read()).hexdigest()
    for name in list(entries):  # tar x creates the parents the archive does not list
        parent = os.path.dirname(name)
        while parent and parent not in entries:
            entries[parent] = ["d", 0]
            parent = os.path.dirname(parent)
    man = {"entries": entries, "sample": sample, "bytes": sum(v[1] for v in entries.values())}
    with open(man_path, "w") as f:
        json.dump(man, f)
    log(f"rootfs: {path}: {len(entries)} entries, {man['bytes'] / MiB:.0f} MiB "
        f"({time.perf_counter() - t0:.1f} s)")
    return path, man


def walk_manifest(top):
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, top)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ["d", 0]
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ["l", 0]
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ["f", st.st_size]
            else:
                out[rel] = ["?", 0]
    return out


# ------------------------------------------------------------------------------ mounts

class Mount:
    def __init__(self, impl, tree, base, extra_opts, want_uring=False, readonly=False):
        self.impl, self.tree, self.want_uring, self.readonly = impl, tree, want_uring, readonly
        self.upper = os.path.join(base, "upper")
        self.work = os.path.join(base, "work")
        self.mnt = os.path.join(base, "mnt")
        for d in (self.upper, self.work, self.mnt):
            os.makedirs(d)
        self.extra = extra_opts
        self.pid = None

    def mount(self):
        opts = f"lowerdir={self.tree.lowerdir},upperdir={self.upper},workdir={self.work}"
        if self.readonly:  # the layers alone; the kernel's index and redirect options need an upper
            opts = f"lowerdir={self.tree.lowerdir}"
        if self.extra and not (self.readonly and self.impl == "kernel"):
            opts += "," + self.extra
        if self.impl == "kernel":
            cmd = ["mount", "-t", "overlay", "overlay", "-o", opts, self.mnt]
        elif self.impl == "fuse-overlayfs":
            cmd = ["fuse-overlayfs", "-o", opts, self.mnt]
        elif self.impl == "strata-base":
            cmd = [STRATA_BASE, "-o", opts, self.mnt]
        else:  # strata-fs, strata-uring and the variants: their options are in self.extra
            cmd = [STRATA_FS, "-o", opts, self.mnt]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t = time.perf_counter() - t0
        if p.returncode != 0 or not os.path.ismount(self.mnt):
            raise RuntimeError(f"{self.impl}: mount failed: {p.stderr.strip()}")
        if self.impl != "kernel":
            self.pid = find_daemon(self.impl, self.mnt)
        if self.want_uring:
            os.stat(self.mnt)  # answered after INIT: the daemon holds its rings only if it uses them
            if not uring_fds(self.pid):
                raise RuntimeError(f"{self.impl}: the daemon serves /dev/fuse, not io_uring "
                                   "(mount with -o debug to see why)")
        return t

    def rss_hwm_mib(self):
        if not self.pid:
            return None
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def umount(self):
        if not os.path.ismount(self.mnt):
            return
        if self.impl == "kernel" or ROOTLESS:  # in its own mount namespace: no fusermount3
            r = subprocess.run(["umount", self.mnt], stderr=subprocess.PIPE)
        else:
            r = subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.PIPE)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", self.mnt], stderr=subprocess.DEVNULL)
        if self.pid:  # wait for the daemon to exit
            for _ in range(600):
                if not os.path.exists(f"/proc/{self.pid}"):
                    break
                time.sleep(0.05)


def uring_fds(pid):
    """How many io_uring instances process `pid` holds."""
    try:
        return sum(os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[io_uring]"
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def find_daemon(impl, mnt):
    """The pid of the FUSE daemon serving mnt: its argv names the binary and the mountpoint."""
    name = {"fuse-overlayfs": "fuse-overlayfs",
            "strata-base": os.path.basename(STRATA_BASE or "")}.get(impl, os.path.basename(STRATA_FS))
    for _ in range(100):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and os.path.basename(argv[0].decode(errors="replace")) == name \
                    and mnt.encode() in argv:
                return int(pid)
        time.sleep(0.02)
    return None


# ---------------------------------------------------------------------------- workloads

class W:
    """A workload. run(ctx) is timed; check(ctx, out) returns an error string or None."""

    def __init__(self, key, label, unit, run, check, cold=False, prime=None, setup=None,
                 nbytes=None, target=None, fresh=True, readonly=False):
        self.key, self.label, self.unit, self.readonly = key, label, unit, readonly
        self.run, self.check, self.cold = run, check, cold
        self.prime, self.setup, self.nbytes, self.target = prime, setup, nbytes, target


class Ctx:
    def __init__(self, m, tree, rootfs, refs):
        self.m, self.mnt, self.tree, self.rootfs, self.refs = m, m.mnt, tree, rootfs, refs


def walk_cmd(c):
    return sh("find . -printf '%y %s\\n'", cwd=c.mnt)


def walk_check(c, out):
    lines = out.splitlines()
    fs = sum(int(l.split()[1]) for l in lines if l.startswith("f "))
    if len(lines) != c.tree.count or fs != c.tree.fsize:
        return f"walk saw {len(lines)} entries / {fs} file bytes, want {c.tree.count} / {c.tree.fsize}"
    return None


def read_small(c):
    return sh(f"xargs -0 cat < {q(c.tree.list_all)} | cksum", cwd=c.mnt).split()[:2]


def read_small_check(c, out):
    return None if out == c.tree.ck_all else f"cksum {out} != {c.tree.ck_all}"


def read_big(c):
    sh(f"dd if={c.tree.big_rel} of=/dev/null bs=1M status=none", cwd=c.mnt)


def read_big_check(c, out):
    got = sh(f"cksum < {c.tree.big_rel}", cwd=c.mnt).split()[:2]
    return None if got == c.tree.big_ck else f"cksum {got} != {c.tree.big_ck}"


def par4(c):
    procs = [subprocess.Popen(["bash", "-c", f"xargs -0 cat < {q(l)} | cksum"], cwd=c.mnt,
                              stdout=subprocess.PIPE, text=True) for l in c.tree.lists_q]
    return [p.communicate()[0].split()[:2] for p in procs]


def par4_check(c, out):
    return None if out == c.tree.ck_q else f"cksums {out} != {c.tree.ck_q}"


def readdir(c):
    return int(sh("ls -f many | wc -l", cwd=c.mnt))


def readdir_check(c, out):
    want = c.tree.sz["many"] + 2
    return None if out == want else f"ls -f listed {out} names, want {want}"


def create_small(c):
    sh(f"cp -r {q(c.tree.create_src)} new", cwd=c.mnt)


def create_check(c, out):
    got = sh("find . -type f -print0 | sort -z | xargs -0 cat | cksum", cwd=os.path.join(c.mnt, "new")).split()[:2]
    return None if got == c.tree.create_ck else f"copied tree cksum {got} != {c.tree.create_ck}"


def unlink_dirs(c):
    return c.tree.dirs_for(c.tree.sz["unlink"])


def unlink_small(c):
    sh("rm -rf " + " ".join(unlink_dirs(c)), cwd=c.mnt)


def unlink_check(c, out):
    left = [d for d in unlink_dirs(c) if os.path.lexists(os.path.join(c.mnt, d))]
    n = len(os.listdir(os.path.join(c.mnt, "small")))
    want = c.tree.sz["small_dirs"] - len(unlink_dirs(c))
    if left or n != want:
        return f"{len(left)} removed dirs still visible, small/ has {n} entries, want {want}"
    if not os.path.isdir(os.path.join(c.tree.layers[0], unlink_dirs(c)[0])):
        return "a lower dir was removed"
    return None


def write_big(c):
    sh(f"dd if=/dev/zero of=newbig bs=1M count={c.tree.sz['write_mib']} status=none", cwd=c.mnt)


def write_big_check(c, out):
    st = os.stat(os.path.join(c.mnt, "newbig"))
    want = c.tree.sz["write_mib"] * MiB
    return None if st.st_size == want else f"size {st.st_size} != {want}"


def copyup_files(c):
    return [os.path.join(c.mnt, r) for r, _ in c.tree.visible[:c.tree.sz["copyup"]]]


def copyup_small(c):
    for p in copyup_files(c):  # no tool appends a byte to 5k files without a fork each
        with open(p, "ab") as f:
            f.write(b"x")


def copyup_small_check(c, out):
    bad = 0
    for (rel, src), p in zip(c.tree.visible, copyup_files(c)):
        with open(p, "rb") as f:
            data = f.read()
        with open(src, "rb") as f:
            low = f.read()
        if data != low + b"x" or len(low) != SMALL:
            bad += 1
    up = sum(len(fs) for _, _, fs in os.walk(c.m.upper))
    if bad:
        return f"{bad} copied-up files have wrong contents"
    if up < len(copyup_files(c)):
        return f"only {up} files in the upper dir"
    return None


def copyup_big_setup(c):
    sh(f"cat {q(os.path.join(c.tree.layers[2], c.tree.big_rel))} > /dev/null")  # warm lower


def copyup_big(c):
    sh(f"printf x >> {c.tree.big_rel}", cwd=c.mnt)


def copyup_big_check(c, out):
    p = os.path.join(c.mnt, c.tree.big_rel)
    low = os.path.join(c.tree.layers[2], c.tree.big_rel)
    if os.path.getsize(p) != c.tree.big_size + 1 or os.path.getsize(low) != c.tree.big_size:
        return f"sizes {os.path.getsize(p)} / lower {os.path.getsize(low)}"
    if not os.path.exists(os.path.join(c.m.upper, c.tree.big_rel)):
        return "no copy in the upper dir"
    got = sh(f"head -c {c.tree.big_size} {c.tree.big_rel} | cksum", cwd=c.mnt).split()[:2]
    with open(p, "rb") as f:
        f.seek(c.tree.big_size)
        tail = f.read()
    if got != c.tree.big_ck or tail != b"x":
        return f"copied-up contents differ (cksum {got}, tail {tail!r})"
    return None


def chmod_dirs(c):
    return c.tree.dirs_for(c.tree.sz["chmod"], first=c.tree.sz["small_dirs"] // 2 - c.tree.sz["chmod"] // FILES_PER_DIR // 2)


def chmod_files(c):
    return sh("chmod -R g+w " + " ".join(chmod_dirs(c)), cwd=c.mnt)


def chmod_check(c, out):
    n, bad = 0, 0
    for d in chmod_dirs(c):
        for e in os.scandir(os.path.join(c.mnt, d)):
            st = e.stat(follow_symlinks=False)
            n += 1
            if not st.st_mode & stat.S_IWGRP or st.st_size != SMALL:
                bad += 1
        for L in c.tree.layers:
            for e in os.scandir(os.path.join(L, d)):
                if e.stat(follow_symlinks=False).st_mode & stat.S_IWGRP:
                    return f"chmod reached the lower file {e.path}"
    if bad or n == 0:
        return f"{bad} of {n} files lack g+w or changed size"
    return None


def untar_setup(c):
    os.mkdir(os.path.join(c.mnt, "rootfs"))


def untar(c):
    sh(f"tar -xf {q(c.rootfs[0])} -C rootfs", cwd=c.mnt)


def untar_check(c, out):
    got = walk_manifest(os.path.join(c.mnt, "rootfs"))
    want = c.rootfs[1]["entries"]
    if got != want:
        missing = [k for k in want if k not in got][:3]
        differ = [k for k in want if k in got and got[k] != want[k]][:3]
        extra = [k for k in got if k not in want][:3]
        return f"tree differs: {len(got)} vs {len(want)} entries; missing {missing} differ {differ} extra {extra}"
    for name, h in c.rootfs[1]["sample"].items():
        with open(os.path.join(c.mnt, "rootfs", name), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != h:
                return f"{name}: contents differ"
    return None


def tar_c(c):
    return int(sh("tar -cf - . 2>/dev/null | wc -c", cwd=c.mnt))


def tar_c_check(c, out):
    ref = c.refs.setdefault("tar_c", out)  # every implementation must produce the same size
    low = c.tree.fsize + 512 * c.tree.count
    if out != ref or out < low:
        return f"tar wrote {out} bytes; first implementation wrote {ref}; at least {low}"
    return None


def du_s(c):
    return int(sh("du -s --inodes .", cwd=c.mnt).split()[0])


def du_check(c, out):
    return None if out == c.tree.count else f"du counted {out} inodes, want {c.tree.count}"


def workloads():
    return [
        W("stat_cold", "stat walk (find), cold", "s", walk_cmd, walk_check, cold=True),
        W("stat_warm", "stat walk (find), warm", "s", walk_cmd, walk_check, prime=walk_cmd,
          target=("kernel", 1.2)),
        W("readdir", "readdir 100k-entry dir (ls -f), cold", "s", readdir, readdir_check, cold=True),
        W("read_small_cold", "read small files (cat), cold", "s", read_small, read_small_check,
          cold=True, target=("kernel", 2.0)),
        W("read_small_warm", "read small files (cat), warm", "s", read_small, read_small_check,
          prime=read_small),
        W("read_big_cold", "read big file (dd), cold", "MB/s", read_big, read_big_check, cold=True,
          nbytes=lambda t: t.big_size, target=("kernel", 0.25)),
        W("read_big_warm", "re-read big file (dd), warm", "MB/s", read_big, read_big_check,
          prime=read_big, nbytes=lambda t: t.big_size, target=("kernel", 0.8)),
        # The same two reads through a read-only mount (lowerdir only: an image looked at with
        # `strata mount`), where strata-fs hands the kernel the layer files (passthrough).
        W("read_small_cold_ro", "read small files (cat), cold, read-only mount", "s", read_small,
          read_small_check, cold=True, readonly=True),
        W("read_big_warm_ro", "re-read big file (dd), warm, read-only mount", "MB/s", read_big,
          read_big_check, prime=read_big, nbytes=lambda t: t.big_size, readonly=True,
          target=("kernel", 0.8)),
        W("par4", "4 parallel readers of small files, warm", "s", par4, par4_check, prime=par4),
        W("create_small", "create small files (cp -r)", "s", create_small, create_check,
          target=("kernel", 3.0)),
        W("unlink_small", "unlink lower small files (rm -rf)", "s", unlink_small, unlink_check),
        W("write_big", "write big file (dd)", "MB/s", write_big, write_big_check,
          nbytes=lambda t: t.sz["write_mib"] * MiB),
        W("copyup_small", "copy-up small files (append 1 byte)", "s", copyup_small, copyup_small_check),
        W("copyup_big", "copy-up big file (append 1 byte)", "s", copyup_big, copyup_big_check,
          setup=copyup_big_setup, target=("kernel", 1.5)),
        W("chmod", "chmod -R lower files (metadata copy-up)", "s", chmod_files, chmod_check),
        W("untar", "untar rootfs (tar x)", "s", untar, untar_check, setup=untar_setup,
          target=("kernel", 4.0)),
        W("tar_c", "tar c merged view | wc -c, warm", "s", tar_c, tar_c_check, prime=tar_c),
        W("du", "du -s --inodes, cold", "s", du_s, du_check, cold=True),
    ]


# -------------------------------------------------------------------------------- driver

def size_name(args):
    return "smoke" if args.smoke else "quick" if args.quick else "full"


def needs_uring_switch(args):
    return args.uring or args.features


def uring_switch_on():
    """Turns the kernel's FUSE io_uring switch on; returns what it was. The lock is held until the
    process exits, so two runs (or a test run) cannot restore it under each other."""
    global URING_LOCK_FILE
    URING_LOCK_FILE = open(URING_LOCK, "a")
    fcntl.flock(URING_LOCK_FILE, fcntl.LOCK_EX)
    with open(URING_SWITCH) as f:
        old = f.read().strip()
    with open(URING_SWITCH, "w") as f:
        f.write("Y")
    log(f"{URING_SWITCH}: Y for this run (was {old})")
    return old


def uring_switch_restore(old):
    with open(URING_SWITCH, "w") as f:
        f.write(old)
    log(f"{URING_SWITCH}: back to {old}")


class Bench:
    def __init__(self, args):
        self.args = args
        self.sz = dict(SIZES[size_name(args)])
        if args.reps:
            self.sz["reps"] = args.reps
        self.impls = args.impls.split(",")
        # rootless kernel overlayfs needs userxattr and refuses redirect_dir, index and metacopy
        kernel = "userxattr" if ROOTLESS else "redirect_dir=on,index=on,metacopy=on"
        strata = os.environ.get("STRATA_FS_OPTS", "")
        join = lambda *o: ",".join(x for x in o if x)
        self.opts = {"kernel": os.environ.get("KERNEL_OVERLAY_OPTS", kernel),
                     "fuse-overlayfs": os.environ.get("FUSE_OVERLAYFS_OPTS", ""),
                     "strata-fs": strata, "strata-base": strata, "strata-uring": join(strata, "uring=auto")}
        if "strata-uring" in self.impls:
            self.opts["strata-fs"] = join(strata, "uring=off")
        for name, vopts in VARIANTS.items():
            self.opts[name] = join(strata, vopts)
        self.variants = [i for i in self.impls if i in VARIANTS]
        # with --features the kernel's switch is on, so strata-fs with its defaults must serve io_uring
        self.on_uring = {"strata-uring"} | ({"strata-fs"} if args.features else set()) | \
            {v for v in self.variants if args.features and "uring=off" not in VARIANTS[v]}
        self.na = {}  # impl -> why it has no column in this run (rootless kernel overlayfs)
        self.uring_old = None
        self.run = None
        self.mounts = []
        self.samples = {}   # key -> impl -> [ {value, ok, err, rss, mount_s} ]
        self.refs = {}
        self.seq = 0

    def try_once(self, w, impl, rep):
        self.seq += 1
        base = os.path.join(self.run, "tries", f"{self.seq:04d}-{w.key}-{impl}")
        m = Mount(impl, self.tree, base, self.opts[impl], impl in self.on_uring, w.readonly)
        self.mounts.append(m)
        rec = {"rep": rep}
        t_try = time.perf_counter()
        try:
            rec["mount_s"] = m.mount()
            c = Ctx(m, self.tree, self.rootfs, self.refs)
            if w.setup:
                w.setup(c)
            if w.prime:
                w.prime(c)
            if w.cold:
                drop_caches()
            else:
                os.sync()  # flush earlier tries' dirty data outside the timed part
            perf = self.start_perf(m, w, rep)
            t0 = time.perf_counter()
            out = w.run(c)
            dt = time.perf_counter() - t0
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait()
                rec["perf"] = True
            rec["rss_mib"] = m.rss_hwm_mib()
            rec["seconds"] = dt
            rec["wall_s"] = time.perf_counter() - t_try
            rec["value"] = w.nbytes(self.tree) / dt / 1e6 if w.nbytes else dt
            err = w.check(c, out)
            rec["ok"] = err is None
            if err:
                rec["err"] = err
                log(f"  WRONG {w.key} on {impl}: {err}")
        except Exception as e:  # a failed try is reported, not fatal
            rec["ok"] = False
            rec["err"] = str(e)
            log(f"  ERROR {w.key} on {impl}: {e}")
        finally:
            m.umount()
            self.mounts.remove(m)
        return rec

    def probe_kernel(self):
        """Rootless kernel overlayfs needs a kernel that lets a user namespace mount it (5.11+,
        userxattr): without it the kernel column is n/a, not a column of failures."""
        m = Mount("kernel", self.tree, os.path.join(self.run, "tries", "kernel-probe"), self.opts["kernel"])
        try:
            m.mount()
        except RuntimeError as e:
            self.impls.remove("kernel")
            self.na["kernel"] = str(e).splitlines()[0]
            log(f"kernel overlayfs: n/a rootless here ({self.na['kernel']})")
        finally:
            m.umount()

    def start_perf(self, m, w, rep):
        if not self.args.perf or not m.pid:
            return None
        os.makedirs(self.args.perf, exist_ok=True)
        out = os.path.join(self.args.perf, f"{w.key}-{m.impl}-{rep}.data")
        p = subprocess.Popen(["perf", "record", "-g", "-q", "-p", str(m.pid), "-o", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        return p

    def main(self):
        t_start = time.perf_counter()
        self.run = os.path.realpath(os.path.join("/var/tmp", f"strata-bench-{os.getpid()}-{int(time.time())}"))
        os.makedirs(self.run)
        log(f"run dir: {self.run}")
        try:
            if needs_uring_switch(self.args) and not self.args.worker:
                self.uring_old = uring_switch_on()
            self.tree = Tree(self.run, self.sz)
            self.tree.generate()
            if ROOTLESS and "kernel" in self.impls:
                self.probe_kernel()
            ws = workloads()
            if self.args.only:
                keep = self.args.only.split(",")
                ws = [w for w in ws if w.key in keep]
            self.rootfs = rootfs_tar(self.sz["rootfs_mib"]) if any(w.key == "untar" for w in ws) else None
            for w in ws:
                t0 = time.perf_counter()
                self.samples[w.key] = {i: [] for i in self.impls}
                for rep in range(self.sz["reps"]):
                    order = self.impls[rep % len(self.impls):] + self.impls[:rep % len(self.impls)]
                    for impl in order:
                        self.samples[w.key][impl].append(self.try_once(w, impl, rep))
                log(f"{w.key}: {time.perf_counter() - t0:.1f} s")
            self.report(ws, time.perf_counter() - t_start)
            failed = sum(not r.get("ok") for per in self.samples.values() for recs in per.values() for r in recs)
            if failed:
                log(f"{failed} tries failed or were wrong (ERROR/WRONG above)")
            return 1 if failed else 0
        finally:
            for m in list(self.mounts):
                m.umount()
            if self.uring_old is not None:
                uring_switch_restore(self.uring_old)
            if not self.args.keep:
                # mass deletes on this ext4 (no journal) take a minute: leave them to a
                # detached, idle-priority rm after the table is out
                subprocess.Popen(["ionice", "-c3", "nice", "rm", "-rf", self.run], start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                log(f"removing {self.run} in the background")
            else:
                log(f"kept {self.run}")

    # ------------------------------------------------------------------------- report

    def median(self, recs, field="value"):
        vals = [r[field] for r in recs if r.get("ok") and r.get(field) is not None]
        if not recs or len(vals) != len(recs):
            return None
        return statistics.median(vals)

    def report(self, ws, elapsed):
        rows = []
        mounts = {i: [r["mount_s"] for w in ws for r in self.samples[w.key][i] if "mount_s" in r]
                  for i in self.impls}
        rows.append(self.row("mount", "mount time", "s", {i: statistics.median(v) if v else None
                                                          for i, v in mounts.items()}, None, True))
        for w in ws:
            med = {i: self.median(self.samples[w.key][i]) for i in self.impls}
            rows.append(self.row(w.key, w.label, w.unit, med, w.target, True))
            if w.key == "readdir":
                rss = {i: (self.median(self.samples[w.key][i], "rss_mib") if i != "kernel" else None)
                       for i in self.impls}
                rows.append(self.row("readdir_rss", "  peak daemon RSS (VmHWM) during it", "MiB",
                                     rss, ("abs", 64), False))
        table = self.format(rows)
        head = self.header(elapsed)
        print(head + "\n" + table)
        if self.args.json:
            # a rootless worker writes to the file its root parent opened for it
            with (os.fdopen(self.args.json_fd, "w") if self.args.json_fd is not None
                  else open(self.args.json, "w")) as f:
                json.dump({"header": head, "table": table, "sizes": self.sz, "options": self.opts,
                           "columns": self.impls, "variants": {v: VARIANTS[v] for v in self.variants},
                           "rootless": ROOTLESS, "not_available": self.na,
                           "machine": machine(), "rows": rows, "samples": self.samples,
                           "mount_samples": mounts}, f, indent=1)
            log(f"wrote {self.args.json}")

    def row(self, key, label, unit, med, target, vs_fuse):
        higher_better = unit == "MB/s"
        s, k, f = med.get("strata-fs"), med.get("kernel"), med.get("fuse-overlayfs")
        b, u = med.get("strata-base"), med.get("strata-uring")
        r = {"key": key, "label": label, "unit": unit, "median": med,
             "s/k": s / k if s and k else None, "s/f": s / f if s and f else None,
             "s/b": s / b if s and b else None, "u/s": u / s if u and s else None, "verdicts": []}
        r["variant_ratios"] = {}
        for v in self.variants:
            x = med.get(v)
            r["variant_ratios"][f"{v}/s"] = x / s if x and s else None
            r["variant_ratios"][f"{v}/k"] = x / k if x and k else None
        if target and target[0] == "kernel" and not ROOTLESS:  # the kernel targets are for root mounts
            t = target[1]
            txt = f"{'>=' if higher_better else '<='}{t}x kernel"
            ok = r["s/k"] is not None and (r["s/k"] >= t if higher_better else r["s/k"] <= t)
            r["verdicts"].append((txt, "PASS" if ok else "MISS"))
        elif target and target[0] == "abs":
            ok = s is not None and s <= target[1]
            r["verdicts"].append((f"<={target[1]} {unit}", "PASS" if ok else "MISS"))
        if vs_fuse and "fuse-overlayfs" in med:
            # fuse-overlayfs never syncs a copy-up: on the copy-up rows the fair comparison is a
            # variant with copyup_sync=off when the run has one (--variant cs=copyup_sync=off)
            fair = next((v for v in self.variants if VARIANTS[v] == "copyup_sync=off"), None) \
                if key in ("copyup_small", "copyup_big") else None
            x = med.get(fair) if fair else s
            ratio = x / f if x and f else None
            ok = ratio is not None and (ratio >= 1 if higher_better else ratio <= 1)
            r["verdicts"].append(("no slower than fuse-ovl" + (f" ({fair}: copyup_sync=off)" if fair else ""),
                                  "PASS" if ok else "MISS"))
        return r

    def format(self, rows):
        def cell(v, unit):
            if v is None:
                return "-"
            return f"{v:.0f}" if unit == "MB/s" else (f"{v:.1f}" if unit == "MiB" else f"{v:.3f}")

        names = {"kernel": "kernel", "fuse-overlayfs": "fuse-ovl", "strata-fs": "strata", "strata-base": "base",
                 "strata-uring": "uring", **{v: v for v in self.variants}}
        vcols = [f"{v}/{d}" for v in self.variants for d in "sk"]
        base = "strata-base" in self.impls
        ring = "strata-uring" in self.impls
        hdr = ["workload", "unit"] + [names[i] for i in self.impls] + ["s/k", "s/f"] + (["s/b"] if base else []) \
            + (["u/s"] if ring else []) + vcols + ["targets"]
        lines = []
        for r in rows:
            wrong = [i for i in self.impls for x in self.samples.get(r["key"], {}).get(i, []) if not x.get("ok")]
            cells = [r["label"], r["unit"]]
            for i in self.impls:
                v = r["median"].get(i)
                cells.append("WRONG" if (v is None and i in wrong) else cell(v, r["unit"]))
            cells += [f"{r['s/k']:.2f}x" if r["s/k"] else "-", f"{r['s/f']:.2f}x" if r["s/f"] else "-"]
            if base:
                cells.append(f"{r['s/b']:.2f}x" if r["s/b"] else "-")
            if ring:
                cells.append(f"{r['u/s']:.2f}x" if r["u/s"] else "-")
            cells += [f"{r['variant_ratios'][c]:.2f}x" if r["variant_ratios"][c] else "-" for c in vcols]
            cells.append("; ".join(f"{t} {v}" for t, v in r["verdicts"]))
            lines.append(cells)
        widths = [max(len(str(x[j])) for x in lines + [hdr]) for j in range(len(hdr))]
        fmt = lambda cs: "  ".join(str(c).ljust(widths[j]) if j < 2 or j == len(cs) - 1
                                   else str(c).rjust(widths[j]) for j, c in enumerate(cs)).rstrip()
        out = [fmt(hdr), "  ".join("-" * w for w in widths)] + [fmt(l) for l in lines]
        return "\n".join(out)

    def header(self, elapsed):
        m = machine()
        sz = self.sz
        return (f"strata-fs side-by-side benchmark, {m['date']}, {size_name(self.args)} "
                f"({elapsed:.0f} s)\n"
                f"machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB RAM, kernel {m['kernel']}, "
                f"{m['fs']} at /var/tmp\n"
                f"versions: {m['fuse_overlayfs']}; strata {m['strata']}\n"
                f"tree: 3 lowers, {self.tree.small_files} x 4 KiB files in {sz['small_dirs']} merged dirs, "
                f"{sz['many']}-entry dir, {sz['big_mib']} MiB file; rootfs tar ~{sz['rootfs_mib']} MiB "
                f"of Debian /usr files; median of {sz['reps']}\n"
                f"options: kernel: {self.opts['kernel'] or 'defaults'}; fuse-overlayfs: "
                f"{self.opts['fuse-overlayfs'] or 'defaults'}; strata-fs: {self.opts['strata-fs'] or 'defaults'}"
                + "".join(f"; {v}: strata-fs with {self.opts[v]}" for v in self.variants) + "\n"
                + (f"rootless: every mount made by {self.args.rootless_user} inside unshare -rm --map-auto "
                   "(no passthrough); the kernel targets are for root mounts and not checked\n" if ROOTLESS else "")
                + "".join(f"{i}: n/a ({why})\n" for i, why in self.na.items())
                + "s/k = strata-fs/kernel, s/f = strata-fs/fuse-overlayfs (of time in s, of throughput in MB/s)"
                + (f"; V/s, V/k = variant V / strata-fs defaults, / kernel" if self.variants else "") + "\n")


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    fs = sh("findmnt -no FSTYPE,OPTIONS -T /var/tmp", check=False).strip().split(" ")[0]
    fo = sh("fuse-overlayfs --version 2>&1 | grep -m1 '^fuse-overlayfs'", check=False).strip()
    strata = sh(f"git -c safe.directory='*' -C {q(ROOT)} rev-parse --short HEAD", check=False).strip()
    return {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "cpu": cpu,
            "cores": os.cpu_count(), "mem_gib": round(mem), "kernel": platform.release(),
            "fs": fs, "fuse_overlayfs": fo, "strata": strata}


def missing_prerequisites(args):
    """What a run needs and this machine lacks (bench/run.sh checks the same for a real run)."""
    why = []
    if os.geteuid() != 0:
        why.append("needs root")
    for tool in ["fuse-overlayfs", "fusermount3"] + (["unshare", "newuidmap", "runuser"] if args.rootless else []):
        if not shutil.which(tool):
            why.append(f"{tool} is not installed")
    if not os.access(STRATA_FS, os.X_OK):
        why.append(f"{STRATA_FS} is not built")
    if not os.path.exists("/dev/fuse"):
        why.append("no /dev/fuse")
    if not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        why.append("/proc/sys/vm/drop_caches is not writable")
    with open("/proc/filesystems") as f:
        if not args.rootless and not any(l.split()[-1] == "overlay" for l in f if l.strip()):
            why.append("kernel overlayfs is not loaded (modprobe overlay)")
    if args.rootless:
        try:
            pw = pwd.getpwnam(args.rootless_user)
            with open("/etc/subuid") as f:
                if not any(l.split(":")[0] in (args.rootless_user, str(pw.pw_uid)) for l in f):
                    why.append(f"{args.rootless_user} has no range in /etc/subuid "
                               f"(usermod --add-subuids 100000-165535 {args.rootless_user})")
        except KeyError:
            why.append(f"no user {args.rootless_user} (useradd -m {args.rootless_user}, or --rootless-user USER)")
        except OSError as e:
            why.append(f"/etc/subuid: {e.strerror}")
    return why


def rootless_parent(args):
    """--rootless, the root side: checks the user, makes /dev/fuse usable (as the tests do), builds
    the cached rootfs tarball the user cannot write, turns the io_uring switch, then runs this script
    again as the user inside `unshare -rm --map-auto` (the user is root of a namespace mapping its
    /etc/subuid range, as for rootless podman: tar can restore the archive's owners) and drops the
    caches whenever that worker asks through a pipe. Returns the worker's exit status."""
    user = args.rootless_user
    why = missing_prerequisites(args)
    if why:
        log("overlay_bench.py --rootless: cannot run: " + "; ".join(why))
        return 2
    if os.stat("/dev/fuse").st_mode & 0o006 != 0o006:
        os.chmod("/dev/fuse", 0o666)
        log("/dev/fuse: mode 666 (a user's FUSE mounts need it)")
    sz = SIZES[size_name(args)]
    if not args.only or "untar" in args.only.split(","):
        rootfs_tar(sz["rootfs_mib"])
    old = uring_switch_on() if needs_uring_switch(args) else None
    up_r, up_w = os.pipe()      # worker -> parent: "d" = drop the caches now
    down_r, down_w = os.pipe()  # parent -> worker: "k" = dropped
    fds = [down_r, up_w]
    extra = ["--worker", f"{down_r},{up_w}"]
    if args.baseline:  # the worker starts in /: a relative path would not name the same file
        extra += ["--baseline", os.path.abspath(args.baseline)]
    if args.json:
        fd = os.open(args.json, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fds.append(fd)
        extra += ["--json-fd", str(fd)]
    env = dict(os.environ, STRATA_FS=os.path.abspath(STRATA_FS))
    try:
        p = subprocess.Popen(["runuser", "-u", user, "--", "unshare", "-rm", "--map-auto", "/usr/bin/python3",
                              os.path.abspath(__file__)] + sys.argv[1:] + extra,
                             pass_fds=fds, cwd="/", env=env)
        for fd in fds:
            os.close(fd)
        while os.read(up_r, 1):
            drop_caches()
            os.write(down_w, b"k")
        return p.wait()
    finally:
        if old is not None:
            uring_switch_restore(old)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller tree, one repetition (< 3 min)")
    ap.add_argument("--smoke", action="store_true", help="a tiny tree: checks that every workload runs and "
                    "gives the right result on every column, measures nothing (the bench_smoke test); skips "
                    "(77) without what it needs")
    ap.add_argument("--json", metavar="FILE", help="write raw samples and medians to FILE")
    ap.add_argument("--reps", type=int, help="repetitions per workload (default 3, --quick 1)")
    ap.add_argument("--only", metavar="KEYS", help="comma-separated workload keys to run")
    ap.add_argument("--impls", default=",".join(IMPLS), help="comma-separated implementations")
    ap.add_argument("--perf", metavar="DIR", help="perf record -g each FUSE daemon during the timed "
                    "part into DIR (perturbs those timings)")
    ap.add_argument("--keep", action="store_true", help="keep the run dir in /var/tmp")
    ap.add_argument("--baseline", metavar="BIN", help="also time this strata-fs binary (impl strata-base; "
                    "column s/b = strata-fs / it)")
    ap.add_argument("--uring", action="store_true", help="also time strata-fs over FUSE io_uring (impl "
                    "strata-uring; turns the kernel's enable_uring switch on for the run and restores it; "
                    "strata-fs then runs with uring=off; column u/s = strata-uring / strata-fs)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=OPTS",
                    help="also time strata-fs mounted with OPTS after its defaults, as column NAME "
                    "(repeatable; e.g. nopt=passthrough=off, wb=writeback=1, cs=copyup_sync=off); columns "
                    "NAME/s and NAME/k = it / strata-fs defaults, / kernel")
    ap.add_argument("--features", action="store_true", help="strata-fs with every performance feature on "
                    "(the kernel's enable_uring switch on for the run, as --uring) and one column per feature "
                    "off: " + ", ".join(f"{k}={v}" for k, v in FEATURES_OFF.items()) + " (rootless: no passthrough, "
                    "so only nouring)")
    ap.add_argument("--rootless", action="store_true", help="mount everything as an unprivileged user inside "
                    "unshare -rm --map-auto (as rootless podman does) and run the workloads there; kernel "
                    "overlayfs with userxattr, n/a if the kernel refuses it")
    ap.add_argument("--rootless-user", default=TEST_USER, metavar="USER",
                    help="the user of --rootless (needs a /etc/subuid range; default strata-test, the tests' user)")
    ap.add_argument("--list", action="store_true", help="list workload keys and the columns of a run with "
                    "these options, and exit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # "R,W": the rootless worker's pipe to its parent
    ap.add_argument("--json-fd", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.features and args.uring:
        ap.error("--features already runs strata-fs over io_uring (column nouring = /dev/fuse); drop --uring")
    if args.rootless and args.perf:
        ap.error("--perf records root mounts' daemons; it does not go with --rootless")
    global ROOTLESS
    ROOTLESS = args.rootless
    if args.features:
        args.variant += [f"{name}={opts}" for name, opts in FEATURES_OFF.items()
                         if not (ROOTLESS and opts.startswith("passthrough="))]
    for v in args.variant:
        name, eq, opts = v.partition("=")
        if not eq or not name or not opts:
            ap.error(f"--variant {v}: want NAME=OPTS")
        if name in IMPLS + ["strata-base", "strata-uring"] or name in VARIANTS or "/" in name:
            ap.error(f"--variant {v}: the name {name} is taken")
        VARIANTS[name] = opts
        if name not in args.impls.split(","):
            args.impls += "," + name
    if args.baseline:
        global STRATA_BASE
        STRATA_BASE = os.path.abspath(args.baseline)
        if "strata-base" not in args.impls.split(","):
            args.impls += ",strata-base"
    if args.uring and "strata-uring" not in args.impls.split(","):
        args.impls += ",strata-uring"
    for i in args.impls.split(","):
        if i not in IMPLS + list(VARIANTS) + (["strata-base"] if args.baseline else []) \
                + (["strata-uring"] if args.uring else []):
            ap.error(f"unknown implementation {i}")
    if args.list:
        for w in workloads():
            print(f"{w.key:16} {w.label}")
        print("columns: " + " ".join(args.impls.split(",")))
        return
    if args.smoke and args.worker is None:
        if args.rootless and os.geteuid() == 0 and args.rootless_user == TEST_USER:
            # as the rootless tests do (useradd gives a new user an /etc/subuid range)
            subprocess.run(["useradd", "-m", TEST_USER], capture_output=True)
        why = missing_prerequisites(args)
        if why:
            print("SKIP: " + "; ".join(why))
            sys.exit(77)
    if ROOTLESS and args.worker is None:
        sys.exit(rootless_parent(args))
    if args.worker:
        global DROP_PIPE
        DROP_PIPE = tuple(int(x) for x in args.worker.split(","))
    sys.exit(Bench(args).main())


if __name__ == "__main__":
    main()
