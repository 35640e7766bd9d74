"""Random-operation differential testing: seeded 3-layer fixtures, seeded op sequences run in
lockstep on kernel overlayfs and the fs under test, and a delta-debugging shrinker.

Everything here is a pure function of the seed, except that the op generator picks its paths
from the *kernel's* merged view as it stands before each op (the oracle is deterministic, so
the op list still is). A finished op list replays without the generator (`replay=`), which is
what the shrinker and the regression list use.

An op is a tuple of JSON-able values; `op_label` prints it. A fixture is (layers, upper) of
fixture.py entries plus, per whiteout/opaque entry, the marker form the fs's copy uses.
"""

import errno
import hashlib
import os
import random
import stat

from . import env, fixture, view
from .fixture import D, F, H, L, OPQ, WH, X
from .script import Ops

FIXTURE_VERSION = 1  # bump only with a note in the regression list: old seeds build differently

# ---- fixtures ---------------------------------------------------------------------------------

DIR_NAMES = ["d0", "d1", "d2"]
FILE_NAMES = ["f0", "f1", "f2", "f3"]
MIXED_NAMES = ["x0", "x1"]      # a file in one layer, a dir in another
MODES_F = [0o644, 0o600, 0o755, 0o640, 0o444]
MODES_D = [0o755, 0o700, 0o775, 0o555]
IDS = [0, 1000, 4321]

# The fs's copy of a marker: whiteouts as char 0/0 or `.wh.NAME`; opaque dirs as the trusted
# xattr, `.wh..wh..opq`, or the user.* forms strata also reads as root (lookup group).
WH_FORMS = [fixture.WH_CHR, fixture.WH_FILE]
OPQ_FORMS = [fixture.OPQ_TRUSTED, fixture.OPQ_WHOPQ, fixture.OPQ_TRUSTED, fixture.OPQ_WHOPQ,
             fixture.OPQ_USER, fixture.OPQ_FUSEOVL]


def _data(n, tag):
    tag = tag.encode() if isinstance(tag, str) else tag
    return (tag * (n // len(tag) + 1))[:n]


def _tag(rng):
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(3, 9)))


def _gen_layer(rng, depth_dirs, upper=False):
    """One layer: entries (fixture spec) + {entry index: fs marker form} for its markers."""
    ents, forms = [], {}
    kinds = {}  # path -> "dir" | "file" | "other", so a path is made once and never under a file

    def add(e, kind):
        kinds[e.path] = kind
        ents.append(e)

    dirs = [""]
    for d in depth_dirs:
        par = os.path.dirname(d)
        if par in dirs and rng.random() < (0.75 if not par else 0.5):
            dirs.append(d)
            add(D(d, mode=rng.choice(MODES_D) if rng.random() < 0.3 else 0o755,
                  uid=rng.choice(IDS) if rng.random() < 0.2 else None,
                  xattrs={"user.d": _tag(rng)} if rng.random() < 0.2 else None), "dir")
    files = []
    for d in dirs:
        for n in FILE_NAMES + MIXED_NAMES:
            p = f"{d}/{n}" if d else n
            if p in kinds:
                continue
            r = rng.random()
            if n in MIXED_NAMES and r < 0.3 and p.count("/") < 2:
                dirs.append(p)
                add(D(p), "dir")
                continue
            if r < 0.45:
                size = rng.choice([0, 1, 7, 100, 4096, 5000, 9000])
                xa = {f"user.{rng.choice('abc')}": _tag(rng)} if rng.random() < 0.25 else None
                add(F(p, _data(size, _tag(rng)), mode=rng.choice(MODES_F), xattrs=xa,
                      uid=rng.choice(IDS) if rng.random() < 0.3 else None,
                      gid=rng.choice(IDS) if rng.random() < 0.3 else None), "file")
                files.append(p)
            elif r < 0.55:
                # Symlinks never point out of the tree: descending relative paths or a dangling
                # bare name (no "..", no absolute path, wherever a rename takes them later).
                tgt = rng.choice([rng.choice(FILE_NAMES + DIR_NAMES), "nowhere", "d0/f1",
                                  "d1/d2/f0", "."])
                add(L(p, tgt), "other")
            elif r < 0.70 and not upper:
                add(WH(p), "other")
                forms[len(ents) - 1] = rng.choice(WH_FORMS)
    # Whiteouts of directory names too (hiding whole lower dirs).
    if not upper:
        for d in depth_dirs:
            if d not in kinds and os.path.dirname(d) in dirs and rng.random() < 0.15:
                add(WH(d), "other")
                forms[len(ents) - 1] = rng.choice(WH_FORMS)
    # Hardlinks within the layer (after all files exist), also across dirs.
    for _ in range(rng.choice([0, 1, 2, 3, 4])):
        if not files:
            break
        src = rng.choice(files)
        d = rng.choice(dirs)
        p = (f"{d}/" if d else "") + rng.choice(["h0", "h1", "h2"] + FILE_NAMES)
        if p not in kinds:
            add(H(p, src), "file")
    for d in dirs[1:]:
        if rng.random() < (0.2 if not upper else 0.1):
            add(OPQ(d), "other")
            forms[len(ents) - 1] = rng.choice(OPQ_FORMS)
    if rng.random() < 0.3 and dirs[1:]:
        add(X(rng.choice(dirs[1:]), "user.layer", _tag(rng)), "other")
    return ents, forms


