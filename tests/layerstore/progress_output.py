#!/usr/bin/env python3
"""Progress of load, save and commit as a user sees it (issue 13): on a terminal (a pty here)
a bar per layer redrawn in place with carriage returns and erase-line escapes, at most ~10
redraws a second; plain start and end lines when stderr is not a terminal; nothing with -q.
pull and push share the same Progress (tests/registry runs them with it off a terminal)."""
import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_habits import docker_archive  # noqa: E402
from strata_test_lib import STRATA, strata, workdir  # noqa: E402

FAILURES = []
ESC = "\x1b"


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))
    if not cond:
        FAILURES.append(f"{name}: {detail[:2000]}")


def on_pty(args):
    """Runs strata with stderr on a 160-column pty; (stderr text, seconds it ran)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    t0 = time.monotonic()
    p = subprocess.Popen([STRATA, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer of the pty is gone
            break
        if not chunk:
            break
        out += chunk
    p.wait()
    os.close(master)
    if p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}): {out!r}")
    return out.decode(errors="replace"), time.monotonic() - t0


def check_modes(name, args, label, verb, end_word):
    """The three forms of one command; `args` makes a fresh run each call (a new target)."""
    r = subprocess.run([STRATA, *args("lines")], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    check(f"{name}: runs off a terminal", r.returncode == 0, r.stderr)
    check(f"{name}: plain lines, no escapes or carriage returns", ESC not in r.stderr and "\r" not in r.stderr,
          repr(r.stderr))
    check(f"{name}: a start line", re.search(rf"^{re.escape(label)}: {verb}\b", r.stderr, re.M) is not None,
          r.stderr)
    check(f"{name}: an end line", re.search(rf"^{re.escape(label)}: {end_word}", r.stderr, re.M) is not None,
          r.stderr)

    r = subprocess.run([STRATA, *args("quiet"), "-q"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    check(f"{name} -q: nothing on stderr", r.returncode == 0 and r.stderr == "", repr(r.stderr))

    text, secs = on_pty(args("pty"))
    frames = [m.group(0) for m in re.finditer(rf"{re.escape(label)} \[[= >]*\][^\r\n{ESC}]*", text)]
    check(f"{name} on a pty: the bar is drawn", len(frames) >= 1, repr(text))
    check(f"{name} on a pty: redrawn in place (carriage return, erase to end of screen)",
          "\r" in text and f"{ESC}[J" in text, repr(text))
    check(f"{name} on a pty: no plain start line", f"{label}: {verb}" not in text, repr(text))
    check(f"{name} on a pty: the end line", re.search(rf"{re.escape(label)} {end_word}", text) is not None, repr(text))
    # Throttled: the first frame, one per 100 ms at most, and the redraws around start and end.
    check(f"{name} on a pty: at most ~10 redraws a second", len(frames) <= 4 + int(secs * 10),
          f"{len(frames)} frames in {secs:.2f} s")
    for f in frames:
        m = re.search(r"\] ([0-9.]+ [KMGT]?B) / ([0-9.]+ [KMGT]?B)  ([0-9.]+ [KMGT]?B)/s(  ETA \d+[hms]\S*)?$", f)
        check(f"{name} on a pty: frame {f[:60]!r} has bytes / total and rate", m is not None, f)
        # Part-way (some bytes done, not all) the frame also says how long the rest will take.
        if m and m.group(1) not in ("0 B", m.group(2)):
            check(f"{name} on a pty: frame {f[:60]!r} has an ETA", m.group(4) is not None, f)
    print(f"     {name}: {len(frames)} frames in {secs:.2f} s")


def main():
    work = workdir()
    try:
        root = os.path.join(work, "root")
        big = os.path.join(work, "big.tar")
        # 48 MB of incompressible data: several 100 ms redraw slots on most machines (the
        # checks hold for any number of frames).
        docker_archive(big, [("localhost/big:1", {"Cmd": ["/bin/sh"]}, os.urandom(24 << 20).hex())])
        n = iter(range(1000))

        def load_args(kind):
            return ["--root", os.path.join(work, f"load-{kind}-{next(n)}"), "load", "-i", big]
        check_modes("load", load_args, "layer 1/1", "unpacking", "done")

        strata(root, "load", "-q", "-i", big)
        diff_id = json.loads(strata(root, "inspect", "localhost/big:1").stdout)[0]["Config"]["rootfs"]["diff_ids"][0]

        def save_args(kind):
            return ["--root", root, "save", "-o", os.path.join(work, f"save-{kind}-{next(n)}.tar"), "localhost/big:1"]
        check_modes("save", save_args, diff_id[:19], "writing", "written")

        cid = strata(root, "create", "--name", "c", "localhost/big:1").stdout.strip()
        with open(os.path.join(root, "image", "overlay2", "layerdb", "mounts", cid, "mount-id")) as f:
            rw = os.path.join(root, "overlay2", f.read().strip(), "diff")
        with open(os.path.join(rw, "data"), "wb") as f:
            f.write(os.urandom(32 << 20))

        def commit_args(kind):
            return ["--root", root, "commit", "c", f"committed:{kind}{next(n)}"]
        check_modes("commit", commit_args, "layer of c", "exporting", "exported")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print("FAIL:\n  " + "\n  ".join(f.splitlines()[0] for f in FAILURES))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
