#!/usr/bin/python3
"""`strata login` writes the auth file to a fresh random temp name in its directory
(O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600) and renames it over; symlinks planted there are never
followed:
- at the temp name the old code used (`<file>.tmp-<pid>`; strata runs as pid 1 of a new pid
  namespace so that name is known): the symlink's target is untouched, the auth file is a
  regular 0600 file holding the new login, the planted link still points where it did;
- at the auth file's own path: login and logout fail with one line naming it, and neither
  reads nor writes the target."""
import base64
import json
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403
from http_front import RegistryFront  # noqa: E402

need_root()
need_tools("docker-registry", "unshare")
work = workdir()
reg = front = None
try:
    reg = Registry(work)
    front = RegistryFront(reg.addr, creds=("alice", "s3cret"))
    root = os.path.join(work, "store")
    d = os.path.join(work, "auth")
    os.makedirs(d)
    authfile = os.path.join(d, "auth.json")
    victim = os.path.join(work, "victim.json")
    secret = '{"auths":{"secret.example":{"auth":"c2VjcmV0OnNlY3JldA=="}}}\n'
    with open(victim, "w") as f:
        f.write(secret)

    def login(*pre):
        return run(*pre, STRATA, "--root", root, "login", "--authfile", authfile, "-u", "alice", "-p", "s3cret",
                   front.addr, check=False)

    # A symlink at the temp name: strata is pid 1 in its own pid namespace.
    planted = authfile + ".tmp-1"
    os.symlink(victim, planted)
    r = login("unshare", "--pid", "--fork")
    assert r.returncode == 0, r.stderr
    assert open(victim).read() == secret, "login wrote through a symlink at its temp name"
    assert os.readlink(planted) == victim
    st = os.lstat(authfile)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    auths = json.load(open(authfile))["auths"]
    assert base64.b64decode(auths[front.addr]["auth"]) == b"alice:s3cret", auths
    assert not [n for n in os.listdir(d) if n not in ("auth.json", "auth.json.tmp-1")], os.listdir(d)

    # A symlink at the auth file's path.
    os.unlink(authfile)
    os.symlink(victim, authfile)
    r = login()
    one_line_error(r, "login", authfile, "symbolic link")
    r = run(STRATA, "logout", "--authfile", authfile, "secret.example", check=False)
    one_line_error(r, "logout", authfile, "symbolic link")
    assert os.readlink(authfile) == victim
    assert open(victim).read() == secret
    print("PASS")
finally:
    teardown(work, reg, front)
