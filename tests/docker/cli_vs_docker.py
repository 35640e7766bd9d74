#!/usr/bin/python3
"""strata's Docker habits judged by dockerd on the same image: `commit --change` (every
instruction docker accepts, JSON and shell forms, $VAR expansion, relative WORKDIR, ENTRYPOINT
dropping CMD, the errors) and `--entrypoint` ("" clears it and the image's Cmd; a command
then comes from the command line only). dockerd imports a busybox rootfs with an ENTRYPOINT and
CMD, creates containers and commits them with each change; stopped, strata creates and commits
on the same data-root with the same changes, and every config field must be Docker's. Needs
no mount; skipped (77) without root or a dockerd that can start. About 20 s."""
import json
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker_lib import Dockerd, need_dockerd, Steps, busybox_rootfs_tar, expect, log  # noqa: E402
from container_test_lib import STRATA, run  # noqa: E402

FIELDS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes", "OnBuild",
          "Healthcheck")
# Each a list of --change values for one commit.
CHANGES = [
    ['CMD ["x","y"]'], ["CMD echo hi"], ['CMD ["unterminated'], ['cmd ["lower"]'], ["ENV K=V"],
    ['ENV A=1 B="2 3"'], ["ENV C 4 5"], ["ENV P=/opt", "ENV Q=$P/bin R=${P}x S=${NOPE:-dflt}"],
    ["ENV K='single $quoted'"], ["WORKDIR /d"], ["WORKDIR rel"], ["WORKDIR /a", "WORKDIR b/../c"],
    ["ENV D=/base", "WORKDIR $D/sub"], ["ENTRYPOINT /bin/sh -c"], ['ENTRYPOINT ["a"]'],
    ['ENTRYPOINT ["a"]', "CMD b"], ["CMD b", 'ENTRYPOINT ["a"]'], ["USER nobody"], ["USER 1000:1000"],
    ["EXPOSE 80 443/udp"], ["EXPOSE 8000-8002/tcp"], ['LABEL a=b "c d"="e f"'], ["LABEL single value here"],
    ["VOLUME /v"], ['VOLUME ["/a", "/b"]'], ["VOLUME /x /y"], ["ONBUILD RUN x"], ["HEALTHCHECK NONE"],
    ["HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD curl -f http://localhost/"],
    ['HEALTHCHECK --start-period=2s CMD ["/bin/true", "x"]'],
    ["ENV K=1", "USER u", "WORKDIR /w", "EXPOSE 22", "LABEL l=1", "CMD [\"c\"]"],
]
BAD = ["STOPSIGNAL SIGINT", "BOGUS x", "ENV", "ENV K", "ONBUILD FROM x", "HEALTHCHECK NONE x", "HEALTHCHECK CMD",
       "HEALTHCHECK --interval=1us CMD x", "EXPOSE 99999", "SHELL [\"/bin/bash\"]"]
# (--entrypoint value or None, command after IMAGE)
ENTRYPOINTS = [(None, []), ("", ["true"]), ("", ["echo", "x"]), ("/bin/echo", []), ("/bin/echo", ["a", "b"]),
               (None, ["ls", "-l"])]


def empty_is_none(v):
    return None if v in (None, [], {}, "") else v


def fields(cfg):
    return {k: empty_is_none(cfg.get(k)) for k in FIELDS}


def main():
    need_dockerd()
    work = tempfile.mkdtemp(prefix="strata-clidocker-", dir="/var/tmp")
    try:
        s = Steps()
        root = os.path.join(work, "root")
        d = Dockerd(work, root, "d")
        d.start()
        busybox_rootfs_tar(os.path.join(work, "bb.tar"))
        d("import", "-c", 'ENTRYPOINT ["/bin/echo","ep"]', "-c", 'CMD ["imgcmd"]', "-c", "ENV PATH=/bin",
          os.path.join(work, "bb.tar"), "bb:1")
        d("create", "--name", "dc", "bb:1")
        want, want_bad, want_ep = [], [], []
        for i, changes in enumerate(CHANGES):
            args = [a for c in changes for a in ("--change", c)]
            d("commit", *args, "dc", f"dchanged:{i}")
            want.append(fields(json.loads(d("inspect", f"dchanged:{i}").stdout)[0]["Config"]))
        for bad in BAD:
            r = d("commit", "--change", bad, "dc", "dbad:1", check=False)
            want_bad.append(r.returncode != 0)
        for i, (ep, cmd) in enumerate(ENTRYPOINTS):
            flags = [] if ep is None else ["--entrypoint", ep]
            r = d("create", "--name", f"ep{i}", *flags, "bb:1", *cmd, check=False)
            if r.returncode != 0:
                want_ep.append(("error", r.stderr.strip()))
                continue
            c = json.loads(d("inspect", f"ep{i}").stdout)[0]
            want_ep.append((c["Path"], c["Args"], empty_is_none(c["Config"]["Entrypoint"]),
                            empty_is_none(c["Config"]["Cmd"])))
        d("create", "--name", "none", "--entrypoint", "", "bb:1", check=False)
        d.stop()
        log("dockerd stopped; strata on its data-root")

        def strata(*args, check=True):
            return run(STRATA, "--root", root, *args, check=check, timeout=180)

        strata("create", "--name", "sc", "bb:1")
        for i, changes in enumerate(CHANGES):
            def one(i=i, changes=changes):
                args = [a for c in changes for a in ("--change", c)]
                strata("commit", "-q", *args, "sc", f"schanged:{i}")
                got = fields(json.loads(strata("inspect", f"schanged:{i}").stdout)[0]["Config"]["config"])
                expect(got == want[i], f"strata {got}\n  docker {want[i]}")
            s.check(f"commit --change {changes}", one)
        for bad, docker_refused in zip(BAD, want_bad):
            def refused(bad=bad, docker_refused=docker_refused):
                r = strata("commit", "-q", "--change", bad, "sc", "sbad:1", check=False)
                expect((r.returncode != 0) == docker_refused, f"docker refused: {docker_refused}; strata: {r.stderr}")
                if docker_refused:
                    expect(len(r.stderr.splitlines()) == 1 and r.stderr.startswith("strata: commit sc: --change"),
                           r.stderr)
            s.check(f"commit --change {bad!r} refused as by docker", refused)
        for i, ((ep, cmd), w) in enumerate(zip(ENTRYPOINTS, want_ep)):
            def entry(i=i, ep=ep, cmd=cmd, w=w):
                flags = [] if ep is None else ["--entrypoint", ep]
                r = strata("create", "--name", f"sep{i}", *flags, "bb:1", *cmd, check=False)
                if w[0] == "error":
                    expect(r.returncode != 0 and "no command specified" in r.stderr, f"docker: {w[1]}; strata: "
                           f"{r.returncode} {r.stdout} {r.stderr}")
                    return
                expect(r.returncode == 0, r.stderr)
                with open(os.path.join(root, "containers", r.stdout.strip(), "config.v2.json")) as f:
                    c = json.load(f)
                got = (c["Path"], c["Args"], empty_is_none(c["Config"]["Entrypoint"]), empty_is_none(c["Config"]["Cmd"]))
                expect(got == w, f"strata {got}, docker {w}")
            s.check(f"create {'' if ep is None else '--entrypoint ' + repr(ep)} bb:1 {' '.join(cmd)}", entry)
        s.finish()
    finally:
        for dd in list(Dockerd.running):
            dd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
