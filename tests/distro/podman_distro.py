#!/usr/bin/python3
"""Debian 12 under podman (root) with strata-fs as the overlay driver's mount_program, as
podman users run fuse-overlayfs: a non-root user (--user 65534) reading the image, bash heredocs
and Python temp files with TMPDIR on the overlay, apt-get update && apt-get install python3
(apt's downloads run as _apt), commit, python3 in the committed image.

podman runs with its own configuration and storage (distro_lib.Podman) in a temp dir that is
unmounted and removed at the end."""
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distro_lib import (APT_INSTALL, APT_TIMEOUT, HEREDOC, TEMPFILE, Podman, Steps, expect_apt,  # noqa: E402
                        expect_ok, expect_output, heredoc_expect, log, need_tools, prepare_image, skip,
                        unmount_all_under)

if os.geteuid() != 0:
    skip("needs root")
need_tools("mmdebstrap", "podman", "runc", "conmon", "fusermount3")
FS = os.environ.get("STRATA_FS", "")
if not os.access(FS, os.X_OK):
    skip("strata-fs not built")
# A non-root user's commands are given by absolute path: runc then reports the EACCES of a
# FUSE mount without allow_other as such, not as "executable file not found in $PATH".
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")

work = tempfile.mkdtemp(prefix="strata-distro-podman-")
IMG, IMG2 = "localhost/strata-test/debian:12", "localhost/strata-test/debian-python:12"
podman = Podman(work, mount_program=FS)
prun = podman.run


def expect_lines(r, want, what):
    expect_ok(r, what)
    missing = set(want) - set(r.stdout.splitlines())
    if missing:
        raise AssertionError(f"{what}: no {sorted(missing)} in {r.stdout!r}")


try:
    archive = prepare_image(work, IMG)
    s = Steps()
    if not s.check("podman load", lambda: expect_ok(podman("load", "-q", "-i", archive), "podman load")):
        s.finish()
    s.check("--user 65534 cat /etc/os-release", lambda: expect_lines(
        prun("--rm", "--user", "65534", IMG, "/usr/bin/cat", "/etc/os-release"), ["VERSION_CODENAME=bookworm"],
        "podman run --user 65534 cat /etc/os-release"))
    s.check("--user 65534 ls /", lambda: expect_lines(
        prun("--rm", "--user", "65534", IMG, "/usr/bin/ls", "/"), ["bin", "etc", "usr", "var", "tmp"],
        "podman run --user 65534 ls /"))
    s.check("heredoc", lambda: expect_output(prun("--rm", IMG, "bash", "-c", HEREDOC), heredoc_expect(0),
                                             "bash heredocs"))
    s.check("--user 65534 heredoc", lambda: expect_output(
        prun("--rm", "--user", "65534", IMG, "/usr/bin/bash", "-c", HEREDOC), heredoc_expect(65534),
        "bash heredocs as 65534"))
    installed = s.check("apt-get install python3", lambda: expect_apt(
        prun("--name", "apt", IMG, "bash", "-c", APT_INSTALL, timeout=APT_TIMEOUT),
        "apt-get update && apt-get install python3"))
    if not installed:
        s.not_run("commit and the committed image", "apt-get install python3")
    elif s.check("commit", lambda: expect_ok(podman("commit", "-q", "apt", IMG2, timeout=600), "podman commit")):
        s.check("python3 in the committed image", lambda: expect_output(
            prun("--rm", IMG2, "python3", "-c", "print(42)"), "42\n", "python3 -c 'print(42)'"))
        s.check("tempfile in the committed image", lambda: expect_output(
            prun("--rm", IMG2, "bash", "-c", TEMPFILE), "tempfile ok\n", "python tempfile"))
        s.check("--user 65534 tempfile in the committed image", lambda: expect_output(
            prun("--rm", "--user", "65534", IMG2, "/usr/bin/bash", "-c", TEMPFILE), "tempfile ok\n",
            "python tempfile as 65534"))
    s.check("rm and rmi", lambda: [expect_ok(podman(*a), " ".join(a))
                                   for a in (("rm", "-i", "-f", "apt"), ("rmi", "-i", "-f", IMG2, IMG))])
    s.finish()
finally:
    log("cleanup")
    podman.remove_all()
    unmount_all_under(work)
    shutil.rmtree(work, ignore_errors=True)
