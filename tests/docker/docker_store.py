#!/usr/bin/python3
"""Docker and strata on one store, both ways, with dockerd (Debian's docker.io) as the judge.

Docker writes, strata reads: dockerd builds an image (hardlinks, a whiteout, an opaque dir, a
set-uid file, ENV, WORKDIR) on a tiny busybox base it imported, commits a dangling image, and is
stopped; then strata lists (intermediate images hidden as `docker images` hides them), inspects,
verifies, saves (layers byte for byte as `docker save`), mounts (the tree `docker export` gives)
and runs the image — the read-only commands leaving the root exactly as it was — then mounts
and removes a container dockerd created (the first write: strata's lock is made then), tags,
runs, diffs, commits and removes, dockerd still reads the root afterwards, and rmi of images
with children refuses, untags or prunes parents as dockerd 20.10 does on the same history.

strata writes, Docker reads: strata loads Docker's archive, runs and commits a container; dockerd
on that store lists both images under the same ids, runs them, `docker save` gives strata's
layers byte for byte, `docker commit` adds a layer; stopped again, `strata verify` is clean and
strata runs Docker's commit."""
import json
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker_lib import (DOCKER, DOCKERD, Dockerd, Steps, archive_layers, build_on_busybox, expect, log,  # noqa: E402
                        tree_changes, tree_state)
from container_test_lib import STRATA, diff_listings, listing, run, skip, unmount_all_under  # noqa: E402

DOCKERFILE = """FROM tbase:1
RUN mkdir -p /low/keep /opq/old && echo gone > /low/gone.txt && echo keep > /low/keep/k.txt \\
 && echo old > /opq/old/o.txt && echo oldtop > /opq/top.txt
RUN rm /low/gone.txt && rm -rf /opq && mkdir -p /opq/new && echo new > /opq/new/n.txt \\
 && echo data > /hl1 && ln /hl1 /hl2 && touch /suid && chmod 4755 /suid
ENV GREETING="hello docker"
WORKDIR /work/dir
CMD ["/bin/sh"]
"""
# What a container of dtest:1 must see: WORKDIR, ENV, the opaque /opq, the whiteout of
# /low/gone.txt, one inode for both hardlink names, the set-uid bit.
PROBE = ("pwd; echo \"$GREETING\"; ls /opq; ls /low; cat /low/keep/k.txt; [ /hl1 -ef /hl2 ] && echo hardlinked; "
         "stat -c '%h %a' /hl1 /suid")
PROBE_OUT = "/work/dir\nhello docker\nnew\nkeep\nkeep\nhardlinked\n2 644\n1 4755\n"
# Added to a container by Docker's init layer, not part of the image.
INIT_PATHS = (".dockerenv", "dev", "proc", "sys", "etc/hostname", "etc/hosts", "etc/mtab", "etc/resolv.conf")


def need_env():
    if os.geteuid() != 0:
        skip("needs root (dockerd, kernel overlayfs, strata-fs)")
    if not DOCKERD or not os.path.exists(DOCKER):
        skip("dockerd not installed (scripts/deps.sh installs docker.io)")
    for t in ("busybox", "fusermount3", "tar"):
        if shutil.which(t) is None:
            skip(f"{t} not installed")
    if not os.path.exists("/dev/fuse") or not os.path.exists(os.environ.get("STRATA_FS", "")):
        skip("no /dev/fuse or strata-fs not built")


def strata_cmd(root):
    def strata(*args, check=True):
        return run(STRATA, "--root", root, *args, check=check, timeout=180)
    return strata


def ids_of(docker_q_output):
    return sorted(set(docker_q_output.split()))


def strata_ids(strata, *args):
    return sorted({r["ID"] for r in json.loads(strata("images", "--format", "json", *args).stdout)})


def expect_same_layers(ours, theirs, what):
    for image_id, layers in theirs.items():
        expect(ours.get(image_id) == layers, f"{what}: image {image_id[:19]} layers differ:\n"
                                             f"  strata: {ours.get(image_id)}\n  docker: {layers}")


