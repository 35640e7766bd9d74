#!/usr/bin/python3
"""`strata load --lazy` then `strata unpack`, with dockerd as the judge. dockerd builds an image
(a busybox base it imported, a layer with a whiteout, an opaque dir, hardlinks and a set-uid
file) and saves it; strata loads that archive lazily into a fresh data-root. dockerd on that
root lists the image but cannot run it (a lazy layer has no diff/: it fails, nothing runs);
after `strata unpack` dockerd runs it with the same output as on its own root, `docker save`
gives the layers byte for byte as before, and `strata verify` is clean."""
import json
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker_lib import LAYERED_PROBE as PROBE, Dockerd, Steps, archive_layers, build_and_save_layered, expect, log, need_dockerd  # noqa: E402
from container_test_lib import STRATA, run  # noqa: E402


need_dockerd(("busybox",))
work = tempfile.mkdtemp(prefix="strata-lazy-docker-")
s = Steps()
try:
    want, image_id, saved = build_and_save_layered(work)

    root = os.path.join(work, "strata-root")
    run(STRATA, "--root", root, "load", "--lazy", "-q", "-i", saved)
    rows = json.loads(run(STRATA, "--root", root, "images", "--format", "json").stdout)
    expect([(r["ID"], r["LazyLayers"], r["Layers"]) for r in rows] == [(image_id, 3, 3)], f"images: {rows}")

    d2 = Dockerd(work, root, "b")
    log("dockerd on the lazy store: lists lz:1, cannot run it")
    d2.start()
    s.check("dockerd lists the lazy image",
            lambda: expect(d2("images", "-q", "--no-trunc").stdout.split() == [image_id], "docker images"))

    def lazy_not_runnable():
        r = d2("run", "--rm", "--network", "none", "lz:1", "true", check=False)
        expect(r.returncode != 0, "docker ran an image whose layers have no diff/")
        expect("no such file or directory" in r.stderr, f"docker run failed otherwise: {r.stderr}")
        log("docker run: " + r.stderr.strip().splitlines()[0])
    s.check("dockerd cannot run a lazy image", lazy_not_runnable)
    d2.stop()

    log("strata unpack lz:1")
    r = run(STRATA, "--root", root, "unpack", "lz:1")
    expect("3 layer(s) unpacked" in r.stderr, r.stderr)
    s.check("verify after unpack", lambda: run(STRATA, "--root", root, "verify"))
    d2.start(first=False)
    s.check("dockerd runs the unpacked image as on its own root",
            lambda: expect(d2("run", "--rm", "--network", "none", "lz:1", "sh", "-c", PROBE).stdout == want,
                           "docker run output differs"))

    def same_save():
        again = os.path.join(work, "again.tar")
        d2("save", "-o", again, "lz:1")
        expect(archive_layers(again) == archive_layers(saved), "docker save of the unpacked image differs")
    s.check("docker save gives the same layers", same_save)
    d2.stop()
finally:
    for daemon in list(Dockerd.running):
        daemon.stop()
    shutil.rmtree(work, ignore_errors=True)
s.finish()
