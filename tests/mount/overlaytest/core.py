"""Case registry, the per-case context (fixtures, mounts, teardown) and the differential check."""

import os
import shutil
import traceback

from . import env, fixture, view
from .env import Failure, Skip
from .fixture import Form
from .mounts import FuseMount, KernelMount, require_fuse, require_kernel_overlay
from .script import Ops

CASES = {}


class Case:
    def __init__(self, fn, name, group, modes, doc):
        self.fn, self.name, self.group, self.modes, self.doc = fn, name, group, modes, doc


def case(name, group, modes=("root",)):
    def deco(fn):
        CASES[name] = Case(fn, name, group, modes, (fn.__doc__ or "").strip().split("\n")[0])
        return fn
    return deco


class Context:
    def __init__(self, c, binary, mode, verbose=False, keep=False, tsan=False):
        self.case, self.binary, self.mode = c, binary, mode
        self.verbose, self.keep, self.tsan = verbose, keep, tsan
        self.failures = []
        self.notes = []
        self.mounts = []
        self.tmp = env.mkdtemp(c.name)
        self.kernel_form = Form(fixture.WH_CHR,
                                fixture.OPQ_TRUSTED if mode == "root" else fixture.OPQ_USER)
        # What strata promises beyond kernel defaults (index=on, redirect_dir=on); userxattr can't take them.
        self.kernel_opts = "redirect_dir=on,index=on" if mode == "root" else ""
        self.fs_is_fuse_overlayfs = os.path.basename(binary or "") == "fuse-overlayfs"

    # ---- reporting ------------------------------------------------------------------------
    def fail(self, msg):
        self.failures.append(msg)
        if self.verbose:
            print("  FAIL: " + msg.replace("\n", "\n  "))

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)
        return cond

    def note(self, msg):
        self.notes.append(msg)
        print("  note: " + msg)

    def log(self, msg):
        if self.verbose:
            print("  " + msg)

    def require_root(self):
        if self.mode != "root" or not env.is_root():
            raise Skip("needs real root")

    # ---- mounts ---------------------------------------------------------------------------
    def path(self, *parts):
        p = os.path.join(self.tmp, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def mount_kernel(self, lowers, upper, work, mnt, opts=None):
        require_kernel_overlay()
        k = KernelMount(self.mode, lowers, upper, work, mnt,
                        self.kernel_opts if opts is None else opts)
        self.mounts.append(k)
        k.start()
        self.log(f"kernel mounted: {k.optstring()} on {mnt}")
        return k

    def mount_fs(self, lowers, upper, work, mnt, opts="", **kw):
        require_fuse(self.binary)
        if self.tsan:
            log = os.path.join(self.tmp, "tsan")
            kw.setdefault("env_vars", {})["TSAN_OPTIONS"] = \
                f"log_path={log} halt_on_error=0 second_deadlock_stack=1"
        m = FuseMount(self.binary, lowers, upper, work, mnt, opts, **kw)
        self.mounts.append(m)
        m.start()
        self.log(f"fs mounted: {' '.join(m.argv())}")
        return m

    def unmount(self, m):
        m.stop()
        if m in self.mounts:
            self.mounts.remove(m)
        if isinstance(m, FuseMount):
            self.check_daemon_log(m)

    def check_daemon_log(self, m):
        txt = m.stderr()
        if "WARNING: ThreadSanitizer" in txt or "ERROR: AddressSanitizer" in txt:
            self.fail(f"sanitizer report in daemon stderr ({m.log}):\n{txt[-4000:]}")

    def teardown(self):
        for m in reversed(self.mounts):
            try:
                m.stop()
                if isinstance(m, FuseMount):
                    self.check_daemon_log(m)
            except Exception as e:  # teardown must go on
                print(f"  teardown: {e}")
        self.mounts = []
        if self.tsan:
            for n in sorted(os.listdir(self.tmp)):
                if n.startswith("tsan"):
                    with open(os.path.join(self.tmp, n), errors="replace") as f:
                        txt = f.read()
                    if "WARNING: ThreadSanitizer" in txt:
                        self.fail(f"ThreadSanitizer report ({n}):\n{txt[:6000]}")
        if self.keep or (self.failures and os.environ.get("OVERLAYTEST_KEEP_FAILED")):
            print(f"  kept: {self.tmp}")
        else:
            env.rmtree(self.tmp)

    # ---- the differential check ------------------------------------------------------------
    def stacks(self, name, layers, upper=None, fs_form=None, share_lowers=False):
        """Builds the kernel's and the fs's fixtures. Returns (kdirs, fdirs): (lowers, upper, work)."""
        base = os.path.join(self.tmp, name)
        fs_form = fs_form or self.kernel_form
        kd = fixture.build_stack(os.path.join(base, "k"), layers, self.kernel_form, upper)
        if share_lowers and fs_form == self.kernel_form:
            fb = os.path.join(base, "f")
            up = os.path.join(fb, "upper")
            fixture.build_layer(up, upper or [], self.kernel_form)
            os.makedirs(os.path.join(fb, "work"))
            fd = (kd[0], up, os.path.join(fb, "work"))
        else:
            # The upper's fixture markers stay in the kernel's form so the re-read check below
            # judges only what the fs itself wrote there.
            fd = fixture.build_stack(os.path.join(base, "f"), layers, fs_form, upper,
                                     upper_form=self.kernel_form)
        return base, kd, fd

    def differential(self, name, layers, script=None, upper=None, fs_form=None, kopts=None,
                     fs_opts="", readonly=False, remount_fs=False, kernel_recheck=True,
                     share_lowers=False, ignore=(), content=True, expect_view=None):
        """Same fixtures, same script, kernel vs fs: compares op results and merged views.
        expect_view(listing_before) -> listing: an oracle for what the kernel can't do here."""
        self.log(f"--- {name} (fs fixture form: {fs_form or self.kernel_form})")
        base, kd, fd = self.stacks(name, layers, upper, fs_form, share_lowers)
        if readonly:
            kd, fd = (kd[0], None, None), (fd[0], None, None)
        kmnt, fmnt = os.path.join(base, "k", "mnt"), os.path.join(base, "f", "mnt")
        use_kernel = expect_view is None
        k = self.mount_kernel(*kd, kmnt, opts=kopts) if use_kernel else None
        f = self.mount_fs(*fd, fmnt, opts=fs_opts)

        fl_before, _ = view.listing(f.path, content)
        kl_before = view.listing(k.path, content)[0] if k else fl_before
        if k:
            self._report(name, "view before ops", view.diff_listings(kl_before, fl_before, ignore))
        frec = krec = None
        if script:
            ko = Ops(k.path if k else None, self.verbose, "kernel")
            fo = Ops(f.path, self.verbose, "fs")
            if k:
                self._run_script(script, ko)
            self._run_script(script, fo)
            krec, frec = ko.rec, fo.rec
            if k:
                self._report(name, "op results", view.diff_records(krec, frec))
            else:
                bad = [f"  {lbl} -> {r}" for lbl, r in frec if r[0] == "err"]
                self._report(name, "ops that must succeed", bad)
        fl, problems = view.listing(f.path, content)
        kl = view.listing(k.path, content)[0] if k else expect_view(kl_before)
        self._report(name, "view after ops", view.diff_listings(kl, fl, ignore))
        for pr in problems:
            self.fail(f"[{name}] {pr}")
        if remount_fs:
            self.unmount(f)
            f = self.mount_fs(*fd, fmnt, opts=fs_opts)
            fl2, problems = view.listing(f.path, content)
            self._report(name, "view after fs unmount+remount", view.diff_listings(kl, fl2, ignore))
        if k:
            self.unmount(k)
        self.unmount(f)
        if fd[1] and kernel_recheck and (self.mode == "root" or expect_view is None):
            self.kernel_reads_upper(name, base, fd, kl, fs_form, kopts, ignore, content)
        return krec, frec

    def kernel_reads_upper(self, name, base, fd, kl, fs_form, kopts, ignore, content):
        """The upper dir the fs left must read the same under kernel overlayfs."""
        lowers = fd[0]
        if (fs_form or self.kernel_form) != self.kernel_form:
            lowers = []
            for i, l in enumerate(fd[0]):
                c = os.path.join(base, "recheck", f"l{i}")
                os.makedirs(os.path.dirname(c), exist_ok=True)
                env.run(["cp", "-a", l, c], check=True)
                fixture.convert_markers(c, self.kernel_form)
                lowers.append(c)
        work = os.path.join(base, "recheck", "work")
        os.makedirs(work)
        k = self.mount_kernel(lowers, fd[1], work, os.path.join(base, "recheck", "mnt"), opts=kopts)
        rl, _ = view.listing(k.path, content)
        self._report(name, "fs's upper re-read by kernel overlayfs", view.diff_listings(kl, rl, ignore))
        self.unmount(k)

    def _run_script(self, script, ops):
        try:
            script(ops)
        except Exception:
            self.fail(f"script raised on {ops.side}:\n{traceback.format_exc()}")

    def _report(self, name, what, lines):
        if lines:
            self.fail(f"[{name}] {what}: kernel{'' if 'must' not in what else ' oracle'} and fs differ\n"
                      + "\n".join(lines))
        else:
            self.log(f"[{name}] {what}: same")


def run_case(c, binary, mode, verbose=False, keep=False, tsan=False):
    """Returns ('pass'|'fail'|'skip', message)."""
    if mode not in c.modes:
        return "skip", f"not a {mode} case"
    ctx = None
    try:
        ctx = Context(c, binary, mode, verbose, keep, tsan)
        c.fn(ctx)
    except Skip as e:
        if ctx:
            ctx.teardown()
        return "skip", str(e)
    except Failure as e:
        ctx.fail(str(e))
    except Exception:
        ctx.fail("harness error:\n" + traceback.format_exc())
    ctx.teardown()
    if ctx.failures:
        return "fail", "\n".join(ctx.failures)
    return "pass", ""