def docker_writes_strata_reads(s, work):
    root = os.path.join(work, "docker-root")
    d = Dockerd(work, root, "a")
    log("dockerd: import a busybox base, build dtest:1, commit a dangling image, save, export")
    d.start()
    build_on_busybox(d, work, DOCKERFILE, "dtest:1")
    d("run", "--network", "none", "--name", "c1", "dtest:1", "sh", "-c", "echo x > /x")
    dangling = d("commit", "c1").stdout.strip()
    d("rm", "c1")
    oracle = {
        "id": d("inspect", "--format", "{{.Id}}", "dtest:1").stdout.strip(),
        "base": d("inspect", "--format", "{{.Id}}", "tbase:1").stdout.strip(),
        "images": ids_of(d("images", "-q", "--no-trunc").stdout),
        "images_all": ids_of(d("images", "-a", "-q", "--no-trunc").stdout),
        "probe": d("run", "--rm", "--network", "none", "dtest:1", "sh", "-c", PROBE).stdout,
    }
    saved = os.path.join(work, "docker-a.tar")
    d("save", "-o", saved, "dtest:1")
    d("create", "--name", "ex", "dtest:1")
    exported = os.path.join(work, "export")
    os.makedirs(exported)
    d("export", "-o", exported + ".tar", "ex")
    d("rm", "ex")
    for name in ("dkept", "dgone"):  # left for strata's container mount and rm
        d("create", "--name", name, "dtest:1", "true")
    run("tar", "-xpf", exported + ".tar", "-C", exported, "--numeric-owner")
    d.stop()
    expect(oracle["probe"] == PROBE_OUT, f"docker run printed {oracle['probe']!r}, the test expects {PROBE_OUT!r}")
    expect(dangling in oracle["images"], "docker images does not list the dangling commit")

    log("dockerd stopped; strata on its root")
    strata = strata_cmd(root)
    before = tree_state(root)
    s.check("images hides intermediate images as docker images does",
            lambda: expect(strata_ids(strata) == oracle["images"],
                           f"strata images: {strata_ids(strata)}\ndocker images: {oracle['images']}"))
    s.check("images -a lists them as docker images -a does",
            lambda: expect(strata_ids(strata, "-a") == oracle["images_all"],
                           f"strata images -a: {strata_ids(strata, '-a')}\ndocker images -a: {oracle['images_all']}"))
    s.check("inspect", lambda: expect(f'"Id": "{oracle["id"]}"' in strata("inspect", "dtest:1").stdout, "inspect Id"))
    s.check("history", lambda: expect("WORKDIR" in strata("history", "dtest:1").stdout, "history lacks WORKDIR"))
    s.check("verify on Docker's root", lambda: strata("verify"))
    ours = os.path.join(work, "strata-a.tar")
    if s.check("save", lambda: strata("save", "dtest:1", "-o", ours)):
        s.check("save: layers byte for byte as docker save",
                lambda: expect_same_layers(archive_layers(ours), archive_layers(saved), "save"))
    mnt = os.path.join(work, "mnt")

    def mount_matches_export():
        strata("mount", "dtest:1", mnt)
        try:
            ref = {k: v for k, v in listing(exported).items()
                   if not any(k == p or k.startswith(p + "/") for p in INIT_PATHS)}
            diffs = diff_listings(ref, listing(mnt))
            expect(not diffs, "strata mount differs from docker export:\n" + "\n".join(diffs[:20]))
            expect(os.stat(os.path.join(mnt, "hl1")).st_ino == os.stat(os.path.join(mnt, "hl2")).st_ino,
                   "hl1 and hl2 are not one inode")
        finally:
            strata("umount", mnt, check=False)
    s.check("mount: the tree docker export gives", mount_matches_export)
    s.check("read-only commands leave the root as it was",
            lambda: expect(not tree_changes(before, tree_state(root)),
                           "\n".join(tree_changes(before, tree_state(root))[:20])))

    def docker_containers_before_any_lock():
        # Each the first strata command that writes on this root: it must create strata's lock,
        # not fail for want of it ("open .../strata.lock").
        lock = os.path.join(root, "strata.lock")
        expect(not os.path.exists(lock), "strata.lock exists already")
        strata("rm", "dgone")
        expect("dgone" not in strata("ps", "-a").stdout, "dgone still listed after strata rm")
        os.unlink(lock)  # nothing holds it: as if rm had not run
        merged = strata("container", "mount", "dkept").stdout.strip()
        try:
            expect(open(os.path.join(merged, "low/keep/k.txt")).read() == "keep\n", "container mount: wrong tree")
        finally:
            strata("container", "umount", "dkept")
        strata("rm", "dkept")
        expect("dkept" not in strata("ps", "-a").stdout, "dkept still listed after strata rm")
    s.check("container mount and rm of a container dockerd created, before strata's lock exists",
            docker_containers_before_any_lock)

    def run_probe():
        r = strata("run", "--rm", "dtest:1", "sh", "-c", PROBE, check=False)
        expect(r.returncode == 0 and r.stdout == PROBE_OUT, f"strata run: exit {r.returncode}, printed "
                                                            f"{r.stdout!r}, want {PROBE_OUT!r}\n{r.stderr}")
    s.check("run sees Docker's tree, ENV and WORKDIR", run_probe)

    def write_commands():
        strata("tag", "dtest:1", "dtest:tagged")
        strata("rmi", "dtest:tagged")
        strata("create", "--name", "made", "dtest:1", "true")
        strata("rm", "made")
        strata("run", "--name", "c", "dtest:1", "sh", "-c", "echo from-strata > /s.txt && rm /low/keep/k.txt")
        changes = strata("diff", "c").stdout.split("\n")
        expect("A /s.txt" in changes and "D /low/keep/k.txt" in changes, f"strata diff: {changes}")
        strata("commit", "c", "dtest:strata")
        strata("rm", "c")
        r = strata("run", "--rm", "dtest:strata", "sh", "-c", "cat /s.txt; ls /low/keep | wc -l")
        expect(r.stdout == "from-strata\n0\n", f"run of the committed image printed {r.stdout!r}")
        strata("verify")
    if not s.check("tag, rmi, create, run, diff, commit on Docker's root", write_commands):
        return saved

    def docker_reads_it_after():
        d.start(first=False)
        try:
            expect(set(oracle["images_all"]) <= set(ids_of(d("images", "-a", "-q", "--no-trunc").stdout)),
                   "docker lost images")
            r = d("run", "--rm", "--network", "none", "dtest:strata", "cat", "/s.txt")
            expect(r.stdout == "from-strata\n", f"docker run of strata's commit printed {r.stdout!r}")
        finally:
            d.stop()
    s.check("dockerd reads the root strata wrote to", docker_reads_it_after)

    def rmi_as_docker():
        # dockerd 20.10 on this same history (dtest:1 has two children: the dangling commit and
        # dtest:strata): an image with children cannot be deleted by id, not even with -f; by its
        # tag it is only untagged; deleting a child also deletes the untagged, childless parents
        # it leaves (here dtest:1 and the build's intermediate images), down to tbase:1.
        meta = os.path.join(root, "image", "overlay2", "imagedb", "metadata", "sha256")
        build_step = open(os.path.join(meta, oracle["id"].split(":")[1], "parent")).read()
        state = tree_state(root)
        for args in (("rmi", build_step), ("rmi", "-f", build_step), ("rmi", oracle["id"])):
            r = strata(*args, check=False)
            want = f"conflict: unable to delete {build_step[7:19] if args[-1] == build_step else oracle['id'][7:19]}" \
                   " (cannot be forced) - image has dependent child images"
            expect(r.returncode != 0 and want in r.stderr, f"strata {' '.join(args)}: exit {r.returncode}, "
                                                           f"{r.stdout!r} {r.stderr!r}; docker says {want!r}")
            expect(not tree_changes(state, tree_state(root)), f"strata {' '.join(args)} changed the root")
        r = strata("rmi", "dtest:1")
        expect(r.stdout == "Untagged: dtest:1\n", f"rmi dtest:1 printed {r.stdout!r}; docker only untags")
        expect(oracle["id"] in strata_ids(strata, "-a"), "rmi dtest:1 deleted an image with children")
        strata("rmi", "dtest:strata")
        expect(oracle["id"] in strata_ids(strata, "-a"), "dtest:1's other child (the dangling commit) is gone")
        strata("rmi", dangling)
        expect(strata_ids(strata, "-a") == [oracle["base"]],
               f"after rmi of both children: {strata_ids(strata, '-a')}, docker leaves only tbase:1")
        strata("verify")
    s.check("rmi refuses or only untags an image with children, removes orphaned parents (as dockerd)",
            rmi_as_docker)
    return saved


