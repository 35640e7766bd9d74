#!/usr/bin/python3
"""Debian 12 in `strata run`, as root or (--rootless) as the unprivileged strata-test user:
bash heredocs with TMPDIR on the overlay, apt-get update && apt-get install python3 (apt's _apt
sandbox included), python3 -c 'print(42)', then commit the container and run python3 and
Python temp files in the committed image."""
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distro_lib import (APT_INSTALL, APT_TIMEOUT, HEREDOC, TEMPFILE, TEST_USER, Steps, expect_apt,  # noqa: E402
                        expect_ok, expect_output, heredoc_expect, log, need_tools, prepare_image, run,
                        unmount_all_under)
from container_test_lib import STRATA, need_env  # noqa: E402

rootless = "--rootless" in sys.argv[1:]
need_env(rootless=rootless)
need_tools("mmdebstrap", "runuser")
user = TEST_USER if rootless else None
if rootless:
    with open("/etc/subuid") as f:
        if not any(l.split(":")[0] == TEST_USER for l in f):
            raise SystemExit(f"FAIL: {TEST_USER} has no /etc/subuid range: apt's _apt sandbox needs one")

work = tempfile.mkdtemp(prefix="strata-distro-")
os.chmod(work, 0o755)
IMG, IMG2 = "strata-test/debian:12", "strata-test/debian-python:12"


def strata(*args, timeout=180):
    return run(STRATA, "--root", os.path.join(work, "store"), *args, check=False, user=user, timeout=timeout)


try:
    archive = prepare_image(work, IMG)
    if user:
        run("chown", "-R", user, work)
    s = Steps()
    if not s.check("load", lambda: expect_ok(strata("load", "-q", "-i", archive), "strata load")):
        s.finish()
    s.check("heredoc", lambda: expect_output(strata("run", "--rm", IMG, "bash", "-c", HEREDOC),
                                             heredoc_expect(0), "bash heredocs"))
    installed = s.check("apt-get install python3", lambda: expect_apt(
        strata("run", "--name", "apt", IMG, "bash", "-c", APT_INSTALL, timeout=APT_TIMEOUT),
        "apt-get update && apt-get install python3"))
    if not installed:
        s.not_run("commit and the committed image", "apt-get install python3")
    elif s.check("commit", lambda: expect_ok(strata("commit", "apt", IMG2), "strata commit")):
        s.check("python3 in the committed image", lambda: expect_output(
            strata("run", "--rm", IMG2, "python3", "-c", "print(42)"), "42\n", "python3 -c 'print(42)'"))
        s.check("tempfile in the committed image", lambda: expect_output(
            strata("run", "--rm", IMG2, "bash", "-c", TEMPFILE), "tempfile ok\n", "python tempfile"))
        s.check("rm and rmi", lambda: [expect_ok(strata(*a), " ".join(a))
                                       for a in (("rm", "apt"), ("rmi", IMG2), ("rmi", IMG))])
    s.finish()
finally:
    log("cleanup")
    unmount_all_under(work)
    shutil.rmtree(work, ignore_errors=True)
