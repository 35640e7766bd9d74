#!/usr/bin/python3
"""Progress of push and pull as a user sees it, against Debian's docker-registry on loopback:
on a terminal (a pty) a bar per layer redrawn in place with bytes, rate and ETA; off a
terminal a start and an end line per layer; nothing with -q (the same checks as
tests/layerstore/progress_output.py for load, save and commit)."""
import os
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "layerstore"))
sys.path.insert(0, HERE)
from registry_test_lib import *  # noqa: E402,F403
from cli_habits import docker_archive  # noqa: E402
import progress_output  # noqa: E402

need_tools("docker-registry")
work = workdir()
regs = []
try:
    big = os.path.join(work, "big.tar")
    docker_archive(big, [("localhost/big:1", {"Cmd": ["/bin/sh"]}, os.urandom(16 << 20).hex())])
    root = os.path.join(work, "store")
    strata(root, "load", "-q", "-i", big)
    n = iter(range(1000))

    # A registry per push: a second push to the same registry mounts or skips the blob.
    def push_args(kind):
        regs.append(Registry(work, name=f"reg-{kind}-{next(n)}"))
        return ["--root", root, "push", "localhost/big:1", f"{regs[-1].addr}/big/app:1"]
    progress_output.check_modes("push", push_args, "layer 1/1", "uploading", "pushed")

    src = f"{regs[0].addr}/big/app:1"

    def pull_args(kind):
        return ["--root", os.path.join(work, f"pull-{kind}-{next(n)}"), "pull", src]
    progress_output.check_modes("pull", pull_args, "layer 1/1", "downloading", "done")
finally:
    for r in regs:
        r.stop()
    shutil.rmtree(work, ignore_errors=True)
if progress_output.FAILURES:
    print("FAIL:\n  " + "\n  ".join(f.splitlines()[0] for f in progress_output.FAILURES))
    sys.exit(1)
print("PASS")
