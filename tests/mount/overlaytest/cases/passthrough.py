"""FUSE passthrough on root mounts (fs/fuse/passthrough.hpp): open upper files are read,
written and mmapped by the kernel on the backing file, so the daemon sees no READ or WRITE
request; a reader opened on a lower file before a copy-up sees the copy, as on kernel
overlayfs; set-id bits are cleared by other users' writes as on the kernel.

Requests are counted in the daemon's debug log (libfuse prints each opcode), which is exact
and needs no timing. Each case also mounts with passthrough=off and checks the same count
is then non-zero, so the counter itself is shown to see the requests."""

import mmap
import os
import re

from ..core import case
from .. import env
from ..env import Skip
from .. import fixture as fx
from ..fixture import D, F

MIB = 1 << 20


def _requests(m, opcode):
    return len(re.findall(rf"opcode: {opcode}\b", m.stderr()))


def _negotiated(m):
    # The mount shows in mountinfo before the daemon has answered INIT; the first request on
    # it waits for that answer, and the daemon logs the negotiation before it sends it.
    os.stat(m.path)
    return "FUSE passthrough negotiated" in m.stderr()


def _upper_io(mnt):
    """Writes a new 4 MiB file, reads it back, appends to a lower file (copy-up) and reads
    it, changes a page of the new file through a shared mapping. Returns what it read."""
    out = {}
    p = os.path.join(mnt, "d", "new")
    blob = bytes(range(256)) * (4 * MIB // 256)
    with open(p, "wb") as f:
        f.write(blob)
    with open(p, "rb") as f:
        out["new"] = f.read() == blob
    with open(os.path.join(mnt, "d", "lower"), "ab") as f:
        f.write(b"+appended")
    with open(os.path.join(mnt, "d", "lower"), "rb") as f:
        out["lower"] = f.read()
    fd = os.open(p, os.O_RDWR)
    try:
        with mmap.mmap(fd, 4096) as mm:
            mm[0:4] = b"MMAP"
            mm.flush()
    finally:
        os.close(fd)
    with open(p, "rb") as f:
        out["mmap"] = f.read(4)
    return out


@case("passthrough-upper-io", "passthrough", ("root",))
def passthrough_upper_io(ctx):
    """As root, reads, writes and mmap of upper files (new and copied-up) send the daemon no
    READ and no WRITE, and the data is right on the mount and in the upper dir; with
    passthrough=off the same steps send both."""
    ctx.require_root()
    base = ctx.path("pt")
    counts = {}
    for opts in ("debug", "debug,passthrough=off"):
        lowers, up, work = fx.build_stack(os.path.join(base, opts.replace(",", "-")),
                                          [[D("d"), F("d/lower", "lower data")]], ctx.kernel_form)
        m = ctx.mount_fs(lowers, up, work, os.path.join(base, opts.replace(",", "-"), "mnt"), opts=opts)
        if opts == "debug" and not _negotiated(m):
            ctx.unmount(m)
            raise Skip("the kernel offers no FUSE passthrough (Linux 6.9+, CONFIG_FUSE_PASSTHROUGH)")
        got = _upper_io(m.path)
        counts[opts] = (_requests(m, "READ"), _requests(m, "WRITE"))
        ctx.log(f"{opts}: {got}, READ/WRITE requests {counts[opts]}")
        ctx.check(got["new"], f"{opts}: the new file read back differs")
        ctx.check(got["lower"] == b"lower data+appended", f"{opts}: copied-up file reads {got['lower']!r}")
        ctx.check(got["mmap"] == b"MMAP", f"{opts}: the mapped change reads back {got['mmap']!r}")
        ctx.unmount(m)
        with open(os.path.join(up, "d", "new"), "rb") as f:
            ctx.check(f.read(4) == b"MMAP", f"{opts}: the upper file lacks the mapped change")
        with open(os.path.join(up, "d", "lower"), "rb") as f:
            ctx.check(f.read() == b"lower data+appended", f"{opts}: the upper copy is wrong")
    ctx.check(counts["debug"] == (0, 0),
              f"with passthrough the daemon still served {counts['debug'][0]} READ and "
              f"{counts['debug'][1]} WRITE requests")
    ctx.check(counts["debug,passthrough=off"][0] > 0 and counts["debug,passthrough=off"][1] > 0,
              f"passthrough=off: the log shows {counts['debug,passthrough=off']} READ/WRITE requests; "
              "the counter does not see them")


def _reader_then_writer(mnt):
    """A reader opens a lower file, a writer opens it for writing (copy-up) and writes; what
    the reader, a new reader, and readers after each close see. Errors as 'E<name>'."""
    out = []
    p = os.path.join(mnt, "f")
    r = os.open(p, os.O_RDONLY)
    out.append(os.pread(r, 64, 0))
    try:
        w = os.open(p, os.O_RDWR)
    except OSError as e:
        out.append("E" + (os.strerror(e.errno)))
        os.close(r)
        w = os.open(p, os.O_RDWR)
        os.pwrite(w, b"CHANGED", 0)
        os.close(w)
        with open(p, "rb") as f:
            out.append(f.read())
        return out
    os.pwrite(w, b"CHANGED", 0)
    out.append(os.pread(r, 64, 0))
    r2 = os.open(p, os.O_RDONLY)
    out.append(os.pread(r2, 64, 0))
    os.close(r)
    r3 = os.open(p, os.O_RDONLY)
    out.append(os.pread(r3, 64, 0))
    for fd in (w, r2, r3):
        os.close(fd)
    with open(p, "rb") as f:
        out.append(f.read())
    return out


@case("passthrough-copyup-readers", "passthrough", ("root",))
def passthrough_copyup_readers(ctx):
    """A lower file open for reading, then opened for writing through the same name: the
    reader sees the write (kernel overlayfs reopens its real file at copy-up), as do new
    readers."""
    ctx.require_root()
    base = ctx.path("rw")
    results = {}
    for name, opts in (("kernel", None), ("auto", "debug")):
        lowers, up, work = fx.build_stack(os.path.join(base, name), [[F("f", "lower data")]], ctx.kernel_form)
        mnt = os.path.join(base, name, "mnt")
        m = ctx.mount_kernel(lowers, up, work, mnt) if opts is None else ctx.mount_fs(lowers, up, work, mnt, opts=opts)
        if name == "auto" and not _negotiated(m):
            ctx.unmount(m)
            raise Skip("the kernel offers no FUSE passthrough")
        results[name] = _reader_then_writer(m.path)
        ctx.log(f"{name}: {results[name]}")
        ctx.unmount(m)
    ctx.check(results["auto"] == results["kernel"],
              f"passthrough=auto: {results['auto']}, kernel overlayfs: {results['kernel']}")


@case("passthrough-setid-under-writer", "passthrough", ("root",))
def passthrough_setid_under_writer(ctx):
    """The kernel writes a passthrough file with the daemon's credentials, which keep set-id
    bits a writer without CAP_FSETID must clear. Root writing and then fchmod 04755 before
    closing (dpkg, tar) works. While another user has the file open for writing through the
    kernel, chmod adding set-id bits fails with ETXTBSY (a deliberate difference: kernel
    overlayfs allows it and clears the bits at that user's next write); after the writer
    closes it works, and a later write by that user clears them (the daemon serves it)."""
    ctx.require_root()
    base = ctx.path("setid")
    lowers, up, work = fx.build_stack(base, [[D("d", mode=0o777)]], ctx.kernel_form)
    m = ctx.mount_fs(lowers, up, work, os.path.join(base, "mnt"), opts="debug")
    if not _negotiated(m):
        ctx.unmount(m)
        raise Skip("the kernel offers no FUSE passthrough")
    # Root: write, then set-uid through the open fd, as dpkg does.
    p = os.path.join(m.path, "d", "by-root")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o755)
    os.write(fd, b"binary")
    try:
        os.fchmod(fd, 0o4755)
        got = "ok"
    except OSError as e:
        got = os.strerror(e.errno)
    os.close(fd)
    ctx.check(got == "ok", f"root's fchmod 04755 of a file it writes: {got}")
    ctx.check(os.stat(p).st_mode & 0o7777 == 0o4755, f"mode {oct(os.stat(p).st_mode)}")

    # Another user holds it open for writing.
    p = os.path.join(m.path, "d", "prog")
    with open(p, "wb") as f:
        f.write(b"one")
    os.chmod(p, 0o777)
    os.setegid(4321)
    os.seteuid(4321)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    finally:
        os.seteuid(0)
        os.setegid(0)
    try:
        os.chmod(p, 0o4777)
        got = "ok"
    except OSError as e:
        got = os.strerror(e.errno)
    ctx.check(got == os.strerror(26), f"chmod u+s under uid 4321's passthrough writer: {got}, want ETXTBSY")
    ctx.check(os.stat(p).st_mode & 0o7777 == 0o777, f"mode now {oct(os.stat(p).st_mode)}")
    os.close(fd)
    os.chmod(p, 0o4777)
    ctx.check(os.stat(p).st_mode & 0o7777 == 0o4777, f"chmod after close: {oct(os.stat(p).st_mode)}")
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(4321, 4321, 4321)
            os.setresuid(4321, 4321, 4321)
            with open(p, "ab") as f:
                f.write(b"two")
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    ctx.check(status == 0, "uid 4321 could not append")
    mode = os.stat(p).st_mode & 0o7777
    ctx.check(mode == 0o777, f"after a write by uid 4321 the mode is {oct(mode)}, want 0o777")

    # Root without CAP_FSETID writing through the kernel is such a writer too (it kept the
    # set-uid bit its writes must clear: the daemon took uid 0 for CAP_FSETID).
    p = os.path.join(m.path, "d", "nocap")
    with open(p, "wb") as f:
        f.write(b"one")
    os.chmod(p, 0o755)
    opened, go = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            env.drop_capability(env.CAP_FSETID)
            fd = os.open(p, os.O_WRONLY | os.O_APPEND)
            os.write(opened[1], b"x")
            os.read(go[0], 1)
            os.write(fd, b"two")
            os.close(fd)
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.read(opened[0], 1)
    try:
        os.chmod(p, 0o4755)
        got = "ok"
    except OSError as e:
        got = os.strerror(e.errno)
    os.write(go[1], b"x")
    _, status = os.waitpid(pid, 0)
    ctx.check(status == 0, "root without CAP_FSETID could not append")
    mode = os.stat(p).st_mode & 0o7777
    ctx.check(got == os.strerror(26) or mode == 0o755,
              f"chmod u+s under a passthrough writer without CAP_FSETID: {got}, then mode {oct(mode)} "
              "(the kernel kept the bit on its write)")
    ctx.unmount(m)


