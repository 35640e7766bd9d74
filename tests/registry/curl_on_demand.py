#!/usr/bin/python3
"""libcurl is loaded by the first HTTP request, not by every strata process: the binary does not
link it (it and its 25 dependencies cost 3.6 ms a start warm, ~30 ms cold, paid by every
`strata run`, `ps` and container monitor before), every local command works on a machine whose
libcurl cannot be loaded, and the network commands then say in one line what is missing, with
nothing written to the store. libcurl is hidden by binding /dev/null over it in a mount namespace
of this test's own. (Pulls and pushes with libcurl present: the other registry_* tests.)"""
import ctypes.util
import os
import subprocess
import sys

STRATA = os.environ.get("STRATA_BIN", "strata")


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


if os.geteuid() != 0:
    skip("needs root (a mount namespace)")
failures = []
ldd = subprocess.run(["ldd", STRATA], capture_output=True, text=True, check=True).stdout
if "libcurl" in ldd:
    failures.append("strata links libcurl: " + next(l.strip() for l in ldd.splitlines() if "libcurl" in l))

lib = None
for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"):
    if os.path.exists(os.path.join(d, "libcurl.so.4")):
        lib = os.path.realpath(os.path.join(d, "libcurl.so.4"))
        break
if not lib:
    skip("no libcurl.so.4 to hide")

work = subprocess.run(["mktemp", "-d", "/tmp/strata-curl-XXXXXX"], capture_output=True, text=True, check=True).stdout.strip()
script = f"""
set -e
mount --bind /dev/null {lib}
root={work}/store
{STRATA} --root $root images > {work}/images.out 2>&1; echo "images $?" >> {work}/rc
find $root | sort > {work}/before
{STRATA} --root $root pull 127.0.0.1:9/x/y:1 > {work}/pull.out 2>&1 || echo "pull $?" >> {work}/rc
find $root | sort > {work}/after
"""
r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True, text=True)
try:
    rc = open(os.path.join(work, "rc")).read().split("\n")
    images = open(os.path.join(work, "images.out")).read()
    pull = open(os.path.join(work, "pull.out")).read()
except OSError as e:
    failures.append(f"the namespace script did not run: {e}: {r.stderr}")
    rc, images, pull = [], "", ""
if rc:
    if "images 0" not in rc:
        failures.append(f"strata images without libcurl: {rc} {images!r}")
    lines = pull.strip().splitlines()
    if not any(x.startswith("pull ") and x != "pull 0" for x in rc) or len(lines) != 1 or \
            "libcurl.so.4" not in lines[0] or not lines[0].startswith("strata: "):
        failures.append(f"strata pull without libcurl: {rc} {pull!r} (want one line naming libcurl.so.4)")
    if open(os.path.join(work, "before")).read() != open(os.path.join(work, "after")).read():
        failures.append("the failed pull changed the store")
subprocess.run(["rm", "-rf", work])
if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print(f"PASS (libcurl not linked; without it: images works, pull says {lines[0]!r})")
