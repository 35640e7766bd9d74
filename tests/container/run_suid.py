#!/usr/bin/python3
"""`strata run` as root: a set-uid-root program elevates for the container's non-root user (as
with podman and fuse-overlayfs), and that user can read the image's 0644 files."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import Strata, build_busybox_image, need_env, run, skip  # noqa: E402

EUID_C = '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("%d\\n", (int)geteuid()); return 0; }\n'


def main():
    need_env()
    if shutil.which("gcc") is None:
        skip("gcc not installed (builds the static set-uid test program)")
    work = tempfile.mkdtemp(prefix="strata-suid-")
    os.chmod(work, 0o755)
    store = os.path.join(work, "store")
    try:
        src = os.path.join(work, "euid.c")
        with open(src, "w") as f:
            f.write(EUID_C)
        prog = os.path.join(work, "euid")
        if subprocess.run(["gcc", "-static", "-O1", "-o", prog, src], capture_output=True).returncode != 0:
            skip("gcc -static failed (no static libc?)")
        layout = os.path.join(work, "img")
        build_busybox_image(layout)
        bundle = layout + ".bundle"
        run("umoci", "unpack", "--image", f"{layout}:1", bundle)
        r = os.path.join(bundle, "rootfs")
        for name, mode in (("euid", 0o755), ("suid-euid", 0o4755)):
            dst = os.path.join(r, "bin", name)
            shutil.copy(prog, dst)
            os.chown(dst, 0, 0)
            os.chmod(dst, mode)
        run("umoci", "repack", "--image", f"{layout}:1", bundle)
        shutil.rmtree(bundle)
        S = Strata(store)
        S("load", "-q", "-i", layout, "--tag", "t/suid:1")
        out = S("run", "--rm", "-u", "user", "t/suid:1", "sh", "-c",
                "euid; suid-euid; cat /data/keep.txt", check=False)
        want = "1000\n0\nkeep\n"
        if out.returncode != 0 or out.stdout != want:
            print(f"FAIL: as user 1000 in a root `strata run`: exit {out.returncode}, printed "
                  f"{out.stdout!r} (want {want!r}: the set-uid-root program must run with euid 0)\n"
                  f"stderr: {out.stderr}")
            return 1
        print("PASS: run-suid")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)  # --rm left no container or mount


if __name__ == "__main__":
    sys.exit(main())