def _lower_reads(mnt):
    """Reads every lower file whole, by read(2) and through a private mapping, and the
    hardlinked pair through both names at once. Returns {name: bytes read}."""
    out = {}
    for name in ("d/big", "d/small", "d/setuid", "d/link-a", "d/link-b"):
        p = os.path.join(mnt, name)
        with open(p, "rb") as f:
            out[name] = f.read()
        fd = os.open(p, os.O_RDONLY)
        try:
            with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as mm:
                out[name + " mmap"] = mm[:]
        finally:
            os.close(fd)
    a = os.open(os.path.join(mnt, "d/link-a"), os.O_RDONLY)
    b = os.open(os.path.join(mnt, "d/link-b"), os.O_RDONLY)
    out["both names"] = os.pread(a, 64, 0) + os.pread(b, 64, 0)
    os.close(a)
    os.close(b)
    return out


@case("passthrough-readonly-lower", "passthrough", ("root",))
def passthrough_readonly_lower(ctx):
    """On a read-only mount (no upper layer, or -o ro with one) nothing is ever copied up, so
    lower files are passthrough too: reads and mmap of them send the daemon no READ and read
    the same bytes as the layer files (a set-id file and a hardlinked pair included). With an
    upper layer and rw, lower files stay with the daemon (a reader opened before a copy-up must
    move to the copy), and passthrough=off sends READs either way."""
    ctx.require_root()
    base = ctx.path("rolower")
    big = bytes(range(256)) * (3 * MIB // 256) + b"tail"
    tree = [[D("d"), F("d/big", big), F("d/small", "small lower file"),
             F("d/setuid", "set-uid program", mode=0o4755), F("d/link-a", "linked data")]]
    reads = {}
    for name, has_upper, opts in (("no-upper", False, "debug"), ("ro", True, "debug,ro"),
                                  ("rw", True, "debug"), ("no-upper-off", False, "debug,passthrough=off")):
        lowers, up, work = fx.build_stack(os.path.join(base, name), tree, ctx.kernel_form)
        os.link(os.path.join(lowers[0], "d/link-a"), os.path.join(lowers[0], "d/link-b"))
        mnt = os.path.join(base, name, "mnt")
        m = ctx.mount_fs(lowers, up if has_upper else None, work if has_upper else None, mnt, opts=opts)
        if name == "no-upper" and not _negotiated(m):
            ctx.unmount(m)
            raise Skip("the kernel offers no FUSE passthrough (Linux 6.9+, CONFIG_FUSE_PASSTHROUGH)")
        got = _lower_reads(m.path)
        reads[name] = _requests(m, "READ")
        ctx.log(f"{name} ({opts}): {reads[name]} READ requests")
        for f in ("d/big", "d/small", "d/setuid", "d/link-a", "d/link-b"):
            with open(os.path.join(lowers[0], f), "rb") as src:
                want = src.read()
            ctx.check(got[f] == want and got[f + " mmap"] == want, f"{name}: {f} reads differ from the layer file")
        ctx.check(got["both names"] == b"linked data" * 2, f"{name}: the hardlinked pair read {got['both names']!r}")
        ctx.unmount(m)
    ctx.check(reads["no-upper"] == 0, f"no upper layer: the daemon served {reads['no-upper']} READs of lower files")
    ctx.check(reads["ro"] == 0, f"-o ro: the daemon served {reads['ro']} READs of lower files")
    ctx.check(reads["rw"] > 0, "rw with an upper: lower files were passthrough (a copy-up could not move their readers)")
    ctx.check(reads["no-upper-off"] > 0, "passthrough=off: the log shows no READ; the counter does not see them")


def _replace_beside(mnt, layer):
    """Opens g, replaces the layer's g by a rename beside the mount (as an editor or a
    package manager does), opens g again while the first open lasts. Returns what each open
    read, or the error of the second."""
    first = open(os.path.join(mnt, "g"), "rb")
    try:
        new = os.path.join(layer, "g.new")
        with open(new, "wb") as f:
            f.write(b"replaced beside the mount\n")
        os.rename(new, os.path.join(layer, "g"))
        try:
            with open(os.path.join(mnt, "g"), "rb") as second:
                again = second.read()
        except OSError as e:
            again = f"open: {os.strerror(e.errno)}"
        return first.read(), again
    finally:
        first.close()


@case("passthrough-readonly-replaced-lower", "passthrough", ("root",))
def passthrough_readonly_replaced_lower(ctx):
    """A lower file replaced by a rename in its layer dir while a passthrough open of it lasts
    (read-only mount): a new open of the name reads what kernel overlayfs reads — the file the
    mount looked up, which it keeps showing — instead of failing. The kernel lets an inode
    have one backing file, and the name now opens another: strata-fs answered ETXTBSY."""
    ctx.require_root()
    base = ctx.path("roreplaced")
    tree = [[F("top", "top layer")], [F("g", "the lower file\n")]]
    got = {}
    for name in ("kernel", "fs"):
        lowers, _, _ = fx.build_stack(os.path.join(base, name), tree, ctx.kernel_form)
        mnt = os.path.join(base, name, "mnt")
        os.makedirs(mnt)
        if name == "kernel":
            m = ctx.mount_kernel(lowers, None, None, mnt, opts="")
        else:
            m = ctx.mount_fs(lowers, None, None, mnt, opts="debug")
            if not _negotiated(m):
                ctx.unmount(m)
                raise Skip("the kernel offers no FUSE passthrough (Linux 6.9+, CONFIG_FUSE_PASSTHROUGH)")
        got[name] = _replace_beside(mnt, lowers[1])
        ctx.log(f"{name}: {got[name]}")
        ctx.unmount(m)
    ctx.check(got["fs"] == got["kernel"], f"a lower file replaced beside the mount: strata-fs read {got['fs']}, "
              f"kernel overlayfs {got['kernel']}")


def _init_reply_writeback(m):
    """Whether the INIT reply the daemon logged (libfuse's debug output: the reply's
    `   flags=0x...` line, indented) asks for the writeback cache (FUSE_WRITEBACK_CACHE)."""
    os.stat(m.path)  # answered after INIT
    replies = re.findall(r"debug:\s{3,}flags=0x([0-9a-f]+)", m.stderr())
    if not replies:
        raise AssertionError("no INIT reply in the daemon's debug log")
    return bool(int(replies[-1], 16) & 0x10000)


@case("io-mode-defaults", "passthrough", ("root", "rootless", "userns"))
def io_mode_defaults(ctx):
    """Without writeback=, a writable mount gets the kernel's writeback cache where passthrough
    cannot be (rootless, a user namespace: as fuse-overlayfs has it) and not as root (there
    passthrough writes, and the kernel turns it off under the cache); a read-only mount never;
    writeback=0|1 decides when given."""
    if os.environ.get("OVERLAYTEST_FS_OPTS"):
        raise Skip("run.py --fs-opts gives every mount options of its own: the defaults are not what runs")
    base = ctx.path("iomode")
    rootful = ctx.mode == "root"
    want = {"default": not rootful, "readonly": False, "wb0": False, "wb1": True}
    for name, opts, has_upper in (("default", "debug", True), ("readonly", "debug", False),
                                  ("wb0", "debug,writeback=0", True), ("wb1", "debug,writeback=1", True)):
        lowers, up, work = fx.build_stack(os.path.join(base, name), [[F("f", "data")]], ctx.kernel_form)
        mnt = os.path.join(base, name, "mnt")
        m = ctx.mount_fs(lowers, up if has_upper else None, work if has_upper else None, mnt, opts=opts)
        got = _init_reply_writeback(m)
        ctx.log(f"{ctx.mode} {name} ({opts}): writeback cache {'on' if got else 'off'}")
        if has_upper:  # the cache in use: a write and its read-back through the mount
            with open(os.path.join(m.path, "f"), "ab") as f:
                f.write(b"+more")
            with open(os.path.join(m.path, "f"), "rb") as f:
                ctx.check(f.read() == b"data+more", f"{name}: the appended file reads back wrong")
        ctx.unmount(m)
        ctx.check(got == want[name], f"{ctx.mode}, {name} ({opts}): writeback cache {'on' if got else 'off'}, "
                  f"want {'on' if want[name] else 'off'}")
