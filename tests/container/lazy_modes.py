#!/usr/bin/python3
"""A container that changes entries of a lazy layer whose mode leaves their owner without
write or read (Fedora's /root is 0550 and its /etc/shadow 0000; a 0555 tree), as root or
(--rootless) as the unprivileged test user, against the same image unpacked. Rootless, every
file of the store must stay usable by its user (read, and for directories write and search),
as unpacking keeps them, with the image's mode in the override xattr: copy-up from a lazy
layer gave the upper copy the image's mode itself, so `strata commit` could not read the
copied /etc/shadow and `strata rm` could not empty the copied /root. And a FIFO of a lazy
layer is copied up (touch, mv) though no user.* xattr can record its owner (as unpacking
stores it): rootless, the copy-up failed with EPERM. New entries in a set-gid directory of a
lazy layer take its group (gid 50 here), as the kernel gives them: rootless they took the
caller's, over lazy and unpacked layers alike (the on-disk group was read, not the recorded
one). A 0444 file removed while open and then chmodded through /proc/self/fd is copied up
with no name (the copy must open for writing). Checked: the run's
output, diff, commit and the committed image's view, the store's files usable by its user,
and rm/rmi leaving the store clean."""
import os
import shutil
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (build_busybox_image, lazy_and_unpacked, rmi_leaves_clean_stores, report, run,  # noqa: E402
                                start_test, unmount_all_under)

IMG, OUT = "t/modes:1", "t/modes-out:1"
CHANGES = ("echo hist > /root/.history && echo 'user:!:1::::::' >> /etc/shadow && mkdir /opt/ro/sub/new"
           " && echo n > /opt/ro/sub/new/f && chmod 0644 /opt/ro/file && touch -d @7 /opt/fifo && mv /opt/fifo /opt/fifo.moved"
           " && mkdir /opt/sg/d && touch /opt/sg/new /opt/sg/d/deeper"
           " && exec 3< /opt/readonly && rm /opt/readonly && chmod 0604 /proc/self/fd/3"
           " && ls -lnL /proc/self/fd/3 | sed 's/  */ /g' | cut -d' ' -f1,3,4 >&2 && exec 3<&-")
SHOW = ("ls -lnd /root /root/.history /etc/shadow /opt/ro /opt/ro/sub /opt/ro/sub/new /opt/ro/file /opt/fifo* /opt/sg/new /opt/sg/d /opt/sg/d/deeper"
        " | sed 's/  */ /g' | cut -d' ' -f1,3,4,9; cat /etc/shadow /root/.history /opt/ro/sub/new/f")


def add_closed_layer(layout, tag="1"):
    bundle = layout + ".modes"
    run("umoci", "unpack", "--image", f"{layout}:{tag}", bundle)
    r = os.path.join(bundle, "rootfs")
    with open(os.path.join(r, "etc/shadow"), "w") as f:
        f.write("root:*:1::::::\n")
    os.chown(os.path.join(r, "etc/shadow"), 0, 42)
    os.chmod(os.path.join(r, "etc/shadow"), 0)
    os.chmod(os.path.join(r, "root"), 0o550)
    os.makedirs(os.path.join(r, "opt/ro/sub"))
    with open(os.path.join(r, "opt/ro/file"), "w") as f:
        f.write("read only\n")
    os.chmod(os.path.join(r, "opt/ro/file"), 0o400)
    os.chmod(os.path.join(r, "opt/ro/sub"), 0o555)
    os.chmod(os.path.join(r, "opt/ro"), 0o500)
    os.mkfifo(os.path.join(r, "opt/fifo"), 0o640)
    with open(os.path.join(r, "opt/readonly"), "w") as f:
        f.write("removed while open\n")
    os.chmod(os.path.join(r, "opt/readonly"), 0o444)
    os.makedirs(os.path.join(r, "opt/sg"))
    os.chown(os.path.join(r, "opt/sg"), 0, 50)
    os.chmod(os.path.join(r, "opt/sg"), 0o2775)
    run("umoci", "repack", "--image", f"{layout}:{tag}", bundle)
    shutil.rmtree(bundle)


def unusable(root, uid):
    """Paths below `root` its user `uid` could not read (directories: read, write and search)."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, n))
            need = 0o700 if stat.S_ISDIR(st.st_mode) else 0o400 if stat.S_ISREG(st.st_mode) else 0
            if stat.S_ISLNK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                continue  # no user.* xattr can record their owner: the user's wherever they come from
            if st.st_uid != uid or (st.st_mode & need) != need:
                bad.append(f"{os.path.join(dirpath, n)} (uid {st.st_uid}, mode {oct(stat.S_IMODE(st.st_mode))})")
    return bad


def main():
    rootless, user, work = start_test("strata-lazymodes-")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    try:
        layout = os.path.join(work, "img")
        build_busybox_image(layout)
        add_closed_layer(layout)
        stores, S, out, diff, committed = lazy_and_unpacked(work, user, layout, IMG, OUT, CHANGES, SHOW, unusable, check)
        check(out["unpacked"][2] == "-rw----r-- 0 0\n", f"chmod of a removed 0444 file: {out['unpacked']}")
        check(out["unpacked"][0] == 0 and "user:!:1" in out["unpacked"][1], f"run over unpacked layers: {out['unpacked']}")
        for line in ("-rw-r--r-- 0 50 /opt/sg/new", "drwxr-sr-x 0 50 /opt/sg/d", "-rw-r--r-- 0 50 /opt/sg/d/deeper"):
            check(line in out["unpacked"][1], f"over unpacked layers, not '{line}' (a set-gid directory's group)")
        check(diff["unpacked"][0] == 0 and "A /root/.history" in diff["unpacked"][1],
              f"diff over unpacked layers: {diff['unpacked']}")
        check(committed["lazy"] == committed["unpacked"] and committed["unpacked"][:2] == out["unpacked"][:2],
              f"the committed image: lazy {committed['lazy']}, unpacked {committed['unpacked']}")
        rmi_leaves_clean_stores(S, stores, (OUT, IMG), failures)
    finally:
        unmount_all_under(work)
        if user:
            run("rm", "-rf", work, user=user, check=False)
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return report(failures, "lazy layers' entries their owner cannot write or read", rootless)


if __name__ == "__main__":
    sys.exit(main())
