"""The should-fail corpus of hostile or broken OCI layouts, generated with python's tarfile:
each case is (name, the reason its error must give, layer tars, layout() options). Used by
bad_inputs.py (`strata load`) and lazy_bad_inputs.py (`strata mount --lazy`)."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def make_tar(entries):
    """entries: (name, kind, data_or_target)."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, val in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "file":
                ti.size = len(val)
                t.addfile(ti, io.BytesIO(val))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
            if kind in ("sym", "hard"):
                ti.linkname = val
            t.addfile(ti)
    return bio.getvalue()


GOOD = [("etc", "dir", None), ("etc/hello", "file", b"hello\n")]


def layout(path, layers_tars, compress="gzip", mutate=None):
    """An OCI layout; `mutate(ctx)` may change blobs/descriptors before writing."""
    os.makedirs(os.path.join(path, "blobs/sha256"))
    blobs = {}

    def put(b):
        d = sha(b)
        blobs[d] = b
        return d

    ctx = {"layers": [], "diff_ids": [], "blobs": blobs, "put": put}
    for tar in layers_tars:
        blob = gzip.compress(tar, mtime=0) if compress == "gzip" else tar
        ctx["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip" if compress == "gzip"
                              else "application/vnd.oci.image.layer.v1.tar", "digest": put(blob), "size": len(blob)})
        ctx["diff_ids"].append(sha(tar))
    ctx["config"] = {"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": ctx["diff_ids"]}}
    ctx["config_media"] = "application/vnd.oci.image.config.v1+json"
    if mutate:
        mutate(ctx)
    cfg = ctx.get("config_bytes") or json.dumps(ctx["config"]).encode()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": ctx["config_media"], "digest": put(cfg), "size": len(cfg)},
                "layers": ctx["layers"]}
    mb = ctx.get("manifest_bytes") or json.dumps(manifest).encode()
    md = put(mb)
    for d, b in blobs.items():
        if d not in ctx.get("skip_blobs", ()):
            with open(os.path.join(path, "blobs/sha256", d[7:]), "wb") as f:
                f.write(ctx.get("override", {}).get(d, b))
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    index = ctx.get("index_bytes") or json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(mb),
         "annotations": {"org.opencontainers.image.ref.name": "bad:latest"}}]}).encode()
    with open(os.path.join(path, "index.json"), "wb") as f:
        f.write(index)
    return path



def layer_blob(path):
    """The file of the first layer blob of an OCI layout, found through its manifest."""
    def blob(digest):
        return os.path.join(path, "blobs/sha256", digest.split(":")[1])
    with open(os.path.join(path, "index.json")) as f:
        manifest = json.load(f)["manifests"][0]["digest"]
    with open(blob(manifest)) as f:
        return blob(json.load(f)["layers"][0]["digest"])


def read_then_unmount(mnt, name):
    """The bytes of MNT/NAME; MNT is unmounted (fusermount3 -u) whatever happens."""
    try:
        with open(os.path.join(mnt, name), "rb") as f:
            return f.read()
    finally:
        subprocess.run(["fusermount3", "-u", mnt], check=True)

def set_blob(ctx, i, blob, keep_digest=False):
    d = ctx["layers"][i]["digest"]
    if keep_digest:
        ctx.setdefault("override", {})[d] = blob
        ctx["layers"][i]["size"] = len(blob)
        return
    ctx["layers"][i]["digest"] = ctx["put"](blob)
    ctx["layers"][i]["size"] = len(blob)


cases = []


def case(name, reason, tars=None, **kw):
    cases.append((name, reason, tars or [make_tar(GOOD)], kw))


def evil(entries, reason):
    return make_tar(entries), reason


case("digest-mismatch", "digest mismatch",
     mutate=lambda c: set_blob(c, 0, gzip.compress(make_tar([("other", "file", b"o")])), True))
case("diffid-mismatch", "diff_id mismatch",
     mutate=lambda c: c["config"]["rootfs"].__setitem__("diff_ids", [sha(b"other")]))
