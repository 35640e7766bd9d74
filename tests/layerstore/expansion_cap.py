#!/usr/bin/python3
"""A gzip bomb: ~1 MiB of gzip holding a 1 GiB file of zeros. `strata load` must refuse it
(it expands far past 100x its compressed size + 64 MiB) with one line naming the layer and
the flag, leave the store unchanged, and stop early instead of writing the whole file;
--max-expansion raises the cap and the same image then loads. The same through `strata load
--lazy` (the index pass), and through `strata pull` from a loopback docker-registry (when
docker-registry and skopeo are installed)."""
import gzip
import hashlib
import io
import os
import shutil
import sys
import tarfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403

need_root()
work = workdir()
root = os.path.join(work, "store")
SIZE = 1 << 30
CHUNK = bytes(16 << 20)

# The layer tar (header, 1 GiB of zeros, end blocks), gzipped and hashed as a stream.
ti = tarfile.TarInfo("zeros")
ti.size = SIZE
ti.mtime = 1700000000
head = ti.tobuf(format=tarfile.PAX_FORMAT)
tail = bytes(1024)
diff = hashlib.sha256()
comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip wrapper
parts = []
for piece in [head] + [CHUNK] * (SIZE // len(CHUNK)) + [tail]:
    diff.update(piece)
    parts.append(comp.compress(piece))
parts.append(comp.flush())
blob = b"".join(parts)
assert len(blob) < 4 << 20, len(blob)

def gzip_layout(path, blob, diff_id):
    """A one-layer OCI layout around a gzip layer blob."""
    return one_layer_layout(path, blob, diff_id, "application/vnd.oci.image.layer.v1.tar+gzip")


layout = os.path.join(work, "bomb")
layer_digest = gzip_layout(layout, blob, "sha256:" + diff.hexdigest())
# A first (small) load creates the store's skeleton, so "unchanged" compares like with like.
small_tar = io.BytesIO()
with tarfile.open(fileobj=small_tar, mode="w") as t:
    t.addfile(tarfile.TarInfo("empty"))
gzip_layout(os.path.join(work, "small"), gzip.compress(small_tar.getvalue()),
            "sha256:" + hashlib.sha256(small_tar.getvalue()).hexdigest())

failures = []
strata(root, "load", "-q", "-i", os.path.join(work, "small"), "--tag", "small:1")
before = tree_hash(root)
r = strata(root, "load", "-q", "-i", layout, "--tag", "bomb:1", check=False)
err = r.stderr.strip().splitlines()
print(f"default cap: exit {r.returncode}: {err}")
if r.returncode == 0:
    failures.append("a 1 GiB gzip bomb loaded under the default cap")
elif len(err) != 1 or "--max-expansion" not in err[0] or layer_digest[7:19] not in err[0] or "100x" not in err[0]:
    failures.append(f"want one line naming the layer, the 100x cap and --max-expansion: {err}")
if tree_hash(root) != before:
    failures.append("the refused load changed the store")

r = strata(root, "load", "-q", "-i", layout, "--tag", "bomb:1", "--max-expansion", "abc", check=False)
if r.returncode == 0 or len(r.stderr.strip().splitlines()) != 1:
    failures.append(f"--max-expansion abc: want one error line, got exit {r.returncode}: {r.stderr}")

r = strata(root, "load", "-q", "-i", layout, "--tag", "bomb:1", "--max-expansion", "2000", check=False)
print(f"--max-expansion 2000: exit {r.returncode} {r.stderr.strip()}")
if r.returncode != 0:
    failures.append(f"--max-expansion 2000 did not allow the image: {r.stderr.strip()}")
else:
    diffdir = image_layers(root, "bomb:1")[0]
    if os.path.getsize(os.path.join(diffdir, "zeros")) != SIZE:
        failures.append("the allowed image lacks its 1 GiB file")

# The same through `load --lazy`: the index pass applies the same cap.
lroot = os.path.join(work, "store-lazy")
strata(lroot, "load", "-q", "--lazy", "-i", os.path.join(work, "small"), "--tag", "small:1")
before = tree_hash(lroot)
r = strata(lroot, "load", "-q", "--lazy", "-i", layout, "--tag", "bomb:1", check=False)
err = r.stderr.strip().splitlines()
print(f"load --lazy, default cap: exit {r.returncode}: {err}")
if r.returncode == 0 or len(err) != 1 or "--max-expansion" not in err[0] or layer_digest[7:19] not in err[0]:
    failures.append(f"load --lazy: want one line naming the layer and --max-expansion: exit {r.returncode}: {err}")
if tree_hash(lroot) != before:
    failures.append("the refused load --lazy changed the store")
r = strata(lroot, "load", "-q", "--lazy", "-i", layout, "--tag", "bomb:1", "--max-expansion", "2000", check=False)
if r.returncode != 0:
    failures.append(f"load --lazy --max-expansion 2000 did not allow the image: {r.stderr.strip()}")
else:
    chain = "sha256:" + diff.hexdigest()  # a base layer's chain-id is its diff_id
    with open(os.path.join(lroot, "image/overlay2/layerdb/sha256", chain[7:], "size")) as f:
        if int(f.read()) != SIZE:
            failures.append("the lazy layer's size is not its 1 GiB file")

# And through `mount --lazy` (no store: the index cache under --root/lazy), whose refusal names
# --max-expansion: the flag must exist there too.
mroot = os.path.join(work, "lazy-mount-root")
mnt = os.path.join(work, "lazy-mnt")
os.makedirs(mnt)
r = strata(mroot, "mount", "--lazy", layout, mnt, check=False)
err = r.stderr.strip().splitlines()
print(f"mount --lazy, default cap: exit {r.returncode}: {err}")
if r.returncode == 0 or len(err) != 1 or "--max-expansion" not in err[0] or os.path.ismount(mnt):
    failures.append(f"mount --lazy: want one line naming --max-expansion and no mount: exit {r.returncode}: {err}")
r = strata(mroot, "mount", "--lazy", "--max-expansion", "2000", layout, mnt, check=False)
if r.returncode != 0:
    failures.append(f"mount --lazy --max-expansion 2000 did not mount the image: {r.stderr.strip()}")
else:
    try:
        sizes = [os.lstat(os.path.join(dp, f)).st_size for dp, _, fs in os.walk(mnt) for f in fs]
        if SIZE not in sizes:
            failures.append(f"the lazily mounted bomb lacks its 1 GiB file: sizes {sizes[:5]}")
    finally:
        strata(mroot, "umount", mnt, check=False)

# The same blob downloaded by `strata pull` (the cap then uses the manifest's layer size).
if shutil.which("docker-registry") and shutil.which("skopeo"):
    root = os.path.join(work, "store-pull")  # a store without the layer, so it is downloaded
    strata(root, "load", "-q", "-i", os.path.join(work, "small"), "--tag", "small:1")
    with Registry(work) as reg:
        run("skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}", f"docker://{reg.addr}/bomb:1")
        before = tree_hash(root)
        r = strata(root, "pull", "-q", f"{reg.addr}/bomb:1", check=False)
        err = r.stderr.strip().splitlines()
        print(f"pull, default cap: exit {r.returncode}: {err}")
        if r.returncode == 0 or len(err) != 1 or "--max-expansion" not in err[0]:
            failures.append(f"pull: want one line naming --max-expansion: exit {r.returncode}: {err}")
        if tree_hash(root) != before:
            failures.append("the refused pull changed the store")
        r = strata(root, "pull", "-q", "--max-expansion", "2000", f"{reg.addr}/bomb:1", check=False)
        if r.returncode != 0:
            failures.append(f"pull --max-expansion 2000 failed: {r.stderr.strip()}")
else:
    print("docker-registry or skopeo missing: pull not tried")

shutil.rmtree(work, ignore_errors=True)
if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print("PASS")
