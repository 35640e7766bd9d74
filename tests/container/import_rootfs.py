#!/usr/bin/python3
"""strata import end to end, as root or (--rootless) as the unprivileged test user: a rootfs
tarball (plain from a file, gzip, zstd from stdin) becomes an image of one layer whose diff_id
is the sha256 of the tar, tagged, with the history comment, `--change` applied; `strata run`
runs it and sees its files, owners and modes. Hostile or broken input (an entry climbing out
with .., a file written through a symlink in the same tar, not a tar, a truncated gzip, an
unknown --change) gives one line and leaves the store byte for byte as it was."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (STRATA, Strata, as_user, listing, report, run, start_test,  # noqa: E402
                                unmount_all_under)


def rootfs_tar():
    """busybox with its links, /etc/passwd, a set-uid file owned by 0 and a file of uid 1000."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def add(name, data=None, mode=0o644, kind=tarfile.REGTYPE, link="", uid=0):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.linkname, ti.uid, ti.gid, ti.mtime = kind, mode, link, uid, uid, 1700000000
            if data is not None:
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
        for d in ("./", "./bin", "./etc", "./tmp", "./home", "./home/user"):
            add(d, kind=tarfile.DIRTYPE, mode=0o755, uid=1000 if d == "./home/user" else 0)
        with open("/bin/busybox", "rb") as f:
            add("./bin/busybox", f.read(), mode=0o755)
        for name in ("sh", "cat", "stat", "ls", "id"):
            add(f"./bin/{name}", kind=tarfile.SYMTYPE, link="busybox")
        add("./etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
        add("./etc/group", b"root:x:0:\nuser:x:1000:\n")
        add("./bin/suid", b"#!/bin/sh\n", mode=0o4755)
        add("./home/user/note", b"mine\n", uid=1000)
    return buf.getvalue()


def bad_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, link, data in entries:
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = kind, link
            if data is not None:
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def main():
    rootless, user, work = start_test("strata-import-")
    if shutil.which("zstd") is None:
        from container_test_lib import skip
        skip("zstd not installed")
    store = os.path.join(work, "store")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    try:
        tar = rootfs_tar()
        diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
        files = {"rootfs.tar": tar, "rootfs.tar.gz": gzip.compress(tar),
                 "rootfs.tar.zst": subprocess.run(["zstd", "-q", "-c"], input=tar, capture_output=True).stdout}
        for name, data in files.items():
            with open(os.path.join(work, name), "wb") as f:
                f.write(data)
        if user:
            run("chown", "-R", user, work)
        S = Strata(store, user)

        r = S("import", "-q", os.path.join(work, "rootfs.tar"), "t/imp:plain")
        image_id = r.stdout.strip()
        r = S("import", "-q", os.path.join(work, "rootfs.tar.gz"), "t/imp:gz", "-m", "from gzip",
              "--change", "CMD [\"/bin/cat\", \"/etc/passwd\"]", "--change", "ENV A=b")
        with open(os.path.join(work, "rootfs.tar.zst"), "rb") as f:
            r = subprocess.run(as_user([STRATA, "--root", store, "import", "-q", "-", "t/imp:zst"], user), stdin=f,
                               capture_output=True, text=True)
        check(r.returncode == 0, f"import - (zstd on stdin): {r.stderr!r}")

        for tag in ("plain", "gz", "zst"):
            info = json.loads(S("inspect", f"t/imp:{tag}").stdout)[0]
            cfg = info["Config"]
            check(cfg["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}, f"{tag}: rootfs {cfg['rootfs']}")
            check(cfg["os"] == "linux" and cfg["architecture"], f"{tag}: os/architecture {cfg['os']} {cfg['architecture']}")
        check(json.loads(S("inspect", "t/imp:plain").stdout)[0]["Id"] == image_id, "import printed another id")
        gz = json.loads(S("inspect", "t/imp:gz").stdout)[0]["Config"]
        check(gz["history"][0].get("comment") == "from gzip", f"-m: {gz['history']}")
        check(gz["config"].get("Cmd") == ["/bin/cat", "/etc/passwd"] and "A=b" in gz["config"].get("Env", []),
              f"--change: {gz['config']}")
        S("verify")

        r = S("run", "--rm", "t/imp:plain", "sh", "-c",
              "cat /home/user/note; stat -c '%u:%g %a' /home/user/note /bin/suid; id -u", check=False)
        check(r.returncode == 0 and r.stdout == "mine\n1000:1000 644\n0:0 4755\n0\n",
              f"run of the imported image: {r.returncode} {r.stdout!r} {r.stderr!r}")
        r = S("run", "--rm", "t/imp:gz", check=False)
        check(r.returncode == 0 and r.stdout.startswith("root:x:0:0"), f"run of CMD from --change: {r.stdout!r} {r.stderr!r}")

        # Bad input: one line, nothing changed (the whole store, byte for byte).
        before = listing(store)
        bad = {
            "dotdot.tar": bad_tar([("../escape", tarfile.REGTYPE, "", b"x")]),
            "through-link.tar": bad_tar([("link", tarfile.SYMTYPE, work, None),
                                         ("link/planted", tarfile.REGTYPE, "", b"x")]),
            "not-a-tar": b"this is not a tar archive at all\n" * 40,
            "truncated.tar.gz": gzip.compress(tar)[:5000],
        }
        for name, data in bad.items():
            path = os.path.join(work, name)
            with open(path, "wb") as f:
                f.write(data)
            if user:
                run("chown", user, path)
            r = S("import", "-q", path, "t/bad:1", check=False)
            lines = r.stderr.strip().splitlines()
            check(r.returncode != 0 and len(lines) == 1 and lines[0].startswith(f"strata: import {path}: "),
                  f"import {name}: {r.returncode} {r.stderr!r}")
        r = S("import", "-q", os.path.join(work, "rootfs.tar"), "t/bad:1", "--change", "FROB x", check=False)
        check(r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, f"import --change FROB: {r.stderr!r}")
        r = S("import", "-q", os.path.join(work, "missing.tar"), "t/bad:1", check=False)
        check(r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, f"import of a missing file: {r.stderr!r}")
        check(not os.path.exists(os.path.join(work, "planted")) and not os.path.exists(os.path.join(work, "..", "escape")),
              "a hostile tar wrote outside the store")
        after = listing(store)
        changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
        check(not changed, f"a refused import changed the store: {changed[:10]}")

        for tag in ("plain", "gz", "zst"):
            S("rmi", f"t/imp:{tag}")
        return report(failures, "import_rootfs", rootless)
    finally:
        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
