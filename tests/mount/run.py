#!/usr/bin/python3
"""Mount-level differential tests of strata-fs against kernel overlayfs.

  run.py --list
  run.py [--binary PATH] [--mode root|rootless|userns] [-v] [--keep] [--uring] [--fs-opts O] CASE|GROUP...

The binary defaults to $STRATA_FS. Exit 0: all run cases passed; 1: a case failed;
77: every case was skipped (no root, /dev/fuse, overlayfs, binary...).
"""

import argparse
import fcntl
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from overlaytest import cases, env  # noqa: E402
from overlaytest.core import CASES, run_case  # noqa: E402

URING_SWITCH = "/sys/module/fuse/parameters/enable_uring"
URING_LOCK = "/run/lock/strata-fuse-uring.lock"  # also taken by bench/overlay_bench.py --uring


def select(names):
    if not names or names == ["all"]:
        return list(CASES.values())
    out = []
    for n in names:
        hit = [c for c in CASES.values() if c.name == n or c.group == n]
        if not hit:
            sys.exit(f"run.py: no case or group named {n!r} (see --list)")
        out += [c for c in hit if c not in out]
    return out


def reexec_as_user(args, binary):
    """As root: set up the rootless user, then run ourselves as that user (in a user namespace
    for --mode userns)."""
    try:
        pw = env.ensure_test_user()
    except env.Skip as e:
        print(f"SKIP: {e}")
        return env.SKIP
    if not binary or not os.path.exists(binary):
        print(f"SKIP: filesystem binary {binary!r} does not exist")
        return env.SKIP
    if not env.accessible_by(binary, pw.pw_uid, pw.pw_gid) or not env.accessible_by(
            os.path.join(HERE, "run.py"), pw.pw_uid, pw.pw_gid):
        # Copy what the user can't reach (e.g. a build dir under /root).
        stage = env.mkdtemp("rootless-bin")
        shutil.copy2(binary, os.path.join(stage, os.path.basename(binary)))
        shutil.copytree(HERE, os.path.join(stage, "mount"), ignore=shutil.ignore_patterns("__pycache__"))
        binary = os.path.join(stage, os.path.basename(binary))
        script = os.path.join(stage, "mount", "run.py")
    else:
        stage, script = None, os.path.join(HERE, "run.py")
    inner = ["/usr/bin/python3", script, "--binary", binary, "--mode", args.mode, "--as-user-done"]
    inner += (["-v"] if args.verbose else []) + (["--keep"] if args.keep else [])
    inner += (["--tsan"] if args.tsan else []) + (["--uring"] if args.uring else []) + args.cases
    if args.mode == "userns":
        inner = ["unshare", "-rm"] + inner
    cmd = ["runuser", "-u", env.TEST_USER, "--"] + inner
    e = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    e.pop("TMPDIR", None)
    try:
        return subprocess.call(cmd, env=e, cwd="/")
    finally:
        if stage:
            shutil.rmtree(stage, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help="case or group names (default: all)")
    ap.add_argument("--binary", default=os.environ.get("STRATA_FS", ""),
                    help="the FUSE overlay binary (default $STRATA_FS)")
    ap.add_argument("--mode", default="root", choices=["root", "rootless", "userns"])
    ap.add_argument("-v", "--verbose", action="store_true", help="print every op and check")
    ap.add_argument("--keep", action="store_true", help="keep fixture dirs")
    ap.add_argument("--tsan", action="store_true", help="fail on ThreadSanitizer reports")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--seed", help="random group: seed(s) to run, e.g. 7 or 1-5 or 3,9 "
                    "(sets OVERLAYTEST_SEEDS)")
    ap.add_argument("--ops", type=int, help="random group: ops per seed (OVERLAYTEST_OPS)")
    ap.add_argument("--shrink", action="store_true",
                    help="random group: shrink failing seeds (OVERLAYTEST_SHRINK=1)")
    ap.add_argument("--uring", action="store_true",
                    help="turn the kernel's FUSE-over-io_uring switch on for this run (root; "
                    "restored after) and fail any fs mount not served through io_uring")
    ap.add_argument("--fs-opts", help="options added to every fs mount, e.g. writeback=1 "
                    "(sets OVERLAYTEST_FS_OPTS)")
    ap.add_argument("--as-user-done", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fs_opts:
        os.environ["OVERLAYTEST_FS_OPTS"] = args.fs_opts  # inherited by the rootless re-run
    if args.uring and not args.list:
        os.environ["OVERLAYTEST_URING"] = "1"
        if not args.as_user_done and not env.in_userns():
            return with_uring_switch(lambda: run(args))
    return run(args)


def with_uring_switch(body):
    """Sets /sys/module/fuse/parameters/enable_uring to Y around body(), then restores it.
    Only for an explicit --uring run: the switch is system-wide (ctest runs these serially), and
    a lock file keeps two --uring runs (or bench/run.sh --uring) from restoring it under each
    other."""
    if not env.is_root():
        print(f"SKIP: --uring needs root to set {URING_SWITCH}")
        return env.SKIP
    with open(URING_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _with_uring_switch_locked(body)


def _with_uring_switch_locked(body):
    try:
        with open(URING_SWITCH) as f:
            old = f.read().strip()
    except OSError:
        print(f"SKIP: {URING_SWITCH} is missing: the kernel has no FUSE over io_uring (6.14+)")
        return env.SKIP
    try:
        with open(URING_SWITCH, "w") as f:
            f.write("Y")
    except OSError as e:
        print(f"SKIP: cannot turn FUSE over io_uring on ({URING_SWITCH}: {e.strerror})")
        return env.SKIP
    try:
        return body()
    finally:
        with open(URING_SWITCH, "w") as f:
            f.write(old)


def run(args):
    for val, var in ((args.seed, "OVERLAYTEST_SEEDS"), (args.ops, "OVERLAYTEST_OPS"),
                     ("1" if args.shrink else None, "OVERLAYTEST_SHRINK")):
        if val is not None:
            os.environ[var] = str(val)
    if args.list:
        for c in sorted(CASES.values(), key=lambda c: (c.group, c.name)):
            print(f"{c.group:10} {c.name:28} [{','.join(c.modes)}] {c.doc}")
        return 0
    selected = select(args.cases)
    binary = os.path.abspath(args.binary) if args.binary else ""
    if args.mode in ("rootless", "userns") and env.is_root() and not env.in_userns() \
            and not args.as_user_done:
        return reexec_as_user(args, binary)
    if args.mode == "userns" and not env.in_userns():
        return subprocess.call(["unshare", "-rm", "/usr/bin/python3"] + sys.argv)

    results = {}
    for c in selected:
        if args.mode not in c.modes:
            continue
        print(f"=== {c.name} ({c.group}, {args.mode}, {os.path.basename(binary) or '?'})", flush=True)
        status, msg = run_case(c, binary, args.mode, args.verbose, args.keep, args.tsan)
        results[c.name] = status
        if status == "fail":
            print("  " + msg.replace("\n", "\n  "))
        print(f"{status.upper()} {c.name}" + (f": {msg}" if status == "skip" else ""), flush=True)
    n = {s: sum(1 for v in results.values() if v == s) for s in ("pass", "fail", "skip")}
    print(f"--- {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped"
          + (": " + " ".join(k for k, v in results.items() if v == "fail") if n["fail"] else ""))
    if n["fail"]:
        return 1
    if not n["pass"]:
        return env.SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main())
