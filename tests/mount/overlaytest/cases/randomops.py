"""Random-operation differential test: seeded op sequences on seeded 3-layer fixtures, run in
lockstep on kernel overlayfs (root, index=on,redirect_dir=on,metacopy=off) and the fs.

Per seed: build the fixture twice (the fs's copy mixes marker forms), mount both, run the ops
one at a time on both, compare every result/errno (first difference ends the seed), compare
the whole trees every OVERLAYTEST_CHECK_EVERY ops and at the end (listing incl. nlink, content,
xattrs, plus which names share an st_ino), then unmount both, mount both again and compare once
more. Knobs (environment, or run.py --seed/--ops/--shrink):

  OVERLAYTEST_SEEDS=1-20 | 7 | 3,9,12    seeds of random-ops (default 1-20)
  OVERLAYTEST_OPS=1500                   ops per seed
  OVERLAYTEST_SHRINK=1                   shrink each failing seed (delta debugging), print it
  OVERLAYTEST_SHRINK_BUDGET=300          seconds per failing seed for the shrinker
  OVERLAYTEST_CHECK_EVERY=100            ops between whole-tree comparisons
  OVERLAYTEST_WEIGHTS=fd=0,open=0        op-kind weights (randomgen.WEIGHTS), to explore past
                                         a known defect; the default suite never sets it

random-regressions replays the shrunk op lists in tests/mount/random-regressions.json.

What is deliberately not compared (each also commented where it is left out): st_ino values
(only which names share one); dir nlink (kernel: 1 for merged dirs) and dir mtimes (a merged
dir's is the upper's in the kernel); file mtimes only as "fixture time" vs "recent"; lseek
SEEK_END on a directory fd (FUSE's kernel side allows it, overlayfs refuses). Fixtures avoid
whiteouts in dirs only one lower layer contributes to (the kernel lists those; see randomgen).

Two deliberate differences of strata-fs (README.md, "Deliberate differences from kernel
overlayfs") are accepted, each only through an fd whose file has no name left on either side
(see _deliberate): a data/metadata change through it where the kernel answers EEXIST and strata
succeeds (the fd is then closed on both sides: its file differs and nothing else reaches it),
and fstat through it showing kernel nlink 1, strata nlink 0 (all else equal; only for a file
that was below a directory when that was renamed, tracked by Side). They are counted;
a regression entry's "expect_deliberate" lists the ones its replay must meet.
OVERLAYTEST_RANDOM_SELFCHECK=1 mounts kernel overlayfs on both sides: it must always pass.
"""

import json
import os
import time

from .. import env, randomgen as rg
from ..core import case

DEFAULT_SEEDS = "1-20"
DEFAULT_OPS = 1500
REGRESSIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "random-regressions.json")
# The oracle. metacopy=off: a chmod/chown copy-up copies data too, as strata does.
KERNEL_OPTS = "index=on,redirect_dir=on,metacopy=off"
TAIL = 120  # ops of the sequence printed with a failure (all of them go to a file)


READ_ONLY = {"read", "stat", "readdir", "readlink", "getxattr", "listxattr", "fstat", "pread",
             "fgetxattr", "lseek_end"}
STATS = {}  # op kind -> [succeeded, failed] on the kernel: how much the ops exercise

# ---- deliberate differences of strata-fs (README.md, "Deliberate differences from kernel
# overlayfs"): each accepted only in exactly the form that README bullet states, and only when
# the open file has no name left in the merged view on *both* sides (Side.nameless walks the
# tree for its st_ino). Anything else that differs still ends the seed.
GONE_CHANGE = "nameless-fd-change"    # README bullet "A lower file whose name is gone"
GONE_NLINK = "nameless-fstat-nlink"    # README bullet "After a merged directory is renamed"
# fd ops that change a file's data or metadata (and so need a copy-up of a lower file).
FD_CHANGES = {"write", "pwrite", "ftruncate", "fchmod", "fchown", "fsetxattr", "fremovexattr"}
DELIBERATE = {}  # GONE_* -> times accepted in this run (all seeds)


def _deliberate(op, rk, rf, ks, fs):
    """Which deliberate difference (GONE_*) the differing results rk (kernel) / rf (fs) of op
    are, or None."""
    if op[0] != "fd":
        return None
    slot, sub = op[1], op[2]
    # README "A lower file whose name is gone can still be changed through an open fd (fchmod,
    # fsetxattr): strata-fs copies it up anonymously. The kernel fails those with EEXIST."
    if sub in FD_CHANGES and rk == ("err", "EEXIST") and rf[0] == "ok":
        return GONE_CHANGE if ks.nameless(slot) and fs.nameless(slot) else None
    # README "After a merged directory is renamed, the files below it are upper copies: an open
    # fd of one whose name is then removed shows st_nlink 0, where the kernel ... shows the lower
    # file's 1." Only that pair, every other field of the stat equal, and only for a file that
    # was below a renamed directory (a plain unlinked lower file shows 1 on both sides).
    if sub == "fstat" and rk[0] == rf[0] == "ok" and len(rk) == len(rf) == 2 and \
            isinstance(rk[1], dict) and isinstance(rf[1], dict) and \
            rk[1].get("nlink") == 1 and rf[1].get("nlink") == 0 and \
            dict(rk[1], nlink=0) == rf[1]:
        return GONE_NLINK if ks.below_renamed_dir(slot) and fs.below_renamed_dir(slot) and \
            ks.nameless(slot) and fs.nameless(slot) else None
    return None


