"""Shared helpers for strata's layer-store end-to-end tests (python3, stdlib only)."""
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


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def need_root():
    if os.geteuid() != 0:
        skip("needs root (overlay mounts, chown, whiteout device nodes)")


def need_tools(*tools):
    for t in tools:
        if shutil.which(t) is None:
            skip(f"{t} not installed")


def run(*args, check=True, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def strata(root, *args, check=True, **kw):
    return run(STRATA, "--root", root, *args, check=check, **kw)


def workdir():
    d = tempfile.mkdtemp(prefix="strata-ls-")
    return d


def build_umoci_image(layout, tag="v1", extra_layer=None):
    """busybox-static base + layers that add, change and delete files, an opaque dir,
    hardlinks, symlinks, xattrs, setuid and other owners."""
    b = layout + ".bundle"
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", f"{layout}:{tag}")

    def layer(fn):
        run("umoci", "unpack", "--image", f"{layout}:{tag}", b)
        fn(os.path.join(b, "rootfs"))
        run("umoci", "repack", "--image", f"{layout}:{tag}", b)
        shutil.rmtree(b)

    def base(r):
        for d in ("bin", "etc", "data/sub", "opq/deep", "dev"):
            os.makedirs(os.path.join(r, d), exist_ok=True)
        shutil.copy("/bin/busybox", os.path.join(r, "bin/busybox"))
        os.symlink("busybox", os.path.join(r, "bin/sh"))
        for name, text in (("etc/hello", "hello\n"), ("data/keep", "keep\n"), ("data/gone", "gone\n"),
                           ("opq/old", "old\n"), ("data/sub/x", "x\n"), ("opq/deep/d", "d\n")):
            with open(os.path.join(r, name), "w") as f:
                f.write(text)
        os.mknod(os.path.join(r, "dev/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mkfifo(os.path.join(r, "dev/fifo"))

    def change(r):
        with open(os.path.join(r, "etc/hello"), "w") as f:
            f.write("changed\n")
        os.unlink(os.path.join(r, "data/gone"))
        os.link(os.path.join(r, "data/keep"), os.path.join(r, "data/keep.hard"))
        os.symlink("../etc/hello", os.path.join(r, "data/hello.link"))
        os.setxattr(os.path.join(r, "data/keep"), "user.test", b"val")
        shutil.rmtree(os.path.join(r, "data/sub"))

    def owners(r):
        os.makedirs(os.path.join(r, "added"))
        p = os.path.join(r, "added/a")
        with open(p, "w") as f:
            f.write("a" * 5000)
        os.chown(p, 1000, 1000)
        os.chmod(p, 0o4755)
        os.chmod(os.path.join(r, "added"), 0o750)

    layer(base)
    layer(change)
    layer(owners)
    if extra_layer:
        layer(extra_layer)
    # An opaque dir: /opq keeps only what this layer puts there.
    empty = layout + ".empty"
    os.makedirs(empty)
    with open(os.path.join(empty, "new"), "w") as f:
        f.write("new\n")
    run("umoci", "insert", "--image", f"{layout}:{tag}", "--opaque", empty, "/opq")
    shutil.rmtree(empty)


def umoci_image_with_reference(work, tag="v1"):
    """build_umoci_image into WORK/img, plus the listing of `umoci unpack` of it: the tree every
    strata view of the image must equal. Returns (layout, reference listing)."""
    layout = os.path.join(work, "img")
    build_umoci_image(layout, tag)
    run("umoci", "unpack", "--image", f"{layout}:{tag}", os.path.join(work, "ref"))
    return layout, listing(os.path.join(work, "ref", "rootfs"))


def one_layer_layout(path, blob, diff_id=None, media_type="application/vnd.oci.image.layer.v1.tar"):
    """A one-layer OCI layout (untagged) at `path` around a layer blob. diff_id defaults to the
    blob's own digest (an uncompressed tar). Returns the layer blob's digest."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def put(b):
        d = hashlib.sha256(b).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(b)
        return "sha256:" + d

    layer = put(blob)
    if diff_id is None:
        diff_id = layer
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config),
                                      "size": len(config)},
                           "layers": [{"mediaType": media_type, "digest": layer, "size": len(blob)}]}).encode()
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                      "digest": put(manifest), "size": len(manifest)}]}, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return layer


def corrupt_biggest_blob(layout):
    """Flips one bit in the middle of an OCI layout's biggest blob (a layer): it no longer
    matches its digest or diff_id. Returns the blob's path."""
    blobs = os.path.join(layout, "blobs", "sha256")
    path = os.path.join(blobs, max(os.listdir(blobs), key=lambda n: os.path.getsize(os.path.join(blobs, n))))
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x20]))
    return path


