#!/usr/bin/python3
"""The real-client row: podman installing a fixed package set with `dpkg -i` in a Debian 12
container, with three storage configurations in one run: the overlay driver on kernel overlayfs
(native), with mount_program=fuse-overlayfs and with mount_program=strata-fs.

Driven by bench/podman_dpkg.sh. One run:
  1. the Debian 12 minbase image the distro tests use (mmdebstrap from this machine's apt mirror,
     cached), loaded into three podmans, each with its own storage.conf, --root and --runroot
     under a fresh dir in /var/tmp;
  2. python3 and its dependencies (the .debs `apt-get install --download-only` fetches in that
     image), fetched once into /var/tmp/strata-bench-cache and reused by later runs;
  3. --reps times, the three configurations interleaved (order rotated per repetition): a fresh
     container (podman run --rm, no network) doing `dpkg -i` of the whole set, checked by
     running python3 in it afterwards; timed as the whole `podman run` and as dpkg inside;
  4. median and spread (min-max) per configuration, ratios of the medians to native.
--variant NAME=OPTS adds a configuration: strata-fs with OPTS (containers/storage's overlay.mountopt,
which it passes to the mount program); --uring turns the kernel's FUSE io_uring switch on for the
run; --features is both, as bench/run.sh --features. Each strata-fs try records the transport its daemon served (io_uring or /dev/fuse).
Skips (exit 77) without podman, runc, mmdebstrap, fuse-overlayfs or the mirror."""
import argparse
import datetime
import fcntl
import glob
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "distro"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distro_lib import Podman, expect_ok, log, need_tools, prepare_image, skip, unmount_all_under  # noqa: E402
from overlay_bench import FEATURES_OFF, uring_fds, uring_switch_on, uring_switch_restore  # noqa: E402

CACHE = "/var/tmp/strata-bench-cache"
IMG = "localhost/strata-bench/debian:12"
PACKAGES = ["python3"]
CONFIGS = ["native", "fuse-overlayfs", "strata-fs"]
# dpkg -i of the set, one call per stage (see pre_depends_stages), then the check; the last line
# is dpkg's time in ns, measured inside the container. $STAGES: one stage per line.
DPKG = r'''
set -eu
s=$(date +%s%N)
while read -r stage; do
  dpkg -i $stage > /tmp/dpkg.log 2>&1 || { grep -v '^\(Selecting\|Preparing\|Unpacking\|Setting up\|(Reading\)' /tmp/dpkg.log | tail -8 >&2; exit 1; }
done <<< "$STAGES"
e=$(date +%s%N)
python3 -c 'import json, sqlite3; print(42)'
echo $((e - s))
'''


def pre_depends_stages(debs):
    """The .debs in dpkg -i calls: dpkg refuses to unpack a package whose Pre-Depends are not
    configured yet, also within one call (python3 pre-depends on python3-minimal, which pre-depends
    on python3.11-minimal), so a package goes one call after the latest of those it pre-depends
    on, as apt would order them. Returns the calls, each a list of paths in the container."""
    fields = {}
    for path in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        out = subprocess.run(["dpkg-deb", "-f", path, "Package", "Pre-Depends"], capture_output=True,
                             text=True, check=True).stdout
        f = dict(l.split(": ", 1) for l in out.splitlines() if ": " in l)
        pre = {alt.split()[0].split(":")[0] for dep in f.get("Pre-Depends", "").split(",")
               for alt in dep.split("|") if alt.strip()}
        fields[f["Package"]] = ("/debs/" + os.path.basename(path), pre)
    stage = {}

    def stage_of(pkg, seen=()):
        if pkg not in stage:
            if pkg in seen:
                raise RuntimeError(f"Pre-Depends cycle through {pkg}")
            stage[pkg] = 1 + max((stage_of(d, seen + (pkg,)) for d in fields[pkg][1] if d in fields), default=-1)
        return stage[pkg]
    for pkg in fields:
        stage_of(pkg)
    return [[fields[p][0] for p in sorted(fields) if stage[p] == k] for k in range(max(stage.values()) + 1)]


