"""File I/O through the mount: mmap, O_APPEND, O_TRUNC, fallocate, fsync, locks, statfs."""

import os

from .. import env
from .. import fixture as fx
from ..core import case
from ..fixture import F


def io_layers():
    return [[F("mm", "0123456789" * 500), F("app", "start\n"), F("tr", "to be truncated"),
             F("fa", "short"), F("sync", "s"), F("lock", "l" * 100), F("ro", "r", mode=0o444)]]


def io_script(t):
    t.mmap_write("mm", 4096 - 5, b"ACROSS-A-PAGE")
    t.read("mm")
    t.write("app", "one\n", "a")
    t.write("app", "two\n", "a")
    t.read("app")
    t.write("tr", "new", "t")
    t.read("tr")
    t.open_flags("tr", os.O_WRONLY | os.O_TRUNC, "open(tr,O_TRUNC)")
    t.stat("tr", fields=("size",))
    t.fallocate("fa", 0, 1 << 20)
    t.stat("fa", fields=("size",))
    t.read("fa")
    t.fallocate("fa", 4 << 20, 4096)
    t.stat("fa", fields=("size",))
    t.write("sync", "synced", "w")
    t.fsync("sync")
    t.fsync("sync", data_only=True)
    t.locks("lock")
    t.create("newfile")
    t.mmap_write("mm", 0, b"again")
    t.open_flags("ro", os.O_RDWR, "open(ro,O_RDWR) as root")
    t.read("mm")


@case("file-io", "fileops", ("root", "rootless", "userns"))
def file_io(ctx):
    """Shared writable mmap, O_APPEND, O_TRUNC, fallocate, fsync/fdatasync, flock, fcntl locks."""
    ctx.differential("io", io_layers(), io_script, share_lowers=True)


def statfs_of(path):
    s = os.statvfs(path)
    return {"total_bytes": s.f_blocks * s.f_frsize, "total_inodes": s.f_files,
            "namemax": s.f_namemax}


@case("statfs", "fileops", ("root",))
def statfs(ctx):
    """statfs reports the upper's filesystem, and the top lower's when read-only."""
    ctx.require_root()
    base = ctx.path("statfs")
    results = {}
    for side in ("k", "f"):
        t = os.path.join(base, side, "tmpfs")
        os.makedirs(t)
        env.run(["mount", "-t", "tmpfs", "-o", "size=48m,nr_inodes=5000", "tmpfs", t], check=True)
        ctx.mounts.append(_Tmpfs(t))
        lowers = [os.path.join(base, side, "lower")]
        fx.build_layer(lowers[0], [F("x", "x")], ctx.kernel_form)
        up, work = os.path.join(t, "upper"), os.path.join(t, "work")
        os.makedirs(up)
        os.makedirs(work)
        mnt = os.path.join(base, side, "mnt")
        m = ctx.mount_kernel(lowers, up, work, mnt) if side == "k" else \
            ctx.mount_fs(lowers, up, work, mnt)
        results[side] = statfs_of(m.path)
        ctx.unmount(m)
        # Read-only: the tmpfs holds the top lower now.
        ro_top = os.path.join(t, "rolower")
        fx.build_layer(ro_top, [F("y", "y")], ctx.kernel_form)
        mnt = os.path.join(base, side, "rmnt")
        m = ctx.mount_kernel([ro_top, lowers[0]], None, None, mnt) if side == "k" else \
            ctx.mount_fs([ro_top, lowers[0]], None, None, mnt)
        results[side + "-ro"] = statfs_of(m.path)
        ctx.unmount(m)
    for k in ("", "-ro"):
        a, b = results["k" + k], results["f" + k]
        for f in ("total_bytes", "total_inodes"):
            ctx.check(a[f] == b[f], f"statfs{k or ' rw'} {f}: kernel={a[f]} fs={b[f]}")
    ctx.log(f"statfs: {results}")


class _Tmpfs:
    def __init__(self, path):
        self.path = path

    def stop(self):
        if env.is_mounted(self.path):
            env.run(["umount", "-l", self.path])