def listing(root):
    """Every entry below root: type, mode, owner, size, content hash, link target, xattrs, nlink."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            ent = [stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid]
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    ent += [st.st_size, hashlib.sha256(f.read()).hexdigest(), st.st_nlink, int(st.st_mtime)]
            elif stat.S_ISLNK(st.st_mode):
                ent.append(os.readlink(p))
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                ent.append(st.st_rdev)
            try:
                xs = sorted(x for x in os.listxattr(p, follow_symlinks=False)
                            if not x.startswith(("trusted.overlay.", "security.selinux")))
                ent.append({x: os.getxattr(p, x, follow_symlinks=False) for x in xs})
            except OSError:
                pass
            out[rel] = ent
    return out


def diff_listings(a, b):
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            lines.append(f"{k}: {a.get(k)} != {b.get(k)}")
    return lines


def tree_hash(root):
    """Hash of a whole store tree (names, types, modes, owners, contents, link targets,
    xattrs) to prove a failed command changed nothing."""
    h = hashlib.sha256()
    if not os.path.exists(root):
        return "absent"
    for k, v in sorted(listing(root).items()):
        if isinstance(v[-1], dict):
            v = v[:-1] + [sorted(v[-1].items())]
        # mtimes of dirs are not part of the listing; file mtimes are
        h.update(repr((k, v)).encode())
    return h.hexdigest()


def image_layers(root, image):
    import json
    info = json.loads(strata(root, "inspect", image).stdout)[0]
    return [os.path.join(root, "overlay2", l["cache_id"], "diff") for l in info["Layers"]]


def data_map(path):
    """The (data start, hole start) pairs SEEK_DATA/SEEK_HOLE give."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size, off = os.fstat(fd).st_size, 0
        while off < size:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            h = os.lseek(fd, d, os.SEEK_HOLE)
            out.append((d, h))
            off = h
    finally:
        os.close(fd)
    return out


class FuseMounts(list):
    """Mount points made under WORK/mnt, in order; unmount_all() at the end unmounts those
    still mounted, so a failing test leaves no FUSE mount behind."""

    def __init__(self, work):
        super().__init__()
        self.base = os.path.join(work, "mnt")

    def new(self, name):
        mnt = os.path.join(self.base, name)
        os.makedirs(mnt)
        self.append(mnt)
        return mnt

    @staticmethod
    def umount(mnt):
        subprocess.run(["fusermount3", "-u", mnt], check=False)

    def unmount_all(self):
        for m in self:
            if os.path.ismount(m):
                self.umount(m)


def conclude(failures, passed):
    """Prints the failures and exits 1, or prints PASS (passed)."""
    if failures:
        print("FAILED:\n" + "\n".join(failures))
        sys.exit(1)
    print(f"PASS ({passed})")


class OverlayMount:
    """Read-only kernel overlayfs of an image's layers (top-most lower first)."""

    def __init__(self, layers, work):
        self.mnt = os.path.join(work, "mnt")
        empty = os.path.join(work, "empty-lower")
        os.makedirs(self.mnt, exist_ok=True)
        os.makedirs(empty, exist_ok=True)
        lowers = ":".join(list(reversed(layers)) + [empty])
        run("mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lowers}", self.mnt)

    def __enter__(self):
        return self.mnt

    def __exit__(self, *exc):
        run("umount", self.mnt, check=False)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc=None, what="server"):
    import socket
    import time
    for _ in range(150):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not start on 127.0.0.1:{port}")


class Registry:
    """Debian's docker-registry on 127.0.0.1 with its own config and storage under `work`;
    optional TLS (cert and key files), htpasswd (bcrypt file) auth, or token auth
    (realm, service, issuer, root cert bundle). Use as a context
    manager, or call stop(); `addr` is "127.0.0.1:PORT"."""

    def __init__(self, work, name="registry", tls=None, htpasswd=None, token=None):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.storage = os.path.join(work, name)
        cfg = os.path.join(work, name + ".yml")
        text = (f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
                f"  delete:\n    enabled: true\nhttp:\n  addr: {self.addr}\n")
        if tls:
            text += f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
        if htpasswd:
            text += f"auth:\n  htpasswd:\n    realm: strata-test\n    path: {htpasswd}\n"
        if token:
            text += (f"auth:\n  token:\n    realm: {token[0]}\n    service: {token[1]}\n    issuer: {token[2]}\n"
                     f"    rootcertbundle: {token[3]}\n")
        with open(cfg, "w") as f:
            f.write(text)
        self.log = open(os.path.join(work, name + ".log"), "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, self.proc, "docker-registry")
        except Exception:
            self.stop()
            raise

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
