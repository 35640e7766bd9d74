#!/usr/bin/python3
"""`strata run --lazy ARCHIVE` and `create --lazy`: a container straight from an archive or OCI
layout, its image loaded as `load --lazy` loads it (layers kept as blob + index), then run; a
second run reuses the stored layers; an archive of two images is refused before anything is
stored; --max-expansion without --lazy is a usage error. Also `--root` given as a relative path,
which `run` got wrong before (strata-fs runs in the store's overlay2/ and took the relative
upperdir from there: "could not mount the container's rootfs"). As root, or with --rootless as
the unprivileged test user."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (STRATA, Strata, build_busybox_image, report, run,  # noqa: E402
                                start_test, unmount_all_under)


def main():
    rootless, user, work = start_test("strata-run-lazy-")
    store = os.path.join(work, "store")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    def images():
        return json.loads(S("images", "--format", "json").stdout or "[]")

    def layer_dirs():
        return sorted(d for d in os.listdir(os.path.join(store, "overlay2")) if d != "l")

    try:
        layout = os.path.join(work, "img")
        build_busybox_image(layout)
        if user:
            run("chown", "-R", user, work)
        S = Strata(store, user)

        r = S("run", "--rm", "--lazy", layout, "cat", "/etc/passwd", check=False)
        check(r.returncode == 0 and r.stdout.startswith("root:"), f"run --lazy: {r.returncode} {r.stdout!r} {r.stderr!r}")
        imgs = images()
        check(len(imgs) == 1 and imgs[0].get("LazyLayers") == 2 == imgs[0].get("Layers"), f"run --lazy stored {imgs}")
        before = layer_dirs()
        r = S("run", "--rm", "--lazy", layout, "sh", "-c", "echo again > /tmp/x && cat /tmp/x", check=False)
        check(r.returncode == 0 and r.stdout == "again\n", f"run --lazy again: {r.returncode} {r.stdout!r} {r.stderr!r}")
        check(layer_dirs() == before and len(images()) == 1, "a second run --lazy stored the image again")

        r = S("create", "--lazy", "--name", "made", layout, "true", check=False)
        check(r.returncode == 0 and len(r.stdout.strip()) == 64, f"create --lazy: {r.returncode} {r.stdout!r} {r.stderr!r}")
        r = S("start", "-a", "made", check=False)
        check(r.returncode == 0, f"start -a of a create --lazy container: {r.returncode} {r.stderr!r}")

        # Two images in one archive: refused, nothing stored.
        S("load", "-q", "-i", layout, "--tag", "t/a:1")
        S("tag", "t/a:1", "t/b:1")
        two = os.path.join(work, "two.tar")
        S("save", "-o", two, "t/a:1", "t/b:1")
        S("rmi", "t/a:1", "t/b:1")
        n, dirs = len(images()), layer_dirs()
        r = S("run", "--lazy", two, "true", check=False)
        lines = r.stderr.strip().splitlines()
        check(r.returncode != 0 and len(lines) == 1 and "holds 2 images" in lines[0] and lines[0].startswith(f"strata: run {two}: "),
              f"run --lazy of two images: {r.returncode} {r.stderr!r}")
        check(len(images()) == n and layer_dirs() == dirs, "run --lazy of two images stored something")

        r = S("run", "--max-expansion", "5", "t/none", "true", check=False)
        check(r.returncode != 0 and "--max-expansion applies to --lazy only" in r.stderr, f"--max-expansion alone: {r.stderr!r}")

        # --root as a relative path.
        rel = subprocess.run(([] if not user else ["runuser", "-u", user, "--"]) +
                             [STRATA, "--root", "store", "run", "--rm", "--lazy", "img", "echo", "relative"],
                             cwd=work, capture_output=True, text=True, timeout=120)
        check(rel.returncode == 0 and rel.stdout == "relative\n", f"--root store (relative): {rel.returncode} {rel.stderr!r}")
        return report(failures, "run --lazy", rootless)
    finally:
        subprocess.run([STRATA, "--root", store, "rm", "-f", "made"], capture_output=True)
        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