def gen_fixture(seed):
    """(layers top-most first, upper, forms per layer, forms of the upper)."""
    rng = random.Random(f"fixture-{FIXTURE_VERSION}-{seed}")
    depth_dirs = []
    for a in DIR_NAMES:
        depth_dirs.append(a)
        for b in DIR_NAMES[:2]:
            depth_dirs.append(f"{a}/{b}")
            depth_dirs.append(f"{a}/{b}/d2")
    layers, forms = [], []
    for _ in range(3):
        e, f = _gen_layer(rng, depth_dirs)
        layers.append(e)
        forms.append(f)
    upper, uforms = _gen_layer(rng, depth_dirs, upper=True) if rng.random() < 0.4 else ([], {})
    _drop_unmerged_whiteouts(layers, forms)
    return layers, upper, forms, uforms


def _drop_unmerged_whiteouts(layers, forms):
    """Kernel overlayfs lists a dir that only one lower layer contributes to straight from that
    layer (ovl_dir_is_real: no OVL_WHITEOUTS flag), so whiteouts in it show as names that
    stat ENOENT. strata hides them, rightly; such whiteouts hide nothing, so the fixture
    leaves them out rather than test a kernel quirk."""
    kinds = []
    for ents in layers:
        k = {}
        for e in ents:
            if e.kind == "opaque":
                k[e.path] = "opaque-dir"
            elif e.kind not in ("xattr",):
                k.setdefault(e.path, {"dir": "dir", "whiteout": "wh"}.get(e.kind, "nondir"))
        kinds.append(k)
    memo = {}

    def chain(path):
        if path == "":
            return list(range(len(layers)))
        if path in memo:
            return memo[path]
        out = []
        for i in chain(os.path.dirname(path)):
            k = kinds[i].get(path)
            if k == "wh" or (k == "nondir"):
                break
            if k in ("dir", "opaque-dir"):
                out.append(i)
                if k == "opaque-dir":
                    break
        memo[path] = out
        return out

    for i, ents in enumerate(layers):
        keep, newforms = [], {}
        for j, e in enumerate(ents):
            if e.kind == "whiteout" and os.path.dirname(e.path) and \
                    len(chain(os.path.dirname(e.path))) < 2:
                continue
            if j in forms[i]:
                newforms[len(keep)] = forms[i][j]
            keep.append(e)
        ents[:] = keep
        forms[i] = newforms


def build_fs_layer(root, ents, forms, kernel_form):
    """The fs's copy: like fixture.build_layer, each marker in its own form."""
    plain = [e for i, e in enumerate(ents) if i not in forms]
    fixture.build_layer(root, plain, kernel_form)
    by_form = {}
    for i, f in forms.items():
        by_form.setdefault(f, []).append(ents[i])
    for f, es in sorted(by_form.items()):
        form = fixture.Form(f, kernel_form.opaque) if f in WH_FORMS else \
            fixture.Form(kernel_form.whiteout, f)
        fixture.build_layer(root, es, form)


