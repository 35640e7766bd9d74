#!/usr/bin/python3
"""The should-fail corpus (bad_input_corpus.py) through `strata mount --lazy` and `strata load
--lazy`: a lazy layer's table of contents is read by the same rules as extraction, so every
hostile or broken input `load` refuses is refused here too: exit != 0, one error line naming
the input and the reason, nothing mounted, no index cached, the store byte for byte as it was
(the whole tree hashed before and after), nothing written outside."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import *  # noqa: E402,F403
from bad_input_corpus import GOOD, cases, layout, make_tar, refusal_problems  # noqa: E402

need_root()
need_tools("fusermount3")
if not os.path.exists("/dev/fuse"):
    skip("no /dev/fuse")

# Where a lazy layer words the same refusal differently.
LAZY_REASON = {
    "diffids-count": "",
}

work = workdir()
cache = os.path.join(work, "cache")
store = os.path.join(work, "store")
mnt = os.path.join(work, "mnt")
os.makedirs(mnt)
failures = []
try:
    good = layout(os.path.join(work, "good"), [make_tar(GOOD)])
    run(STRATA, "--root", cache, "mount", "--lazy", good, mnt, timeout=60)
    assert os.path.isfile(os.path.join(mnt, "etc/hello")), "the good image did not mount"
    run("fusermount3", "-u", mnt)
    index_dir = os.path.join(cache, "lazy", "index")
    cached = sorted(os.listdir(index_dir))
    strata(store, "load", "--lazy", "-q", "-i", good, "--tag", "good:1")

    for name, reason, tars, kw in cases:
        reason = LAZY_REASON.get(name, reason)
        p = layout(os.path.join(work, name), tars, **kw)
        r = run(STRATA, "--root", cache, "mount", "--lazy", p, mnt, check=False, timeout=60)
        problems = refusal_problems(r, lambda line: line.startswith(f"strata: mount {p}: "), reason)
        if os.path.ismount(mnt):
            problems.append("mounted")
            subprocess.run(["fusermount3", "-u", mnt])
        if sorted(os.listdir(index_dir)) != cached:
            problems.append("an index was cached")
        before = tree_hash(store)
        r2 = strata(store, "load", "--lazy", "-q", "-i", p, check=False, timeout=60)
        problems += ["load --lazy: " + x for x in
                     refusal_problems(r2, lambda line: line.startswith(f"strata: load {p}: "), reason)]
        if tree_hash(store) != before:
            problems.append("load --lazy changed the store")
        if problems:
            failures.append(f"{name}: " + "; ".join(problems))
        else:
            print(f"ok   {name}: {r.stderr.strip()} / {r2.stderr.strip()}")
finally:
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", mnt])
    shutil.rmtree(work, ignore_errors=True)
if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print(f"PASS ({len(cases)} cases)")