gz = gzip.compress(make_tar(GOOD), mtime=0)
case("truncated-gzip", "truncated gzip", mutate=lambda c: set_blob(c, 0, gz[: len(gz) // 2]))
case("corrupt-gzip", "gzip", mutate=lambda c: set_blob(c, 0, gz[:20] + bytes(b ^ 0x55 for b in gz[20:60]) + gz[60:]))
case("gzip-crc", "CRC32", mutate=lambda c: set_blob(c, 0, gz[:-8] + bytes([gz[-8] ^ 1]) + gz[-7:]))
if shutil.which("zstd"):
    zs = subprocess.run(["zstd", "-q", "-c"], input=make_tar(GOOD), capture_output=True).stdout
    case("truncated-zstd", "truncated zstd", mutate=lambda c: set_blob(c, 0, zs[: len(zs) - 5]))
    case("corrupt-zstd", "zstd", mutate=lambda c: set_blob(c, 0, zs[:12] + b"\xff" * 20 + zs[32:]))
case("dotdot", "escapes the layer", [make_tar([("../evil", "file", b"x")])])
case("dotdot-deep", "escapes the layer", [make_tar([("a/../../evil", "file", b"x")])])
case("absolute", "absolute path", [make_tar([("/evil", "file", b"x")])])
case("symlinked-parent", "symlinked parent", [make_tar([("esc", "sym", "/"), ("esc/tmp/evil", "file", b"x")])])
case("symlinked-parent-rel", "symlinked parent", [make_tar([("esc", "sym", "../../../.."), ("esc/evil", "file", b"x")])])
case("hardlink-out", "escapes the layer", [make_tar([("h", "hard", "../../../etc/passwd")])])
case("hardlink-abs", "absolute path", [make_tar([("h", "hard", "/etc/passwd")])])
case("hardlink-via-symlink", "outside the layer", [make_tar([("s", "sym", "/etc"), ("h", "hard", "s/passwd")])])
case("whiteout-empty", "invalid whiteout", [make_tar([("d", "dir", None), ("d/.wh.", "file", b"")])])
case("whiteout-dotdot", "invalid whiteout", [make_tar([("d", "dir", None), ("d/.wh..", "file", b"")])])
case("whiteout-dot", "invalid whiteout", [make_tar([(".wh..", "file", b"")])])
case("missing-blob", "missing", mutate=lambda c: c.__setitem__("skip_blobs", [c["layers"][0]["digest"]]))
case("malformed-manifest", "malformed JSON", mutate=lambda c: c.__setitem__("manifest_bytes", b'{"schemaVersion": 2, '))
case("malformed-config", "malformed JSON", mutate=lambda c: c.__setitem__("config_bytes", b"{not json"))
case("malformed-index", "malformed JSON", mutate=lambda c: c.__setitem__("index_bytes", b"[[["))
case("wrong-layer-mediatype", "media type",
     mutate=lambda c: c["layers"][0].__setitem__("mediaType", "application/vnd.oci.image.config.v1+json"))
case("wrong-config-mediatype", "config media type",
     mutate=lambda c: c.__setitem__("config_media", "application/vnd.oci.image.layer.v1.tar"))
case("diffids-count", "diff_ids", mutate=lambda c: c["config"]["rootfs"]["diff_ids"].append(sha(b"extra")))
case("size-mismatch", "size mismatch", mutate=lambda c: c["layers"][0].__setitem__("size", 3))
case("not-a-tar", "tar", [b"this is not a tar archive at all" * 40])
case("truncated-tar", "ends early", [make_tar([("big", "file", b"y" * 5000)])[:1536]])


def refusal_problems(r, names_input, reason):
    """What is wrong with `r` (a finished strata run) as the refusal of a hostile input: it must
    fail with exactly one stderr line for which names_input(line) holds and that carries
    `reason`, and nothing may be written outside the layer. [] when it is right."""
    err = r.stderr.strip().splitlines()
    problems = []
    if r.returncode == 0:
        problems.append("exit 0")
    if len(err) != 1:
        problems.append(f"{len(err)} stderr lines: {err}")
    elif not names_input(err[0]) or reason.lower() not in err[0].lower():
        problems.append(f"error does not name the input and {reason!r}: {err[0]}")
    if os.path.exists("/evil") or os.path.exists("/tmp/evil"):
        problems.append("file written outside the layer")
    return problems