def build_fixtures(base, seed, kernel_form, fs_alternate_forms=True):
    """Returns (kernel dirs, fs dirs), each (lowers, upper, work)."""
    layers, upper, forms, _ = gen_fixture(seed)
    if not fs_alternate_forms:
        forms = [{} for _ in forms]
    kd = fixture.build_stack(os.path.join(base, "k"), layers, kernel_form, upper)
    fb = os.path.join(base, "f")
    lowers = []
    for i, (ents, fm) in enumerate(zip(layers, forms)):
        d = os.path.join(fb, f"l{i}")
        build_fs_layer(d, ents, fm, kernel_form)
        lowers.append(d)
    up = os.path.join(fb, "upper")
    fixture.build_layer(up, upper, kernel_form)  # the upper's markers: always the kernel's form
    os.makedirs(os.path.join(fb, "work"))
    return kd, (lowers, up, os.path.join(fb, "work"))


def describe_fixture(seed, near=None):
    """The fixture as text; near: paths, to show only entries on or around them."""
    layers, upper, forms, _ = gen_fixture(seed)
    out = []
    if near is not None:
        near = {p for p in near if isinstance(p, str)}
        tops = {p.split("/")[0] for p in near}

        def close(e):
            ps = [e.path] + ([e.kw["existing"]] if e.kind == "hardlink" else [])
            return any(q.split("/")[0] in tops for q in ps)
    for name, ents, fm in [(f"l{i}", e, f) for i, (e, f) in enumerate(zip(layers, forms))] + \
            [("upper", upper, {})]:
        out.append(f"  {name}:")
        for i, e in enumerate(ents):
            if near is not None and not close(e):
                continue
            kw = {k: v for k, v in e.kw.items() if v not in (None, {}, b"") and k != "mtime"}
            if "content" in kw:
                kw["content"] = f"{len(kw['content'])}b"
            for k in ("mode",):
                if k in kw:
                    kw[k] = oct(kw[k])
            extra = f" [fs form: {fm[i]}]" if i in fm else ""
            out.append(f"    {e.kind} {e.path} {kw if kw else ''}{extra}")
    return "\n".join(out)


# ---- ops ----------------------------------------------------------------------------------------

NEW_NAMES = FILE_NAMES + DIR_NAMES + MIXED_NAMES + ["n0", "n1", "h0"]
SLOTS = 3
OPEN_FLAGS = {"r": os.O_RDONLY, "rw": os.O_RDWR, "wa": os.O_WRONLY | os.O_APPEND,
              "rwc": os.O_RDWR | os.O_CREAT, "rwt": os.O_RDWR | os.O_TRUNC}
SIZES = [0, 1, 10, 100, 4095, 4096, 4097, 6000, 12000]


def op_label(op):
    return op[0] + "(" + ", ".join(
        oct(a) if isinstance(a, int) and op[0] in ("chmod", "mkdir", "create", "fchmod") and a > 7
        else repr(a) for a in op[1:]) + ")"


def kernel_tree(root):
    """{relpath: 'dir'|'file'|'symlink'|'other'} of the merged view, without following links."""
    out = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            it = list(os.scandir(os.path.join(root, rel) if rel else root))
        except OSError:
            continue
        for e in it:
            p = f"{rel}/{e.name}" if rel else e.name
            if e.is_symlink():
                out[p] = "symlink"
            elif e.is_dir(follow_symlinks=False):
                out[p] = "dir"
                stack.append(p)
            elif e.is_file(follow_symlinks=False):
                out[p] = "file"
            else:
                out[p] = "other"
    return out


# Relative weights of op kinds; open_unlink: 0 turns off the "unlink/rename over an open file"
# bias. OVERLAYTEST_WEIGHTS=fd=0,open=0 (say) focuses a run while a known defect is open.
WEIGHTS = {"create": 5, "write": 9, "truncate": 3, "link": 5, "unlink": 6, "rename": 9,
           "rename_dir": 6, "mkdir": 4, "rmdir": 3, "chmod": 3, "chown": 1, "setxattr": 3,
           "removexattr": 1, "getxattr": 1, "listxattr": 1, "symlink": 2, "read": 3, "stat": 4,
           "readdir": 2, "readlink": 1, "open": 6, "fd": 14, "close": 2, "open_unlink": 1,
           "noreplace": 1, "exchange": 1}  # rename flags, against 8 for plain rename