class Outcome:
    def __init__(self, ops, stage=None, index=None, lines=(), sig=None, every=0, deliberate=None):
        self.ops, self.stage, self.index, self.lines, self.sig = ops, stage, index, list(lines), sig
        self.every = every
        self.deliberate = deliberate if deliberate is not None else {}  # GONE_* -> count

    @property
    def failed(self):
        return self.stage is not None


def _seeds(spec):
    out = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def _tree_sig(stage, lines):
    cats = set()
    for ln in lines:
        s = ln.strip()
        if s.startswith("differs:"):
            cats.add(s.split(": ")[2].split(":")[0] if s.count(": ") >= 2 else "differs")
        elif s.startswith("names sharing"):
            cats.add("ino")
        else:
            cats.add(s.split(":")[0])
    return ("remount" if "remount" in stage else "tree", frozenset(cats))


# Tree differences, worst first: a shrink keeps the worst one the original run showed.
SEVERITY = ["missing in fs", "extra in fs", "error", "type", "sha256", "size", "target",
            "xattrs", "mode", "uid", "gid", "ino", "nlink", "mtime"]


def _worst(cats):
    ranked = [c for c in SEVERITY if c in cats]
    return ranked[0] if ranked else min(cats, default=None)


def _same_failure(want, got):
    if got is None or want[0] != got[0]:
        return False
    if want[0] in ("tree", "remount"):
        return _worst(want[1]) in got[1]
    return want == got


def run_seed(ctx, seed, nops, replay=None, check_every=100, keep_dirs=False, remount=True, fs_opts=""):
    """Runs one seed (generated ops, or `replay`'s op list) with `fs_opts` added to the fs's
    mount options. Returns an Outcome."""
    base = os.path.join(ctx.tmp, f"seed{seed}-{time.monotonic_ns()}")
    # Self-check of the harness (OVERLAYTEST_RANDOM_SELFCHECK=1): the "fs" side is a second
    # kernel overlay mount, so any difference is the generator's or the comparison's fault.
    selfcheck = os.environ.get("OVERLAYTEST_RANDOM_SELFCHECK", "") not in ("", "0")
    kd, fd = rg.build_fixtures(base, seed, ctx.kernel_form, fs_alternate_forms=not selfcheck)

    def mount_fs():
        if selfcheck:
            return ctx.mount_kernel(*fd, fmnt, opts=KERNEL_OPTS)
        return ctx.mount_fs(*fd, fmnt, opts=fs_opts)
    kmnt, fmnt = os.path.join(base, "k", "mnt"), os.path.join(base, "f", "mnt")
    ops = []
    deliberate = {}
    k = f = None
    ks = fs = None
    try:
        k = ctx.mount_kernel(*kd, kmnt, opts=KERNEL_OPTS)
        f = mount_fs()
        ks, fs = rg.Side(k.path, "kernel", ctx.verbose), rg.Side(f.path, "fs", ctx.verbose)

        def tree(stage, idx):
            lines = rg.diff_snapshots(rg.snapshot(k.path), rg.snapshot(f.path))
            return Outcome(ops, stage, idx, lines, _tree_sig(stage, lines), check_every,
                           deliberate) if lines else None

        o = tree("view before ops", -1)
        if o:
            return o
        gen = rg.Generator(seed, rg.parse_weights(os.environ.get("OVERLAYTEST_WEIGHTS"))) \
            if replay is None else None
        n = len(replay) if replay is not None else nops
        for i in range(n):
            op = tuple(replay[i]) if replay is not None else gen.next(k.path)
            ops.append(op)
            rk, rf = ks.run(op), fs.run(op)
            STATS.setdefault(op[0] if op[0] != "fd" else "fd." + op[2], [0, 0])[rk[0] != "ok"] += 1
            if gen:
                gen.after(op)
            if rk != rf:
                why = _deliberate(op, rk, rf, ks, fs)
                if why is None:
                    sig = ("op", op[0] if op[0] != "fd" else "fd." + op[2])
                    return Outcome(ops, "op result", i, [f"  kernel: {rg.view.short(rk)}",
                                                         f"  fs:     {rg.view.short(rf)}"], sig,
                                   deliberate=deliberate)
                deliberate[why] = deliberate.get(why, 0) + 1
                DELIBERATE[why] = DELIBERATE.get(why, 0) + 1
                ctx.log(f"seed {seed} op #{i} {rg.op_label(op)}: deliberate difference ({why}):"
                        f" kernel {rg.view.short(rk)}, fs {rg.view.short(rf)}")
                if why == GONE_CHANGE:
                    # The fd's file now differs between the sides (strata changed its anonymous
                    # copy, the kernel nothing) and no name reaches it: stop using it on both.
                    ks.forget(op[1])
                    fs.forget(op[1])
            if check_every and (i + 1) % check_every == 0 and i + 1 < n:
                o = tree(f"tree after op #{i}", i)
                if o:
                    return o
        ks.close_all()
        fs.close_all()
        o = tree("tree after all ops", len(ops) - 1)
        if o or not remount:
            return o or Outcome(ops, deliberate=deliberate)
        ctx.unmount(f)
        ctx.unmount(k)
        k = ctx.mount_kernel(*kd, kmnt, opts=KERNEL_OPTS)
        f = mount_fs()
        o = tree("tree after unmount+remount of both", len(ops) - 1)
        if o:
            return o
        return Outcome(ops, deliberate=deliberate)
    finally:
        for s in (ks, fs):
            if s:
                s.close_all()
        for m in (f, k):
            if m:
                ctx.unmount(m)
        if not (keep_dirs or ctx.keep):
            env.rmtree(base)