def fetch_debs(podman, image_id):
    """The .debs of PACKAGES and their dependencies that the image lacks, downloaded once by apt
    in the image itself, cached by image and package list. Returns the cache dir."""
    key = hashlib.sha256(json.dumps([image_id, PACKAGES]).encode()).hexdigest()[:12]
    out = os.path.join(CACHE, f"podman-dpkg-debs-{key}")
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, "podman-dpkg.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(out, "SHA256SUMS")):
            r = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
            if r.returncode == 0:
                log(f"packages: cached {out}")
                return out
            log(f"packages: {out} does not match its SHA256SUMS: fetching again")
        shutil.rmtree(out, ignore_errors=True)
        partial = out + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(os.path.join(partial, "partial"))  # apt wants it there
        log(f"packages: apt-get install --download-only {' '.join(PACKAGES)} in the image")
        r = podman.run("--rm", "-v", f"{partial}:/var/cache/apt/archives", IMG, "bash", "-c",
                       "set -e; apt-get -q update >/dev/null; apt-get -q -y -o APT::Sandbox::User=root "
                       "--no-install-recommends --download-only install " + " ".join(PACKAGES), timeout=600)
        expect_ok(r, "apt-get install --download-only")
        shutil.rmtree(os.path.join(partial, "partial"), ignore_errors=True)
        if os.path.exists(os.path.join(partial, "lock")):
            os.unlink(os.path.join(partial, "lock"))
        debs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(partial, "*.deb")))
        if not debs:
            raise RuntimeError(f"apt downloaded no packages: {r.stdout[-1000:]}")
        sums = subprocess.run(["sha256sum", *debs], cwd=partial, capture_output=True, text=True, check=True).stdout
        with open(os.path.join(partial, "SHA256SUMS"), "w") as f:
            f.write(sums)
        os.rename(partial, out)
        log(f"packages: {len(debs)} .debs in {out}")
        return out