KNOBS = ("open_unlink", "noreplace", "exchange")  # weights that are not op kinds


def parse_weights(spec):
    out = {}
    for part in (spec or "").split(","):
        if part.strip():
            k, v = part.split("=")
            if k.strip() not in WEIGHTS:
                raise ValueError(f"unknown op kind {k!r} in weights (have {sorted(WEIGHTS)})")
            out[k.strip()] = float(v)
    return out


class Generator:
    """Chooses op n+1 from the kernel's merged view after op n."""

    def __init__(self, seed, weights=None):
        self.rng = random.Random(f"ops-{seed}")
        self.weights = dict(WEIGHTS, **(weights or {}))
        self.slots = {}  # slot -> path at open time (a hint for unlink/rename-over)
        self.tree = None

    def invalidate(self):
        self.tree = None

    def _paths(self, kind=None):
        return sorted(p for p, k in self.tree.items() if kind is None or k == kind)

    def _existing(self, kind=None):
        ps = self._paths(kind)
        return self.rng.choice(ps) if ps else None

    def _new(self):
        dirs = [""] + self._paths("dir")
        d = self.rng.choice(dirs)
        n = self.rng.choice(NEW_NAMES)
        return f"{d}/{n}" if d else n

    def _any(self, kind=None, p_new=0.25):
        if self.rng.random() < p_new:
            return self._new()
        return self._existing(kind) or self._new()

    def next(self, root):
        if self.tree is None:
            self.tree = kernel_tree(root)
        r = self.rng
        # the open-unlinked pattern: a file is open, now remove or replace its name
        if self.slots and r.random() < 0.08 * (self.weights["open_unlink"] > 0):
            s = r.choice(sorted(self.slots))
            p = self.slots[s]
            if r.random() < 0.5:
                return ("unlink", p)
            src = self._existing("file") or self._new()
            return ("rename", src, p, 0)
        w = sorted((k, v) for k, v in self.weights.items() if k not in KNOBS)
        kind = r.choices([k for k, _ in w], [n for _, n in w])[0]
        if kind == "create":
            return ("create", self._any(p_new=0.7), r.choice(MODES_F))
        if kind == "write":
            mode = r.choice(["w", "a", "p", "x"])
            n = r.choice(SIZES[1:])
            off = r.choice([0, 1, 4095, 4096, 5000, 9000])
            return ("write", self._any("file", 0.15), mode, n, _tag(r), off)
        if kind == "truncate":
            return ("truncate", self._any("file", 0.1), r.choice(SIZES))
        if kind == "link":
            return ("link", self._any("file", 0.1), self._any(p_new=0.8))
        if kind == "unlink":
            return ("unlink", self._any(p_new=0.1))
        if kind in ("rename", "rename_dir"):
            src = self._any("dir" if kind == "rename_dir" else None, 0.1)
            if r.random() < 0.5:
                dst = self._new()
            elif kind == "rename_dir" and r.random() < 0.6:
                dst = self._existing("dir") or self._new()
            else:
                dst = self._existing() or self._new()
            flags = r.choices([0, env.RENAME_NOREPLACE, env.RENAME_EXCHANGE],
                              [8, self.weights["noreplace"], self.weights["exchange"]])[0]
            return ("rename", src, dst, flags)
        if kind == "mkdir":
            return ("mkdir", self._any(p_new=0.8), r.choice(MODES_D))
        if kind == "rmdir":
            return ("rmdir", self._any("dir", 0.1))
        if kind == "chmod":
            return ("chmod", self._any(p_new=0.05), r.choice(MODES_F + MODES_D + [0o4755, 0o2750, 0]))
        if kind == "chown":
            return ("chown", self._any(p_new=0.05), r.choice(IDS), r.choice(IDS))
        if kind == "setxattr":
            return ("setxattr", self._any(p_new=0.05), f"user.{r.choice('abc')}", _tag(r),
                    r.choice([0, 0, os.XATTR_CREATE, os.XATTR_REPLACE]))
        if kind in ("removexattr", "getxattr"):
            return (kind, self._any(p_new=0.05), f"user.{r.choice('abcd')}")
        if kind in ("listxattr", "read", "stat", "readlink"):
            return (kind, self._any(p_new=0.05))
        if kind == "readdir":
            return ("readdir", self._any("dir", 0.05))
        if kind == "symlink":
            tgt = r.choice([self._existing() or "nowhere", "nowhere", "f0", "d0/f1"])
            return ("symlink", tgt, self._any(p_new=0.8))
        if kind == "open":
            s = r.randrange(SLOTS)
            p = self._any("file", 0.1)
            self.slots[s] = p
            return ("open", s, p, r.choice(sorted(OPEN_FLAGS)))
        if kind == "close":
            s = r.randrange(SLOTS)
            self.slots.pop(s, None)
            return ("close", s)
        # fd ops
        s = r.choice(sorted(self.slots)) if self.slots else r.randrange(SLOTS)
        sub = r.choice(["fstat", "fstat", "pread", "write", "pwrite", "ftruncate", "fchmod",
                        "lseek_end", "fsetxattr", "fgetxattr"])
        if sub == "pread":
            return ("fd", s, sub, r.choice([0, 1, 4096, 5000]), r.choice([10, 4096, 100000]))
        if sub in ("write", "pwrite"):
            return ("fd", s, sub, r.choice(SIZES[1:]), _tag(r), r.choice([0, 3, 4096, 7000]))
        if sub == "ftruncate":
            return ("fd", s, sub, r.choice(SIZES))
        if sub == "fchmod":
            return ("fd", s, sub, r.choice(MODES_F))
        if sub in ("fsetxattr", "fgetxattr"):
            return ("fd", s, sub, f"user.{r.choice('ab')}", _tag(r))
        return ("fd", s, sub)

    def after(self, op):
        """Keeps the cached kernel tree valid: namespace ops invalidate it."""
        if op[0] in ("create", "write", "link", "unlink", "rename", "mkdir", "rmdir", "symlink",
                     "open"):
            self.invalidate()