def shrink(ctx, seed, first, budget_s):
    """Delta debugging (ddmin) over the op list of a failing seed, keeping failures of the same
    kind. The fixture stays the seed's. Returns (ops, Outcome)."""
    deadline = time.monotonic() + budget_s
    want = first.sig
    runs = [0]

    # A tree difference is looked for after every op (to find the op that made it); an op
    # result difference needs no tree checks on the way (an earlier, other tree difference
    # would only stop ddmin from removing ops).
    every = 1 if want[0] in ("tree", "remount") else 0

    def test(ops):
        runs[0] += 1
        o = run_seed(ctx, seed, 0, replay=ops, check_every=every, remount=want[0] == "remount")
        return o if o.failed and _same_failure(want, o.sig) else None

    def cut(o, cand):
        return cand[:o.index + 1] if 0 <= o.index < len(cand) else cand

    ops = list(first.ops)
    best = first
    # 1. find the first op after which anything differs (tree checks after every op)
    o = test(ops)
    if o:
        best, ops = o, cut(o, ops)
    # 2. without the ops that change nothing (reads, stats), bar the last (it may be the one)
    cand = [x for x in ops[:-1] if x[0] not in READ_ONLY and
            not (x[0] == "fd" and x[2] in READ_ONLY)] + ops[-1:]
    if len(cand) < len(ops):
        o = test(cand)
        if o:
            best, ops = o, cut(o, cand)
    # 3. ddmin
    n = 2
    while len(ops) >= 2 and time.monotonic() < deadline:
        chunk = max(1, len(ops) // n)
        reduced = False
        for start in range(0, len(ops), chunk):
            if time.monotonic() >= deadline:
                break
            cand = ops[:start] + ops[start + chunk:]
            o = test(cand)
            if o:
                best, ops = o, cut(o, cand)
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(ops), n * 2)
    ctx.note(f"seed {seed}: shrunk to {len(ops)} ops in {runs[0]} replays"
             + ("" if time.monotonic() < deadline else " (budget spent)"))
    return ops, best


def _report(ctx, seed, o, what="seed"):
    ops = o.ops
    op = ops[o.index] if 0 <= o.index < len(ops) else None
    if o.stage == "op result":
        where = f" at op #{o.index}: {rg.op_label(op)}"
    elif op and o.sig[0] == "tree" and o.stage.startswith("tree after op"):
        where = f" (trees compared every {o.every} ops; last op: {rg.op_label(op)})" \
            if o.every > 1 else f": {rg.op_label(op)}"
    else:
        where = ""
    head = f"{what} {seed}: {o.stage}{where}"
    dump = os.path.join("/var/tmp", f"strata-random-seed{seed}.json")
    try:
        with open(dump, "w") as fh:
            json.dump({"seed": seed, "ops": [list(x) for x in ops]}, fh)
    except OSError:
        dump = None
    shown = ops[-TAIL:]
    listing = [f"    #{len(ops) - len(shown) + i}: {rg.op_label(x)}" for i, x in enumerate(shown)]
    more = f"  (first {len(ops) - len(shown)} ops not shown; all in {dump})" \
        if len(shown) < len(ops) else f"  (op list also in {dump})"
    body = o.lines[:60] + ([f"  ... {len(o.lines) - 60} more lines"] if len(o.lines) > 60 else [])
    fx = []
    if len(ops) <= 12:  # a shrunk sequence: the fixture entries it can touch
        near = [a for x in ops for a in x[1:]] or [""]
        fx = ["  fixture entries under the top-level names the ops use (l0 = top lower):"] + \
            rg.describe_fixture(seed, near).split("\n")
    ctx.fail("\n".join([head] + body + [f"  ops so far ({len(ops)}):"] + listing + [more] + fx))
    return head


