#!/usr/bin/python3
"""`strata load` from stdin spools the archive to an unlinked temp file (a tar needs random
access), and no more of it than --max-stdin-size (default 32 GiB):
- 64 MiB of stdin against a 1 MiB cap: one line naming the cap and the flag, strata stops
  reading (it took far less than 64 MiB), the store is unchanged, nothing left in its tmp;
- a real docker-archive under a cap just above its size loads; a cap below it fails;
- a malformed size: one line;
- the same archive given as a pipe by name (`-i <(cat img.tar)`, `-i <(gzip -c ...)`, a named
  FIFO) loads, under the same cap (it was read at offsets: "not a tar archive"); `mount --lazy`
  of a pipe says it needs a file."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_test_lib import *  # noqa: E402,F403

need_root()
need_tools("umoci", "skopeo")
work = workdir()


def load_stdin(root, feed, *args):
    """Runs `strata load` with `feed` (bytes, or a count of zero bytes) on stdin; returns
    (result, bytes strata took)."""
    p = subprocess.Popen([STRATA, "--root", root, "load", "-q", *args], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
    taken = 0
    try:
        if isinstance(feed, int):
            chunk = bytes(1 << 20)
            while taken < feed:
                p.stdin.write(chunk)
                taken += len(chunk)
        else:
            p.stdin.write(feed)
            taken = len(feed)
    except BrokenPipeError:
        pass
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
    out, err = p.stdout.read(), p.stderr.read()  # a few lines: no pipe fills up meanwhile
    p.wait()
    return subprocess.CompletedProcess(p.args, p.returncode, out.decode(), err.decode()), taken


try:
    layout = os.path.join(work, "img")
    build_umoci_image(layout)
    archive = os.path.join(work, "img.tar")
    run("skopeo", "copy", "-q", f"oci:{layout}:v1", f"docker-archive:{archive}:test/img:1")
    data = open(archive, "rb").read()

    root = os.path.join(work, "store")
    seed = os.path.join(work, "seed-img")
    build_umoci_image(seed)
    strata(root, "load", "-q", "-i", seed, "--tag", "seed/img:1")
    before = tree_hash(root)

    r, taken = load_stdin(root, 64 << 20, "--max-stdin-size", "1M")
    one_line_error(r, "load stdin", "more than 1048576 bytes", "--max-stdin-size")
    assert taken < 32 << 20, f"strata read {taken} bytes of stdin past a 1 MiB cap"
    assert tree_hash(root) == before, "a refused load changed the store"

    r, _ = load_stdin(root, data, "--max-stdin-size", str(len(data) - 1))
    one_line_error(r, "load stdin", f"more than {len(data) - 1} bytes")
    assert tree_hash(root) == before, "a refused load changed the store"

    r, _ = load_stdin(root, data, "--max-stdin-size", "1x")
    one_line_error(r, "--max-stdin-size", "1x")

    r, _ = load_stdin(root, data, "--max-stdin-size", str(len(data)))
    assert r.returncode == 0, r.stderr
    assert "Loaded image: test/img:1" in r.stdout, r.stdout
    r, _ = load_stdin(os.path.join(work, "store2"), data)  # the default cap
    assert r.returncode == 0 and "test/img:1" in r.stdout, r.stderr

    # A pipe by name, as bash's process substitution gives one.
    for name, cmd in (("plain", f"cat {archive}"), ("gzip", f"gzip -1 -c {archive}")):
        r = subprocess.run(["bash", "-c", f'"$0" --root "$1" load -q -i <({cmd}) --tag pipe/{name}:1',
                            STRATA, os.path.join(work, "store3")], capture_output=True, text=True)
        assert r.returncode == 0 and f"pipe/{name}:1" in r.stdout, f"load -i <({cmd}): {r.stderr}"
    fifo = os.path.join(work, "fifo")
    os.mkfifo(fifo)
    r = subprocess.run(["bash", "-c", f'cat {archive} > {fifo} 2>/dev/null & exec "$0" --root "$1" load -q -i {fifo} '
                        "--max-stdin-size 1K", STRATA, os.path.join(work, "store4")], capture_output=True, text=True)
    one_line_error(r, f"load {fifo}", "more than 1024 bytes", "--max-stdin-size")
    r = subprocess.run(["bash", "-c", f'"$0" --root "$1" mount --lazy <(cat {archive}) "$2"', STRATA,
                        os.path.join(work, "store5"), os.path.join(work, "mnt")], capture_output=True, text=True)
    one_line_error(r, "mount", "give an archive file or a directory")
    print("PASS")
finally:
    shutil.rmtree(work, ignore_errors=True)
