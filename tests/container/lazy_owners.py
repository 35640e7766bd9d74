#!/usr/bin/python3
"""A container that writes into directories of a lazy layer owned by other users (apt's
/var/cache/apt/archives/partial is _apt's, mode 0700), as root or (--rootless) as the
unprivileged test user, against the same image unpacked. Rootless, the copied-up directories
must stay the store user's on disk (their owner and mode recorded in the override xattr, as
every file of a rootless store is): copy-up from a lazy layer chowned them to the image's
owner, and `strata diff` and `rm` then failed with 'Permission denied'. Checked: the run's
output, `diff`, `commit` and the committed image's view, every file of the store owned by its
user (rootless), and rm/rmi leaving the store clean."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (build_busybox_image, lazy_and_unpacked, rmi_leaves_clean_stores, report, run,  # noqa: E402
                                start_test, unmount_all_under)

IMG, OUT = "t/owners:1", "t/owners-out:1"
# uid 42 owns /spool/private (0700) and its file (0600); uid 1000 owns /home/user (0700).
CHANGES = ("echo new > /spool/private/added && echo more >> /spool/private/file && mkdir /home/user/sub"
           " && echo x > /home/user/sub/x && chown 42:42 /spool/private/added")
SHOW = "ls -ln /spool/private /home/user /home/user/sub | sed 's/  */ /g' | cut -d' ' -f1,3,4,9; cat /spool/private/*"


def add_private_layer(layout, tag="1"):
    bundle = layout + ".owners"
    run("umoci", "unpack", "--image", f"{layout}:{tag}", bundle)
    r = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(r, "spool/private"))
    with open(os.path.join(r, "spool/private/file"), "w") as f:
        f.write("private\n")
    os.chown(os.path.join(r, "spool/private/file"), 42, 42)
    os.chmod(os.path.join(r, "spool/private/file"), 0o600)
    os.chown(os.path.join(r, "spool/private"), 42, 42)
    os.chmod(os.path.join(r, "spool/private"), 0o700)
    os.chmod(os.path.join(r, "home/user"), 0o700)
    run("umoci", "repack", "--image", f"{layout}:{tag}", bundle)
    shutil.rmtree(bundle)


def not_owned_by(root, uid):
    """Paths below `root` (not following symlinks) whose owner is not `uid`."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if os.lstat(p).st_uid != uid:
                bad.append(f"{p} (uid {os.lstat(p).st_uid})")
    return bad


def main():
    rootless, user, work = start_test("strata-lazyowners-")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    try:
        layout = os.path.join(work, "img")
        build_busybox_image(layout)
        add_private_layer(layout)
        stores, S, out, diff, committed = lazy_and_unpacked(work, user, layout, IMG, OUT, CHANGES, SHOW, not_owned_by, check)
        check(out["unpacked"][0] == 0 and "private\nmore\n" in out["unpacked"][1],
              f"run over unpacked layers: {out['unpacked']}")
        check(diff["unpacked"][0] == 0 and "A /spool/private/added" in diff["unpacked"][1],
              f"diff over unpacked layers: {diff['unpacked']}")
        check(committed["lazy"] == committed["unpacked"] == out["unpacked"],
              f"the committed image: lazy {committed['lazy']}, unpacked {committed['unpacked']}")
        rmi_leaves_clean_stores(S, stores, (OUT, IMG), failures)
    finally:
        unmount_all_under(work)
        if user:
            run("rm", "-rf", work, user=user, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return report(failures, "lazy layers' directories of other owners", rootless)


if __name__ == "__main__":
    sys.exit(main())