def _regression_line(seed, ops, o):
    found = o.stage + (f" at {rg.op_label(ops[o.index])}" if 0 <= o.index < len(ops) else "")
    found += ": " + (o.lines[0].strip() if o.lines else "")
    return json.dumps({"seed": seed, "fixture_version": rg.FIXTURE_VERSION, "found": found,
                       "ops": [list(x) for x in ops]})


@case("random-ops", "random", ("root",))
def random_ops(ctx):
    """Seeded random op sequences on random 3-layer fixtures vs kernel (index=on,redirect_dir=on).

    Files, dirs, hardlinks, renames (also of lower dirs, NOREPLACE/EXCHANGE), xattrs, symlinks
    and open-then-unlinked fds; every result, the tree (nlink, st_ino sharing) and a remount."""
    ctx.require_root()
    rg.private_mount_namespace()
    seeds = _seeds(os.environ.get("OVERLAYTEST_SEEDS") or DEFAULT_SEEDS)
    nops = int(os.environ.get("OVERLAYTEST_OPS") or DEFAULT_OPS)
    every = int(os.environ.get("OVERLAYTEST_CHECK_EVERY") or 100)
    do_shrink = os.environ.get("OVERLAYTEST_SHRINK", "") not in ("", "0")
    budget = float(os.environ.get("OVERLAYTEST_SHRINK_BUDGET") or 300)
    t0 = time.monotonic()
    failed = []
    for seed in seeds:
        ts = time.monotonic()
        o = run_seed(ctx, seed, nops, check_every=every)
        took = time.monotonic() - ts
        if not o.failed:
            ctx.log(f"seed {seed}: {nops} ops same ({took:.1f} s)")
            continue
        head = _report(ctx, seed, o)
        print(f"  {head}  ({took:.1f} s)", flush=True)
        failed.append(seed)
        if do_shrink:
            ops, best = shrink(ctx, seed, o, budget)
            _report(ctx, seed, best, "shrunk seed")
            print("  regression entry (append to tests/mount/random-regressions.json):\n  "
                  + _regression_line(seed, ops, best), flush=True)
    ctx.log("kernel results per op kind (ok/error): " + ", ".join(
        f"{k} {v[0]}/{v[1]}" for k, v in sorted(STATS.items())))
    ctx.note(f"{len(seeds)} seeds x {nops} ops: {len(failed)} failed"
             + (f" ({' '.join(map(str, failed))})" if failed else "")
             + f"; {time.monotonic() - t0:.0f} s"
             + ("; deliberate differences accepted: " + ", ".join(
                 f"{k} x{v}" for k, v in sorted(DELIBERATE.items())) if DELIBERATE else ""))


@case("random-regressions", "random", ("root",))
def random_regressions(ctx):
    """Replays the shrunk failing sequences kept in tests/mount/random-regressions.json."""
    ctx.require_root()
    rg.private_mount_namespace()
    with open(REGRESSIONS) as fh:
        entries = json.load(fh)["regressions"]
    for e in entries:
        if e.get("fixture_version", 1) != rg.FIXTURE_VERSION:
            ctx.fail(f"seed {e['seed']}: recorded with fixture version {e.get('fixture_version')},"
                     f" generator is {rg.FIXTURE_VERSION}: shrink it again")
            continue
        o = run_seed(ctx, e["seed"], 0, replay=e["ops"], check_every=1, fs_opts=e.get("fs_opts", ""))
        if o.failed:
            head = _report(ctx, e["seed"], o, "regression seed")
            print(f"  {head}  (was: {e.get('found', '?')})", flush=True)
            continue
        # An entry that encodes a deliberate difference must still meet it: strata's documented
        # behaviour (README.md) is what it guards.
        unmet = [w for w in e.get("expect_deliberate", []) if not o.deliberate.get(w)]
        if unmet:
            ctx.fail(f"regression seed {e['seed']}: the replay never showed the deliberate "
                     f"difference(s) {unmet} ({e.get('what', '')}); if strata now behaves like "
                     f"the kernel there, README.md and this entry must change with it")
        else:
            ctx.log(f"regression seed {e['seed']}: same ({e.get('found', '')})"
                    + (f"; deliberate: {o.deliberate}" if o.deliberate else ""))
    ctx.note(f"{len(entries)} regression sequences replayed")