def _fstat(st):
    # As in the tree listings (view.entry): no nlink for dirs (kernel overlayfs shows 1 for a
    # merged dir, strata counts subdirs) and mtime only as fixture-time or "recent", not for
    # dirs (a merged dir's mtime is the upper's in the kernel; strata's differs deliberately).
    t = view.TYPES.get(stat.S_IFMT(st.st_mode))
    return {"type": t, "mode": oct(stat.S_IMODE(st.st_mode)), "uid": st.st_uid,
            "gid": st.st_gid, "nlink": st.st_nlink if t != "dir" else None,
            "size": st.st_size if t == "file" else None,
            "mtime": view.mtime_class(st) if t != "dir" else None}


def _below(p, d):
    """p is d or a path below it."""
    return p == d or p.startswith(d + "/")


class Side:
    """One mount: runs ops (through script.Ops, which records results/errnos) and holds fds."""

    def __init__(self, root, name, verbose=False):
        self.ops = Ops(root, verbose, name)
        self.fds = {}
        # For the README's "After a merged directory is renamed" difference (randomops
        # ._deliberate): which open files were below a directory when it was renamed, or opened
        # below one renamed earlier. paths: slot -> the name it was opened by, followed through
        # renames (None once that name is gone); dir_renamed: those slots; renamed_dirs: where
        # renamed directories are now.
        self.paths, self.dir_renamed, self.renamed_dirs = {}, set(), set()

    def reroot(self, root):
        self.ops.root = root

    def close_all(self):
        for s in sorted(self.fds):
            try:
                os.close(self.fds.pop(s))
            except OSError:
                pass
            self._track_close(s)

    def forget(self, slot):
        """Closes the fd in slot, unrecorded: later ops on the slot answer "no fd"."""
        fd = self.fds.pop(slot, None)
        if fd is not None:
            os.close(fd)
        self._track_close(slot)

    def below_renamed_dir(self, slot):
        """True when the file open in slot was below a directory when that was renamed (also
        when it was opened below one renamed before)."""
        return slot in self.fds and slot in self.dir_renamed

    def _track_close(self, slot):
        self.paths.pop(slot, None)
        self.dir_renamed.discard(slot)

    def _track_open(self, slot, path):
        self.paths[slot] = path
        if any(_below(path, d) for d in self.renamed_dirs):
            self.dir_renamed.add(slot)
        else:
            self.dir_renamed.discard(slot)

    def _track_gone(self, path):
        """path was unlinked or rmdir'ed."""
        for s, p in self.paths.items():
            if p is not None and _below(p, path):
                self.paths[s] = None
        self.renamed_dirs = {d for d in self.renamed_dirs if not _below(d, path)}

    def _track_rename(self, src, dst, flags, src_dir, dst_dir):
        if src == dst:
            return
        ex = bool(flags & env.RENAME_EXCHANGE)

        def move(p):
            if _below(p, src):
                return dst + p[len(src):]
            if ex and _below(p, dst):
                return src + p[len(dst):]
            return p
        for s, p in list(self.paths.items()):
            if p is None:
                continue
            if (src_dir and _below(p, src)) or (ex and dst_dir and _below(p, dst)):
                self.dir_renamed.add(s)
            self.paths[s] = None if not ex and _below(p, dst) else move(p)
        dirs = {move(d) for d in self.renamed_dirs if ex or not _below(d, dst)}
        if src_dir:
            dirs.add(dst)
        if ex and dst_dir:
            dirs.add(src)
        self.renamed_dirs = dirs

    def _is_dir(self, rel):
        try:
            return stat.S_ISDIR(os.lstat(self.ops.p(rel)).st_mode)
        except OSError:
            return False

    def nameless(self, slot):
        """True when the file open in slot has no name left in the merged view: no path (nor
        the root) shares its (st_dev, st_ino). Walks the whole tree, so it is only asked once
        results differ (see randomops._deliberate)."""
        fd = self.fds.get(slot)
        if fd is None:
            return False
        try:
            st = os.fstat(fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) not in tree_inodes(self.ops.root)

    def run(self, op):
        """Returns the recorded result of op."""
        t = self.ops
        k, a = op[0], op[1:]
        n0 = len(t.rec)
        if k == "create":
            t.create(a[0], a[1])
        elif k == "write":
            path, mode, n, tag, off = a
            if mode == "p":
                t.pwrite(path, _data(n, tag), off)
            else:
                t.write(path, _data(n, tag), mode)
        elif k == "truncate":
            t.truncate(*a)
        elif k == "link":
            t.link(*a)
        elif k == "unlink":
            t.unlink(*a)
            if t.rec[-1][1][0] == "ok":
                self._track_gone(a[0])
        elif k == "rename":
            src_dir, dst_dir = self._is_dir(a[0]), self._is_dir(a[1])
            t.rename(a[0], a[1], a[2])
            if t.rec[-1][1][0] == "ok":
                self._track_rename(a[0], a[1], a[2], src_dir, dst_dir)
        elif k == "mkdir":
            t.mkdir(*a)
        elif k == "rmdir":
            t.rmdir(*a)
            if t.rec[-1][1][0] == "ok":
                self._track_gone(a[0])
        elif k == "chmod":
            # lchmod does not exist on Linux: chmod follows a symlink (to a file in the tree or
            # nowhere), on both sides alike
            t.chmod(*a)
        elif k == "chown":
            t.chown(*a)
        elif k == "setxattr":
            t.setxattr(*a)
        elif k == "removexattr":
            t.removexattr(*a)
        elif k == "getxattr":
            t.getxattr(*a)
        elif k == "listxattr":
            t.listxattr(*a)
        elif k == "read":
            t.read(*a)
        elif k == "stat":
            t.do(f"stat({a[0]})", lambda: _fstat(os.lstat(t.p(a[0]))))
        elif k == "readdir":
            t.listdir(*a)
        elif k == "readlink":
            t.readlink(*a)
        elif k == "symlink":
            t.symlink(*a)
        elif k == "open":
            s, path, fl = a
            if s in self.fds:
                os.close(self.fds.pop(s))
                self._track_close(s)
            fd = t.do(f"open({path},{fl})", lambda: os.open(t.p(path), OPEN_FLAGS[fl], 0o644))
            if fd is not None:
                self.fds[s] = fd
                self._track_open(s, path)
                t.rec[-1] = (t.rec[-1][0], ("ok",))  # the fd number itself is not compared
        elif k == "close":
            s = a[0]
            if s in self.fds:
                t.do(f"close({s})", os.close, self.fds.pop(s))
                self._track_close(s)
            else:
                t.note(f"close({s})", "no fd")
        elif k == "fd":
            self._fd(a)
        else:
            raise ValueError(op)
        assert len(t.rec) == n0 + 1, op
        return t.rec[-1][1]

    def _fd(self, a):
        t = self.ops
        s, sub, args = a[0], a[1], a[2:]
        label = f"fd{s}.{sub}{args}"
        fd = self.fds.get(s)
        if fd is None:
            t.note(label, "no fd")
            return
        if sub == "fstat":
            t.do(label, lambda: _fstat(os.fstat(fd)))
        elif sub == "pread":
            def f():
                b = os.pread(fd, args[1], args[0])
                return f"{len(b)}b:{hashlib.sha256(b).hexdigest()[:12]}"
            t.do(label, f)
        elif sub == "write":
            t.do(label, os.write, fd, _data(args[0], args[1]))
        elif sub == "pwrite":
            t.do(label, os.pwrite, fd, _data(args[0], args[1]), args[2])
        elif sub == "ftruncate":
            t.do(label, os.ftruncate, fd, args[0])
        elif sub == "fchmod":
            t.do(label, os.fchmod, fd, args[0])
        elif sub == "lseek_end":
            def f():
                # FUSE lets a directory fd seek to SEEK_END, overlayfs' readdir fds refuse
                # (EINVAL): that is the kernel's FUSE layer, not the fs, so dirs only say "dir".
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    return "dir"
                return os.lseek(fd, 0, os.SEEK_END)
            t.do(label, f)
        elif sub == "fsetxattr":
            t.do(label, os.setxattr, fd, args[0], args[1].encode())
        elif sub == "fgetxattr":
            t.do(label, lambda: os.getxattr(fd, args[0]).decode(errors="replace"))
        else:
            raise ValueError(sub)


