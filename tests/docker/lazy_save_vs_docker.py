#!/usr/bin/python3
"""`strata save` of lazy images, with dockerd as the judge. dockerd builds an image (a busybox
base it imported, a layer with a whiteout, an opaque dir, hardlinks and a set-uid file) and
saves it; strata loads that archive with `load --lazy` (plain tar blobs), and the same image as
an OCI layout with gzip layers (skopeo) too. `strata save` of each, which decompresses the
lazy blobs as it writes the docker-archive's layer tars, is loaded by a fresh dockerd: the image
id strata has (dockerd's own for the archive it saved; skopeo's OCI config is another), `docker run` prints what it printed on its own root, and `docker save` gives the
layer tars byte for byte as dockerd first saved them."""
import json
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker_lib import LAYERED_PROBE as PROBE, Dockerd, Steps, archive_layers, build_and_save_layered, expect, log, need_dockerd  # noqa: E402
from container_test_lib import STRATA, run  # noqa: E402


need_dockerd(("busybox", "skopeo"))
work = tempfile.mkdtemp(prefix="strata-lazysave-docker-")
s = Steps()
try:
    want, image_id, saved = build_and_save_layered(work)

    layout = os.path.join(work, "lz-gzip")
    run("skopeo", "copy", "-q", "--dest-compress", f"docker-archive:{saved}", f"oci:{layout}:1")
    for name, src in (("plain", saved), ("gzip", layout)):
        root = os.path.join(work, f"strata-{name}")
        run(STRATA, "--root", root, "load", "--lazy", "-q", "-i", src, "--tag", "lz:1")
        # skopeo writes the layout's config in OCI's form: another image id, the same layers.
        local_id = json.loads(run(STRATA, "--root", root, "inspect", "lz:1").stdout)[0]["Id"]
        expect(name != "plain" or local_id == image_id, f"strata loaded {local_id}, docker built {image_id}")
        out = os.path.join(work, f"from-{name}.tar")
        run(STRATA, "--root", root, "save", "lz:1", "-o", out)

        def judged_by_docker():
            d2 = Dockerd(work, os.path.join(work, f"docker-{name}"), f"b-{name}")
            d2.start(first=False)
            try:
                d2("load", "-i", out)
                got_id = d2("inspect", "--format", "{{.Id}}", "lz:1").stdout.strip()
                expect(got_id == local_id, f"docker loaded {got_id}, strata saved {local_id}")
                got = d2("run", "--rm", "--network", "none", "lz:1", "sh", "-c", PROBE).stdout
                expect(got == want, f"docker run printed {got!r}, on its own root {want!r}")
                again = os.path.join(work, f"again-{name}.tar")
                d2("save", "-o", again, "lz:1")
                expect(list(archive_layers(again).values()) == list(archive_layers(saved).values()),
                       "docker save of the loaded image has other layers")
            finally:
                d2.stop()
        s.check(f"save of the lazy image ({name} blobs) loads into dockerd as built", judged_by_docker)
finally:
    for daemon in list(Dockerd.running):
        daemon.stop()
    shutil.rmtree(work, ignore_errors=True)
s.finish()
