#!/usr/bin/python3
"""Containers over lazy layers (`load --lazy`: blob + index, no diff/), as root or (--rootless)
as the unprivileged test user, against the same image loaded unpacked into a second store as
the oracle: the mounted image is the same tree (and rmi refuses it while mounted); a container that appends to a file of a lazy
layer, chmods one, renames a lazy directory, deletes a lazy file and adds one (copy-up reads
from the blob) prints the same, `diff` lists the same changes and `commit` makes the same
layer (same tar listing, same diff_id); create, start, exec and cp (running and stopped) and container mount work on it; `save` sends the
layers as they were loaded (docker-archive: the tars decompressed, which a fresh store loads to
the same image id; oci-archive: the original blobs, same digests and media types, loadable
lazily again); lazy and unpacked layers mix in every order, and a commit whose layer is stored
lazy already uses it; rm and rmi leave the store clean."""
import io
import json
import os
import stat
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container_test_lib import (Strata, assert_clean_store, build_busybox_image, container_state,  # noqa: E402
                                diff_listings, report, run, start_test, unmount_all_under)
from e2e_common import listing_as, normalize  # noqa: E402

IMG = "t/bb:1"
# Changes to files of both lazy layers, then fixed times on everything the changes touch, so
# that the committed layers can be equal byte for byte (diff_id) between the two stores.
CHANGES = ("echo more >> /data/lower.txt && chmod 600 /data/keep.txt && mv /data/sub /data/moved"
           " && rm /bin/vi && echo new > /new.txt && cat /data/moved/deep.txt /data/lower.txt"
           " && touch -d '2020-01-02 03:04:05' / /data /data/lower.txt /data/moved /bin /new.txt")
WANT_OUT = "deep\nfrom the lower layer\nmore\n"
WANT_DIFF = ["D /bin/vi", "C /bin", "C /data", "C /data/keep.txt", "C /data/lower.txt", "A /data/moved",
             "A /data/moved/deep.txt", "D /data/sub", "A /new.txt"]


def lazy_layers(store):
    ov = os.path.join(store, "overlay2")
    return sorted(n for n in os.listdir(ov)
                  if os.path.isfile(os.path.join(ov, n, "lazy")) and not os.path.exists(os.path.join(ov, n, "diff")))


def tar_listing(data):
    """name -> (type, mode, uid, gid, size, mtime, link, sha256 of the data) of a layer tar."""
    import hashlib
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            body = t.extractfile(m).read() if m.isfile() else b""
            out[m.name] = (m.type, oct(m.mode), m.uid, m.gid, m.size, m.mtime, m.linkname,
                           hashlib.sha256(body).hexdigest())
    return out


def saved_layers(archive):
    """The layer tars of the only image in a docker-archive, bottom first."""
    with tarfile.open(archive) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        return [t.extractfile(name).read() for name in manifest[0]["Layers"]]