def private_mount_namespace():
    """Moves this process into its own mount namespace with private propagation. With index=on
    the kernel keeps an upperdir exclusive until the overlay's superblock goes; a process
    elsewhere on the machine that unshares its mount namespace while our overlay is mounted
    (other tests: `unshare -rm`) holds a copy of it, so our umount would not release the upper
    and the remount would fail with EBUSY. Our own namespace keeps our mounts out of theirs."""
    if getattr(private_mount_namespace, "done", False):
        return
    CLONE_NEWNS = 0x00020000
    if env.libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(env.ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    p = env.run(["mount", "--make-rprivate", "/"])
    if p.returncode != 0:
        raise env.Failure(f"mount --make-rprivate /: {p.stderr.strip()}")
    private_mount_namespace.done = True


# ---- whole-tree snapshots ----------------------------------------------------------------------

def walk_lstat(root):
    """(relative path, lstat) of every name below root, not following symlinks."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            it = list(os.scandir(os.path.join(root, rel) if rel else root))
        except OSError:
            continue
        for e in it:
            p = f"{rel}/{e.name}" if rel else e.name
            try:
                st = os.lstat(os.path.join(root, p))
            except OSError:
                continue
            yield p, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(p)


def tree_inodes(root):
    """{(st_dev, st_ino)} of every name in the merged view and of its root."""
    out = {(os.lstat(root).st_dev, os.lstat(root).st_ino)}
    out.update((st.st_dev, st.st_ino) for _, st in walk_lstat(root))
    return out


def ino_classes(root):
    """Names sharing an st_ino, as sorted groups of paths (which names, not which numbers)."""
    by = {}
    for p, st in walk_lstat(root):
        by.setdefault(st.st_ino, []).append(p)
    return sorted(sorted(v) for v in by.values() if len(v) > 1)


def snapshot(root):
    lst, problems = view.listing(root)
    return lst, ino_classes(root), problems


def diff_snapshots(k, f):
    lines = view.diff_listings(k[0], f[0])
    if k[1] != f[1]:
        ks, fs = {tuple(c) for c in k[1]}, {tuple(c) for c in f[1]}
        for c in sorted(ks - fs):
            lines.append(f"  names sharing an st_ino in kernel only: {list(c)}")
        for c in sorted(fs - ks):
            lines.append(f"  names sharing an st_ino in fs only:     {list(c)}")
    lines += [f"  fs view: {p}" for p in f[2]]
    return lines


def errname(e):
    return errno.errorcode.get(e, str(e))