def strata_daemons(podman_dir):
    """pids of the strata-fs daemons serving mounts of the podman in podman_dir."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if argv and os.path.basename(argv[0]) == b"strata-fs" and any(podman_dir.encode() in a for a in argv):
            pids.append(int(pid))
    return pids


def one_try(podman, debs, stages, watch):
    """One container doing dpkg -i of the set: (podman run seconds, dpkg seconds, transport).
    With watch, looks at the strata-fs daemon every 0.2 s while it runs: "io_uring" once it holds
    its rings, else "/dev/fuse" (None when not watched)."""
    os.sync()  # earlier tries' dirty data written out before the clock starts
    t0 = time.perf_counter()
    p = subprocess.Popen(podman.cmd + ["run", "--rm", "--network", "none", "--pull", "never", "-v", f"{debs}:/debs:ro",
                                       "-e", "STAGES=" + "\n".join(" ".join(s) for s in stages), IMG, "bash", "-c",
                                       DPKG], env=podman.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    transport = "/dev/fuse" if watch else None
    daemons = []  # found once, then only their fds are looked at: the watch must cost next to nothing
    while watch and p.poll() is None and transport != "io_uring":
        daemons = [d for d in daemons if os.path.exists(f"/proc/{d}")] or strata_daemons(podman.dir)
        if any(uring_fds(pid) for pid in daemons):
            transport = "io_uring"
        time.sleep(0.2)
    try:
        out, err = p.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    wall = time.perf_counter() - t0
    lines = out.split()
    if p.returncode != 0 or len(lines) < 2 or lines[-2] != "42":
        raise RuntimeError(f"exit {p.returncode}: {err.strip()[-1500:]} {out[-300:]}")
    return wall, int(lines[-1]) / 1e9, transport


def stats(vals):
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)} if vals else None


def report(args, configs, samples, ndebs, elapsed, fs):
    head = (f"podman dpkg -i benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M} ({elapsed:.0f} s)\n"
            f"machine: {os.cpu_count()} cores, kernel {platform.release()}; podman "
            f"{subprocess.run(['podman', '--version'], capture_output=True, text=True).stdout.split()[-1]}; "
            f"strata-fs {fs}; FUSE io_uring switch {'on' if args.uring else 'as it was'}\n"
            f"workload: podman run --rm (Debian 12 minbase) dpkg -i of {' '.join(PACKAGES)} and its dependencies "
            f"({ndebs} .debs, in calls ordered by Pre-Depends), then python3; {args.reps} reps, order rotated; "
            f"median [min-max]; ratios of the medians to native\n"
            + "".join(f"{c}: strata-fs with {o}\n" for c, o in configs.items() if c not in CONFIGS))
    hdr = ["storage", "podman run (s)", "dpkg -i (s)", "run / native", "dpkg / native", "strata-fs transport"]
    rows = []
    nw, nd = stats(samples["native"]["run"]), stats(samples["native"]["dpkg"])
    for c in configs:
        w, d = stats(samples[c]["run"]), stats(samples[c]["dpkg"])
        fails = samples[c]["failed"]
        ok = w and not fails
        cell = lambda s: f"{s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}]" if s else "-"
        ratio = lambda s, n: f"{s['median'] / n['median']:.2f}x" if s and n and ok else "-"
        ts = sorted(set(t for t in samples[c]["transport"] if t))
        rows.append([c + (f" ({fails} failed)" if fails else ""), cell(w), cell(d), ratio(w, nw), ratio(d, nd),
                     ", ".join(ts) or "-"])
    widths = [max(len(r[j]) for r in rows + [hdr]) for j in range(len(hdr))]
    fmt = lambda cs: "  ".join(c.ljust(widths[j]) if j in (0, len(cs) - 1) else c.rjust(widths[j])
                               for j, c in enumerate(cs)).rstrip()
    table = "\n".join([fmt(hdr), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])
    print(head + "\n" + table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": head, "table": table, "packages": PACKAGES, "debs": ndebs, "configs": configs,
                       "samples": samples, "stats": {c: {k: stats(samples[c][k]) for k in ("run", "dpkg")}
                                                     for c in configs}}, f, indent=1)
        log(f"wrote {args.json}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="containers per storage configuration (default 5)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=OPTS",
                    help="also run strata-fs with OPTS (overlay.mountopt), as configuration NAME (repeatable; "
                    "e.g. nopt=passthrough=off, nouring=uring=off, wb=writeback=1)")
    ap.add_argument("--uring", action="store_true", help="turn the kernel's FUSE io_uring switch on for the run "
                    "(and back after): strata-fs then serves io_uring, and a strata-fs try on /dev/fuse without "
                    "uring=off is an error")
    ap.add_argument("--features", action="store_true", help="as bench/run.sh --features: --uring and one "
                    "configuration per feature off: " + ", ".join(f"{k}={v}" for k, v in FEATURES_OFF.items()))
    ap.add_argument("--json", metavar="FILE", help="write the samples and statistics to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the podman roots in /var/tmp")
    args = ap.parse_args()
    if args.features:
        args.uring = True
        args.variant += [f"{k}={v}" for k, v in FEATURES_OFF.items()]
    fs = os.environ.get("STRATA_FS") or os.path.join(ROOT, "build", "fs", "strata-fs")
    # configuration -> (mount program, mount options)
    configs = {"native": (None, None), "fuse-overlayfs": (shutil.which("fuse-overlayfs"), None),
               "strata-fs": (os.path.abspath(fs), None)}
    for v in args.variant:
        name, eq, opts = v.partition("=")
        if not eq or not name or not opts or name in configs:
            ap.error(f"--variant {v}: want NAME=OPTS with a new NAME")
        configs[name] = (os.path.abspath(fs), opts)
    if os.geteuid() != 0:
        skip("needs root (podman with kernel overlayfs as the native storage)")
    need_tools("podman", "runc", "conmon", "mmdebstrap", "fuse-overlayfs", "fusermount3", "dpkg-deb")
    if not os.access(fs, os.X_OK):
        skip(f"{fs} is not built (STRATA_FS names another)")
    t_start = time.perf_counter()
    work = tempfile.mkdtemp(prefix="strata-podman-", dir="/var/tmp")  # ext4, as the other benchmarks
    log(f"run dir: {work}")
    # short dir names: podman refuses a runroot path over 50 characters
    podmans = {c: Podman(os.path.join(work, str(i)), *configs[c]) for i, c in enumerate(configs)}
    uring_old = None
    try:
        archive = prepare_image(work, IMG)  # skips when the mirror does not answer
        for c, p in podmans.items():
            expect_ok(p("load", "-q", "-i", archive, timeout=600), f"podman load ({c})")
        image_id = podmans["native"]("image", "inspect", "--format", "{{.Id}}", IMG).stdout.strip()
        debs = fetch_debs(podmans["native"], image_id)
        ndebs = len(glob.glob(os.path.join(debs, "*.deb")))
        stages = pre_depends_stages(debs)
        log(f"dpkg -i in {len(stages)} calls of {', '.join(str(len(s)) for s in stages)} packages (Pre-Depends)")
        if args.uring:
            uring_old = uring_switch_on()
        names = list(configs)
        samples = {c: {"run": [], "dpkg": [], "transport": [], "failed": 0} for c in names}
        for rep in range(args.reps):
            for c in names[rep % len(names):] + names[:rep % len(names)]:
                strata = configs[c][0] == os.path.abspath(fs)
                try:
                    wall, dpkg, transport = one_try(podmans[c], debs, stages, watch=strata)
                    if strata and args.uring and transport != "io_uring" and "uring=off" not in (configs[c][1] or ""):
                        raise RuntimeError(f"strata-fs served {transport}, not io_uring")
                    samples[c]["run"].append(wall)
                    samples[c]["dpkg"].append(dpkg)
                    samples[c]["transport"].append(transport)
                    log(f"rep {rep + 1} {c}: podman run {wall:.2f} s, dpkg -i {dpkg:.2f} s"
                        + (f", {transport}" if transport else ""))
                except Exception as e:  # a failed try is reported, not fatal
                    samples[c]["failed"] += 1
                    log(f"rep {rep + 1} {c}: FAILED: {e}")
        report(args, {c: configs[c][1] for c in names}, samples, ndebs, time.perf_counter() - t_start, fs)
        return 1 if any(samples[c]["failed"] for c in names) else 0
    finally:
        if uring_old is not None:
            uring_switch_restore(uring_old)
        for p in podmans.values():
            p.remove_all()
        unmount_all_under(work)
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