def strata_writes_docker_reads(s, work, docker_archive):
    root = os.path.join(work, "strata-root")
    log("strata: load Docker's archive, run and commit; then dockerd on that store")
    strata = strata_cmd(root)
    strata("load", "-q", "-i", docker_archive)

    def committed_as_docker_load():
        # Docker's graph driver marks a layer `committed` when it creates a layer on it: after a
        # load, every layer of the chain but the top one.
        layers = json.loads(strata("inspect", "dtest:1").stdout)[0]["Layers"]
        marked = [os.path.exists(os.path.join(root, "overlay2", x["cache_id"], "committed")) for x in layers]
        want = [True] * (len(layers) - 1) + [False]
        expect(marked == want, f"committed files bottom to top: {marked}, docker load leaves {want}")
    s.check("load marks committed as docker load does", committed_as_docker_load)
    strata("run", "--name", "c", "dtest:1", "sh", "-c", "echo committed > /c.txt && rm /low/keep/k.txt")
    strata("commit", "c", "sb:2")
    strata("rm", "c")
    ours = os.path.join(work, "strata-b.tar")
    strata("save", "dtest:1", "sb:2", "-o", ours)
    ids = {json.loads(strata("inspect", n).stdout)[0]["Id"] for n in ("dtest:1", "sb:2")}
    d = Dockerd(work, root, "b")
    d.start(first=False)
    try:
        s.check("docker images: strata's images under the same ids",
                lambda: expect(ids <= set(ids_of(d("images", "-q", "--no-trunc").stdout)), "ids differ"))
        s.check("docker run of strata's images", lambda: [
            expect(d("run", "--rm", "--network", "none", "dtest:1", "sh", "-c", PROBE).stdout == PROBE_OUT,
                   "docker run dtest:1"),
            expect(d("run", "--rm", "--network", "none", "sb:2", "sh", "-c", "cat /c.txt; ls /low/keep | wc -l")
                   .stdout == "committed\n0\n", "docker run sb:2")])
        theirs = os.path.join(work, "docker-b.tar")
        d("save", "-o", theirs, "dtest:1", "sb:2")
        s.check("docker save: strata's layers byte for byte",
                lambda: expect_same_layers(archive_layers(ours), archive_layers(theirs), "docker save"))
        d("run", "--network", "none", "--name", "dc", "sb:2", "sh", "-c", "echo from-docker > /d.txt")
        d("commit", "dc", "sb:3")
        d("rm", "dc")
    finally:
        d.stop()
    s.check("verify after docker commit", lambda: strata("verify"))

    def run_docker_commit():
        r = strata("run", "--rm", "sb:3", "cat", "/d.txt", "/c.txt")
        expect(r.stdout == "from-docker\ncommitted\n", f"strata run sb:3 printed {r.stdout!r}")
    s.check("strata runs Docker's commit", run_docker_commit)


def main():
    need_env()
    work = tempfile.mkdtemp(prefix="strata-docker-", dir="/var/tmp")
    try:
        s = Steps()
        saved = docker_writes_strata_reads(s, work)
        strata_writes_docker_reads(s, work, saved)
        s.finish()
    finally:
        log("cleanup")
        for d in list(Dockerd.running):
            d.stop()
        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
