#!/usr/bin/python3
"""Reads of a big file in a lazy layer are served from the blob at their offset, not from a copy
of the whole file: a file bigger than the reader's chunk cache (64 MiB), in a gzip layer (many
checkpoints) and a zstd layer of one frame (no checkpoint inside it), read whole, at and across
every 512 KiB chunk boundary (O_DIRECT, so the daemon sees those exact offsets), by four
concurrent readers, through mmap, through lseek(SEEK_DATA/SEEK_HOLE); and copied
(copy_file_range) and copied up under a writable mount whose lower is the lazy layer. Every byte is compared with the
file itself, and the daemon must hold no copy of the file (no memfd with pages)."""
import gzip
import hashlib
import io
import mmap
import os
import random
import shutil
import subprocess
import sys
import tarfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
need_tools("zstd", "fusermount3")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")
STRATA_FS = os.environ.get("STRATA_FS", "strata-fs")

CHUNK = 512 * 1024
SIZE = 80 << 20  # more than the 64 MiB chunk cache
work = workdir()
mounts = []


def content():
    # Random and text halves per MiB (compresses about 2:1), with an odd tail.
    rnd = random.Random(15)
    out = bytearray()
    text = (b"lazy layers stream their reads from the blob\n" * 30000)[: 1 << 19]
    while len(out) < SIZE:
        out += rnd.randbytes(1 << 19) + text
    return bytes(out[: SIZE - 12345])


def daemon_of(mnt):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"strata-fs") and mnt.encode() in args:
            return int(pid)
    raise AssertionError(f"no strata-fs serving {mnt}")


def memfd_pages(pid):
    """Bytes of data the daemon holds in memfds (a materialized file would be one)."""
    total = 0
    fds = f"/proc/{pid}/fd"
    for n in os.listdir(fds):
        try:
            if os.readlink(os.path.join(fds, n)).startswith("/memfd:"):
                total += os.stat(os.path.join(fds, n)).st_blocks * 512
        except OSError:
            pass
    return total


def check_reads(path, data, name):
    size = len(data)
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest(), f"{name}: whole read differs"
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        # At and across every chunk boundary, backwards so no read continues the previous one.
        for b in range(size // CHUNK * CHUNK, 0, -CHUNK):
            for off, n in ((b - 7, 7), (b - 3, 100), (b, 4096), (b - 4096, CHUNK + 8192)):
                got = os.pread(fd, n, off)
                assert got == data[off:off + n], f"{name}: pread({n}, {off}) differs"
        assert os.pread(fd, 100, size - 50) == data[size - 50:], f"{name}: read over the end differs"
        assert os.pread(fd, 10, size + 10) == b"", f"{name}: read past the end"
    finally:
        os.close(fd)

    errors = []

    def reader(seed):
        rnd = random.Random(seed)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            for _ in range(60):
                off = rnd.randrange(size)
                n = rnd.choice((1, 4096, 65536, 300000, 1 << 20))
                if os.pread(fd, n, off) != data[off:off + n]:
                    errors.append(f"reader {seed}: pread({n}, {off}) differs")
                    return
        finally:
            os.close(fd)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"{name}: concurrent readers: {errors}"

    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        try:
            for off in (0, CHUNK - 1, 3 * CHUNK + 5, size // 2, size - 4097):
                assert m[off:off + 8192] == data[off:off + 8192], f"{name}: mmap at {off} differs"
            assert hashlib.sha256(m).digest() == hashlib.sha256(data).digest(), f"{name}: mmap differs"
        finally:
            m.close()
        assert os.lseek(f.fileno(), 100, os.SEEK_DATA) == 100, f"{name}: SEEK_DATA"
        assert os.lseek(f.fileno(), 100, os.SEEK_HOLE) == size, f"{name}: SEEK_HOLE"


def copy_range_check(src, dst, data, name):
    """copy_file_range within the mount, from the lazy file to a new upper file."""
    size = len(data)
    with open(src, "rb") as f, open(dst, "wb") as o:
        done = 0
        while done < size:
            n = os.copy_file_range(f.fileno(), o.fileno(), size - done, done, done)
            assert n > 0, f"{name}: copy_file_range stopped at {done}"
            done += n
    with open(dst, "rb") as o:
        assert o.read() == data, f"{name}: copy_file_range differs"


try:
    data = content()
    tar_path = os.path.join(work, "layer.tar")
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("big/file.bin")
        ti.size = len(data)
        ti.mode = 0o644
        t.addfile(ti, io.BytesIO(data))
    with open(tar_path, "rb") as f:
        tar_bytes = f.read()
    diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    gz = gzip.compress(tar_bytes, compresslevel=1)
    zst = subprocess.run(["zstd", "-q", "-3", "-c", tar_path], capture_output=True, check=True).stdout
    os.unlink(tar_path)
    del tar_bytes

    cache = os.path.join(work, "cache")
    for name, blob, media in (("gzip", gz, "application/vnd.oci.image.layer.v1.tar+gzip"),
                              ("zstd", zst, "application/vnd.oci.image.layer.v1.tar+zstd")):
        layout = os.path.join(work, "img-" + name)
        digest = one_layer_layout(layout, blob, diff_id, media)
        mnt = os.path.join(work, "mnt-" + name)
        os.makedirs(mnt)
        strata(cache, "mount", "--lazy", layout, mnt, timeout=300)
        mounts.append(mnt)
        path = os.path.join(mnt, "big/file.bin")
        assert os.stat(path).st_size == len(data)
        pid = daemon_of(mnt)
        with open(path, "rb") as held:  # open while everything is read: nothing materialized
            check_reads(path, data, name)
            held_pages = memfd_pages(pid)
        assert held_pages == 0, f"{name}: the daemon holds {held_pages} bytes of the file in memfds"
        run("fusermount3", "-u", mnt)
        mounts.remove(mnt)
        print(f"{name}: streamed reads equal the file")

        # Copy-up: a writable mount whose lower is the lazy layer (its descriptor file).
        desc = os.path.join(work, f"layer-{name}.desc")
        with open(desc, "w") as f:
            f.write(f"strata-lazy-layer 1\nindex={cache}/lazy/index/sha256-{digest[7:]}\n"
                    f"blob={layout}/blobs/sha256/{digest[7:]}\noffset=0\n")
        upper, wd = os.path.join(work, "upper-" + name), os.path.join(work, "work-" + name)
        os.makedirs(upper)
        os.makedirs(wd)
        run(STRATA_FS, "-o", f"lowerdir={desc},upperdir={upper},workdir={wd}", mnt)
        mounts.append(mnt)
        copy_range_check(os.path.join(mnt, "big/file.bin"), os.path.join(mnt, "copy.bin"), data, name)
        with open(os.path.join(mnt, "big/file.bin"), "ab") as f:
            f.write(b"appended")
        run("fusermount3", "-u", mnt)
        mounts.remove(mnt)
        with open(os.path.join(upper, "big/file.bin"), "rb") as f:
            assert f.read() == data + b"appended", f"{name}: the copied-up file differs"
        print(f"{name}: copy-up equals the file")
    print("PASS")
finally:
    for m in mounts:
        subprocess.run(["fusermount3", "-u", m])
    shutil.rmtree(work, ignore_errors=True)