def oci_layers(layout_or_archive):
    """(digest, mediaType) of each layer of the only image of an OCI layout dir or archive."""
    if os.path.isdir(layout_or_archive):
        def read(name):
            with open(os.path.join(layout_or_archive, name), "rb") as f:
                return f.read()
    else:
        t = tarfile.open(layout_or_archive)

        def read(name):
            return t.extractfile(name).read()
    index = json.loads(read("index.json"))
    m = json.loads(read("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
    return [(l["digest"], l["mediaType"]) for l in m["layers"]]


def pin_whiteout_times(store, name):
    """Sets the mtime of each whiteout in container NAME's rw layer (char 0/0, `.wh.` name or
    whiteout xattr: any form a writer leaves) to 2020-01-02."""
    cid, _ = container_state(store, name)
    with open(os.path.join(store, "image/overlay2/layerdb/mounts", cid, "mount-id")) as f:
        upper = os.path.join(store, "overlay2", f.read().strip(), "diff")
    for dirpath, dirnames, filenames in os.walk(upper):
        for n in filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            marked = any("whiteout" in x for x in os.listxattr(p, follow_symlinks=False))
            if (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0) or n.startswith(".wh.") or marked:
                os.utime(p, (1577934245, 1577934245), follow_symlinks=False)


def main():
    rootless, user, work = start_test("strata-lazyrun-")
    owners = user is None
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    lazy_store, plain_store = os.path.join(work, "lazy"), os.path.join(work, "plain")
    L, P = Strata(lazy_store, user), Strata(plain_store, user)
    try:
        layout = os.path.join(work, "img")
        build_busybox_image(layout)
        if user:
            run("chown", "-R", user, work)
        L("load", "-q", "--lazy", "-i", layout, "--tag", IMG)
        P("load", "-q", "-i", layout, "--tag", IMG)
        check(len(lazy_layers(lazy_store)) == 2, f"load --lazy left {lazy_layers(lazy_store)} lazy layers, want 2")
        check(lazy_layers(plain_store) == [], "the unpacked store has lazy layers")

        # The image read-only: the same tree as unpacked.
        views = []
        for S in (L, P):
            mnt = S("mount", IMG).stdout.strip()
            views.append(listing_as(mnt, user, owners))
            r = S("rmi", IMG, check=False)
            check(r.returncode != 0 and "is mounted at" in r.stderr, f"rmi of a mounted image: {r.stderr!r}")
            S("umount", IMG)
        d = diff_listings(normalize(views[1]), normalize(views[0]))
        check(not d, "mount of the lazy image differs from the unpacked one:\n" + "\n".join(d[:20]))

        # A container changing files of both lazy layers; the same in the unpacked store.
        for S, what in ((L, "lazy"), (P, "unpacked")):
            r = S("run", "--name", "c1", IMG, "sh", "-c", CHANGES, check=False)
            check(r.returncode == 0 and r.stdout == WANT_OUT,
                  f"run over {what} layers: exit {r.returncode}, {r.stdout!r}, {r.stderr!r}")
        diffs = [S("diff", "c1").stdout.splitlines() for S in (L, P)]
        check(diffs[0] == diffs[1], f"diff over lazy layers {diffs[0]} != over unpacked {diffs[1]}")
        check(sorted(diffs[1]) == sorted(WANT_DIFF), f"diff over unpacked layers: {diffs[1]}")

        # commit: the same layer. The whiteouts the deletes left in the rw layer have the time
        # they were made, which nothing in the container can set: fixed here.
        committed = []
        for S in (L, P):
            pin_whiteout_times(S.root, "c1")
            S("commit", "-q", "c1", "t/out:1")
            info = json.loads(S("inspect", "t/out:1").stdout)[0]
            archive = os.path.join(work, f"out-{len(committed)}.tar")
            S("save", "t/out:1", "-o", archive)
            committed.append((info["Layers"][-1]["diff_id"], tar_listing(saved_layers(archive)[-1])))
        d = diff_listings(committed[1][1], committed[0][1])
        check(not d, "committed layer over lazy layers differs:\n" + "\n".join(d[:20]))
        check(committed[0][0] == committed[1][0],
              f"committed diff_id over lazy layers {committed[0][0]} != over unpacked {committed[1][0]}")

        # create, start, exec, cp over lazy layers.
        L("create", "--name", "c2", IMG, "sleep", "1000")
        L("start", "c2")
        r = L("exec", "c2", "sh", "-c", "cat /data/sub/deep.txt; echo changed > /data/keep.txt", check=False)
        check(r.returncode == 0 and r.stdout == "deep\n", f"exec over lazy layers: {r.returncode} {r.stdout!r} {r.stderr!r}")
        out = os.path.join(work, "copied.txt")
        L("cp", "c2:/data/keep.txt", out)
        got = run("cat", out, user=user).stdout
        check(got == "changed\n", f"cp out of a container over lazy layers: {got!r}")
        L("rm", "-f", "c2")
        # The stopped container: cp out of it and its rw view on the host, over lazy layers.
        L("cp", "c1:/data/moved/deep.txt", out)
        got = run("cat", out, user=user).stdout
        check(got == "deep\n", f"cp out of a stopped container over lazy layers: {got!r}")
        p = L("container", "mount", "c1").stdout.strip()
        got = run("cat", os.path.join(p, "data/lower.txt"), os.path.join(p, "data/moved/deep.txt"), user=user).stdout
        L("container", "umount", "c1")
        check(got == "from the lower layer\nmore\ndeep\n", f"container mount over lazy layers shows {got!r}")

        # save: docker-archive (plain tars) loads into a fresh store as the same image.
        archive = os.path.join(work, "lazy-docker.tar")
        L("save", IMG, "-o", archive)
        ids = [json.loads(S("inspect", IMG).stdout)[0]["Id"] for S in (L, P)]
        F = Strata(os.path.join(work, "fresh"), user)
        F("load", "-q", "-i", archive)
        fresh_id = json.loads(F("inspect", IMG).stdout)[0]["Id"]
        check(ids[0] == ids[1] == fresh_id, f"image ids: lazy {ids[0]}, unpacked {ids[1]}, saved and loaded {fresh_id}")
        mnt = F("mount", IMG).stdout.strip()
        d = diff_listings(normalize(views[1]), normalize(listing_as(mnt, user, owners)))
        F("umount", IMG)
        check(not d, "docker-archive saved from lazy layers loads as another tree:\n" + "\n".join(d[:20]))
        # oci-archive: the blobs as loaded, byte for byte.
        oci = os.path.join(work, "lazy-oci.tar")
        L("save", "--format", "oci-archive", IMG, "-o", oci)
        check(oci_layers(oci) == oci_layers(layout),
              f"oci-archive layers {oci_layers(oci)} != the loaded layout's {oci_layers(layout)}")
        G = Strata(os.path.join(work, "fresh-lazy"), user)
        G("load", "-q", "--lazy", "-i", oci, "--tag", IMG)
        r = G("run", "--rm", IMG, "cat", "/data/keep.txt", check=False)
        check(r.stdout == "keep\n", f"image saved from lazy layers, loaded lazily again: {r.stdout!r} {r.stderr!r}")
        check(json.loads(G("inspect", IMG).stdout)[0]["Id"] == ids[1], "oci-archive of the lazy image: another id")

        # Lazy and unpacked layers mixed: the commit (unpacked) over the lazy image; P's commit
        # loaded lazily over the unpacked image F holds; and in G (all lazy) the same container
        # committed again, which finds its layer already stored, lazy.
        F("load", "-q", "--lazy", "-i", os.path.join(work, "out-1.tar"))
        G("load", "-q", "--lazy", "-i", os.path.join(work, "out-1.tar"))
        check(len(lazy_layers(F.root)) == 1 and len(lazy_layers(G.root)) == 3,
              f"lazy layers: {lazy_layers(F.root)} in F (want the commit's), {lazy_layers(G.root)} in G (want 3)")
        for S, what in ((L, "unpacked over lazy"), (F, "lazy over unpacked"), (G, "lazy over lazy")):
            r = S("run", "--rm", "t/out:1", "cat", "/new.txt", "/data/lower.txt", "/data/moved/deep.txt", check=False)
            check(r.returncode == 0 and r.stdout == "new\nfrom the lower layer\nmore\ndeep\n",
                  f"committed image, {what}: exit {r.returncode}, {r.stdout!r}, {r.stderr!r}")
        G("run", "--name", "c3", IMG, "sh", "-c", CHANGES)
        pin_whiteout_times(G.root, "c3")
        r = G("commit", "-q", "c3", "t/again:1", check=False)
        again = json.loads(G("inspect", "t/again:1").stdout)[0]["Layers"] if r.returncode == 0 else []
        check(r.returncode == 0 and again[-1]["diff_id"] == committed[1][0],
              f"commit onto a stored lazy layer: exit {r.returncode} {r.stderr!r}, layers {again}")
        r = G("run", "--rm", "t/again:1", "cat", "/new.txt", check=False)
        check(r.stdout == "new\n", f"image committed onto a stored lazy layer: {r.stdout!r} {r.stderr!r}")

        # Everything removed: nothing left of the lazy layers.
        L("rm", "c1")
        L("rmi", IMG, "t/out:1")
        assert_clean_store(lazy_store)
    except AssertionError as e:
        failures.append(str(e))
    finally:
        for S in (L, P):
            S("rm", "-f", "c1", "c2", check=False)
        unmount_all_under(work)
        run("rm", "-rf", work, check=False)
    return report(failures, "lazy_runtime", rootless)


if __name__ == "__main__":
    sys.exit(main())
