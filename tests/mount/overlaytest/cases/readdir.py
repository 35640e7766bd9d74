"""readdir: merge and dedupe across layers, telldir/seekdir offsets, a 100,000-entry directory."""

import hashlib
import os

from .. import env
from ..core import case
from ..fixture import D, F, OPQ, WH
from ..mounts import FuseMount
from ..script import Ops


def read_all(path):
    """[(name, telldir after it)] for one opendir pass."""
    out = []
    with env.CDir(path) as d:
        while True:
            n = d.read()
            if n is None:
                break
            out.append((n, d.tell()))
    return out


def dir_checks(t, rel, samples=50, chunk=None):
    """Records: names (or count+digest), no duplicates, seekdir to every sampled telldir gives
    the next name, and a listing resumed in a new opendir from a telldir completes it."""
    p = t.p(rel)
    try:
        ents = read_all(p)
    except OSError as e:
        t.note(f"readdir({rel})", env.errname(e.errno))
        return
    names = [n for n, _ in ents]
    real = sorted(n for n in names if n not in (".", ".."))
    if len(real) > 200:
        t.note(f"readdir({rel}) count", len(real))
        t.note(f"readdir({rel}) names digest", hashlib.sha256("\n".join(real).encode()).hexdigest()[:16])
    else:
        t.note(f"readdir({rel}) names", real)
    t.note(f"readdir({rel}) has . and ..", "." in names and ".." in names)
    t.note(f"readdir({rel}) no duplicates", len(names) == len(set(names)))

    step = max(1, len(ents) // samples)
    bad = []
    with env.CDir(p) as d:
        for i in list(range(0, len(ents) - 1, step))[::-1]:  # backwards: real seeks
            d.seek(ents[i][1])
            got = d.read()
            if got != names[i + 1]:
                bad.append((i, names[i + 1], got))
    t.note(f"seekdir({rel}) lands on the next entry", bad[:3] if bad else "ok")

    # Resume in a fresh opendir from offsets taken in another one (NFS-export/readdir restarts).
    chunk = chunk or max(1, len(ents) // 3)
    seen, pos, rounds = [], 0, 0
    while True:
        with env.CDir(p) as d:
            if pos:
                d.seek(pos)
            k = 0
            while k < chunk:
                n = d.read()
                if n is None:
                    break
                seen.append(n)
                k += 1
            pos = d.tell()
            rounds += 1
            if k < chunk or rounds > len(ents) + 2:
                break
    t.note(f"resumed readdir({rel}) complete", sorted(seen) == sorted(names) or
           f"{len(seen)} seen, {len(set(seen))} distinct, {len(names)} expected")


def merge_layers():
    top = [F("d/a", "top"), F("d/only_top"), WH("d/wh_mid"), D("d/sub"), F("d/sub/x"),
           F("e/t")]
    mid = [F("d/a", "mid"), F("d/only_mid"), F("d/wh_mid"), F("d/sub/y"), OPQ("e"), F("e/m")]
    bottom = [F("d/a", "bottom"), F("d/only_bottom"), F("d/sub/x", "bottom"), F("e/b")]
    bottom += [F(f"many/f{i:04d}") for i in range(0, 900)]
    mid += [F(f"many/f{i:04d}", "mid") for i in range(600, 1500)]
    top += [F(f"many/f{i:04d}", "top") for i in range(1400, 2000)] + [WH("many/f0100")]
    return [top, mid, bottom]


@case("readdir-merge", "readdir", ("root", "rootless", "userns"))
def readdir_merge(ctx):
    """Merged listings deduped, whiteouts/opaque applied, offsets stable for seekdir/telldir."""
    upper = [F("d/up"), F("d/a", "upper"), WH("d/only_bottom"), F("many/u")]

    def script(t):
        for d in ["d", "d/sub", "e", "many", "."]:
            dir_checks(t, d, chunk=97)
        t.create("d/new_after_open")
        dir_checks(t, "d")

    ctx.differential("merge", merge_layers(), script, upper=upper, share_lowers=True)


@case("readdir-large", "readdir", ("root",))
def readdir_large(ctx):
    """A 100,000-entry merged dir lists fully (count, names); reports the daemon's peak RSS."""
    base = ctx.path("large")
    l0, l1 = os.path.join(base, "l0", "big"), os.path.join(base, "l1", "big")
    os.makedirs(l0)
    os.makedirs(l1)
    for i in range(40000, 100000):  # 60k in the top lower, 50k below, 10k of them shadowed
        open(os.path.join(l0, f"entry-{i:06d}"), "wb").close()
    for i in range(0, 50000):
        open(os.path.join(l1, f"entry-{i:06d}"), "wb").close()
    lowers = [os.path.dirname(l0), os.path.dirname(l1)]
    dirs = {}
    for side in ("k", "f"):
        up, work = os.path.join(base, side, "upper"), os.path.join(base, side, "work")
        os.makedirs(up)
        os.makedirs(work)
        dirs[side] = (up, work, os.path.join(base, side, "mnt"))
    k = ctx.mount_kernel(lowers, *dirs["k"])
    f = ctx.mount_fs(lowers, *dirs["f"])
    recs = []
    for m, side in ((k, "kernel"), (f, "fs")):
        t = Ops(m.path, ctx.verbose, side)
        dir_checks(t, "big", samples=200, chunk=30000)
        t.note("scandir count", sum(1 for _ in os.scandir(t.p("big"))))
        recs.append(t.rec)
    from ..view import diff_records
    lines = diff_records(*recs)
    if lines:
        ctx.fail("100k-entry dir: kernel and fs differ\n" + "\n".join(lines))
    if isinstance(f, FuseMount):
        rss = f.rss_kib()
        ctx.note(f"daemon peak RSS (VmHWM) after listing 100k entries: "
                 f"{rss / 1024:.1f} MiB" if rss else "daemon RSS unavailable")
