"""Helpers for the registry (pull/push) tests: the layer-store test library plus images in
a loopback docker-registry, a multi-arch index, and a relay that cuts a connection."""
import hashlib
import json
import os
import shutil
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "layerstore"))
from strata_test_lib import *  # noqa: E402,F401,F403


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def one_line_error(r, *words):
    """A failed command: non-zero exit, exactly one stderr line, naming every word."""
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode != 0, f"expected failure, got 0:\n{r.stdout}\n{r.stderr}"
    assert len(lines) == 1, f"want one error line, got:\n{r.stderr}"
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
    return lines[0]


def skopeo_push(src, dest, *extra):
    run("skopeo", "copy", "-q", "--dest-tls-verify=false", *extra, src, "docker://" + dest)


def add_arm64_index(layout, tag="v1", index_tag="multi"):
    """Adds to an OCI layout an image index `index_tag` with two platforms: the image `tag`
    as linux/amd64 and a copy whose config says arm64 (same layers). Returns
    (amd64 config digest, arm64 config digest)."""
    blobs = os.path.join(layout, "blobs", "sha256")

    def get(d):
        with open(os.path.join(blobs, d[7:]), "rb") as f:
            return f.read()

    def put(b):
        d = sha(b)
        with open(os.path.join(blobs, d[7:]), "wb") as f:
            f.write(b)
        return d

    index = json.load(open(os.path.join(layout, "index.json")))
    desc = next(d for d in index["manifests"] if d["annotations"]["org.opencontainers.image.ref.name"] == tag)
    manifest = json.loads(get(desc["digest"]))
    config = json.loads(get(manifest["config"]["digest"]))
    config["architecture"] = "arm64"
    config["variant"] = "v8"
    arm_cfg = json.dumps(config).encode()
    arm_cfg_d = put(arm_cfg)
    manifest["config"] = dict(manifest["config"], digest=arm_cfg_d, size=len(arm_cfg))
    arm_m = json.dumps(manifest).encode()
    idx = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(arm_m), "size": len(arm_m),
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        dict(desc, annotations={}, platform={"architecture": "amd64", "os": "linux"}),
    ]}).encode()
    index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": put(idx),
                               "size": len(idx),
                               "annotations": {"org.opencontainers.image.ref.name": index_tag}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    amd_cfg = json.loads(get(desc["digest"]))["config"]["digest"]
    return amd_cfg, arm_cfg_d


def inspect(root, image):
    return json.loads(strata(root, "inspect", image).stdout)[0]


def rootfs_listing(root, image, work):
    with OverlayMount(image_layers(root, image), work) as mnt:
        return listing(mnt)


def make_test_ca(work):
    """A test CA and a server certificate for 127.0.0.1 (IP SAN, serverAuth) it signs, made
    with openssl under `work`. Returns (certs, crt, key): certs is a --cert-dir holding only
    the CA's ca.crt; crt and key are the server's."""
    certs = os.path.join(work, "certs")
    os.makedirs(certs)
    ca_key, ca_crt = os.path.join(work, "ca.key"), os.path.join(certs, "ca.crt")
    key, csr, crt = (os.path.join(work, n) for n in ("srv.key", "srv.csr", "srv.crt"))
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt,
        "-days", "2", "-subj", "/CN=strata test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext = os.path.join(work, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return certs, crt, key


def teardown(work, reg, *fronts):
    """A test's cleanup: closes each of `fronts` (fronts, relays: anything with close()) that
    was started (not None), in order, then stops the registry if started, then removes work."""
    for s in fronts:
        if s:
            s.close()
    if reg:
        reg.stop()
    shutil.rmtree(work, ignore_errors=True)


class Relay:
    """A TCP relay on 127.0.0.1 in front of `port`. With cut_after=N, the first connection
    that carries more than N bytes from the server is closed there, once. Records whether a
    client sent a Range request."""

    def __init__(self, port, cut_after=None):
        self.target = port
        self.cut_after = cut_after
        self.cut_done = False
        self.saw_range = False
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(c, s, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, True), daemon=True).start()

    def _pump(self, src, dst, from_server):
        total = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not from_server and b"\r\nRange: bytes=" in data:
                    self.saw_range = True
                if from_server and self.cut_after is not None:
                    with self.lock:
                        cut = not self.cut_done and total + len(data) > self.cut_after
                        if cut:
                            self.cut_done = True
                    if cut:
                        dst.sendall(data[:self.cut_after - total])
                        break
                total += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.sock.close()


def private_network(hosts, extra_addrs=()):
    """Moves this process (and every child) into its own network and mount namespaces, so a
    test can give names any address without touching the host: loopback up, `extra_addrs`
    (non-loopback addresses, e.g. "10.213.0.1") added to this namespace's lo, and /etc/hosts
    replaced, in this mount namespace only, by one mapping each name of `hosts` to its
    address. Call it first thing: unshare(CLONE_NEWNS) refuses a process with threads."""
    import ctypes
    import tempfile
    need_tools("ip", "mount")
    clone_newns, clone_newnet = 0x00020000, 0x40000000
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(clone_newns | clone_newnet) != 0:
        skip(f"unshare(CLONE_NEWNS|CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")
    run("mount", "--make-rprivate", "/")
    run("ip", "link", "set", "lo", "up")
    for a in extra_addrs:
        run("ip", "addr", "add", a + "/32", "dev", "lo")
    fd, path = tempfile.mkstemp(prefix="strata-hosts-")
    with os.fdopen(fd, "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost\n")
        for name, addr in hosts.items():
            f.write(f"{addr} {name}\n")
    run("mount", "--bind", path, "/etc/hosts")
    os.unlink(path)  # the mount keeps it
