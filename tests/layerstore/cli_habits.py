#!/usr/bin/env python3
"""The strata command line as a docker/podman user types it (issue 13): --version, unknown
flags named in one line (never taken as the image), --network and --platform, IMAGE [COMMAND]
[ARG...] in help, --entrypoint "" and commit --change with the configs dockerd 20.10 gives for
the same input, and short names resolved as podman does. Needs no root, mount or network:
containers are only created and committed, never run."""
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strata_test_lib import STRATA, run, strata, workdir  # noqa: E402

FAILURES = []


def check(name, cond, detail=""):
    if not cond:
        FAILURES.append(f"{name}: {detail}")
        print(f"FAIL {name}: {detail}")
    else:
        print(f"ok   {name}")


def docker_archive(path, images):
    """A docker-archive with one one-file layer per image; `images` is [(repo_tag, config
    fields, file content)]: different content gives different image ids."""
    with tarfile.open(path, "w") as t:
        manifest = []
        for tag, fields, content in images:
            layer = io.BytesIO()
            with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as lt:
                data = content.encode()
                ti = tarfile.TarInfo("etc/content")
                ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
                lt.addfile(ti, io.BytesIO(data))
            blob = layer.getvalue()
            diff_id = "sha256:" + hashlib.sha256(blob).hexdigest()
            cfg = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                   "config": {"Env": ["PATH=/usr/bin:/bin"], **fields},
                   "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                   "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "test"}]}
            for k in ("architecture", "os", "variant"):
                if k in fields:
                    cfg[k] = fields[k]
                    del cfg["config"][k]
            cbytes = json.dumps(cfg).encode()
            cname = hashlib.sha256(cbytes).hexdigest() + ".json"
            lname = hashlib.sha256(blob).hexdigest() + "/layer.tar"
            for name, data in ((cname, cbytes), (lname, blob)):
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))
            manifest.append({"Config": cname, "RepoTags": [tag], "Layers": [lname]})
        data = json.dumps(manifest).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))


def store_state(root):
    """Every path under the store with its size and mtime: a refused command changes none."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def one_line_error(r, start):
    lines = r.stderr.splitlines()
    return r.returncode != 0 and len(lines) == 1 and lines[0].startswith(start)


def inspect_id(root, image):
    return json.loads(strata(root, "inspect", image).stdout)[0]["Id"]


def container_config(root, cid):
    with open(os.path.join(root, "containers", cid, "config.v2.json")) as f:
        return json.load(f)


def test_version():
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    with open(os.path.join(top, "CMakeLists.txt")) as f:
        version = re.search(r"project\(strata VERSION ([0-9.]+)", f.read()).group(1)
    for args in (["--version"], ["version"]):
        r = run(STRATA, *args)
        line = r.stdout.strip()
        check(f"strata {args[0]}", re.fullmatch(rf"strata version {re.escape(version)}( \(git [0-9a-f]{{7,}}.*\))?",
                                                  line) is not None, repr(line))
        if os.path.isdir(os.path.join(top, ".git")) and shutil.which("git"):
            check(f"strata {args[0]} has git describe", "(git " in line, repr(line))


def test_unknown_flags(root, image):
    before = store_state(root)
    for cmd in ("run", "create"):
        for args, flag in ((["-p", "80:80"], "-p"), (["--publish=80:80"], "--publish"), (["-P"], "-P"),
                           (["--memory", "1g"], "--memory"), (["--mount", "type=bind,src=/,dst=/h"], "--mount"),
                           (["--gpus", "all"], "--gpus"), (["--restart", "always"], "--restart"),
                           (["--bogus-flag"], "--bogus-flag"), (["--name", "x", "-P"], "-P"),
                           (["-e", "A=1", "--pid=host"], "--pid")):
            r = strata(root, cmd, *args, image, "true", check=False)
            ok = one_line_error(r, f"strata: {cmd}: unknown flag {flag};") and r.returncode == 125
            check(f"{cmd} {' '.join(args)}", ok, f"rc {r.returncode}: {r.stderr!r}")
        # A known docker flag strata lacks says why; an unknown one does not pretend to know.
        r = strata(root, cmd, "-p", "80:80", image, check=False)
        check(f"{cmd} -p hint", "host's network" in r.stderr, r.stderr)
    r = strata(root, "images", "--bogus", check=False)
    check("images --bogus", one_line_error(r, "strata: images: unknown flag --bogus;") and r.returncode == 125,
          f"rc {r.returncode}: {r.stderr!r}")
    r = strata(root, "--bogus", "images", check=False)
    check("--bogus images is strata's flag", one_line_error(r, "strata: unknown flag --bogus;"), r.stderr)
    r = strata(root, "container", "mount", "--bogus", "c", check=False)
    check("container mount --bogus", one_line_error(r, "strata: container mount: unknown flag --bogus;"), r.stderr)
    r = strata(root, "exec", "-x", "somecontainer", "ls", check=False)
    check("exec -x", one_line_error(r, "strata: exec: unknown flag -x;") and r.returncode == 125,
          f"rc {r.returncode}: {r.stderr!r}")
    r = strata(root, "frobnicate", check=False)
    check("unknown command", one_line_error(r, "strata: unknown command frobnicate;"), r.stderr)
    check("unknown flags change nothing", store_state(root) == before)
    # Flags after IMAGE belong to the command.
    r = strata(root, "create", "--name", "after", image, "ls", "-p", "--memory", "1")
    cfg = container_config(root, r.stdout.strip())
    check("flags after IMAGE are the command's", cfg["Path"] == "ls" and cfg["Args"] == ["-p", "--memory", "1"],
          json.dumps(cfg["Args"]))
    # -i and -t (lifecycle) as one word, when this build has them: never an unknown flag.
    helptext = strata(root, "create", "--help").stdout
    if re.search(r"^\s*-i,", helptext, re.M) and re.search(r"^\s*-t,", helptext, re.M):
        r = strata(root, "create", "-it", "--name", "it", image, check=False)
        check("create -it", r.returncode == 0, r.stderr)
        r = strata(root, "create", "-itP", image, check=False)
        check("create -itP names -P", one_line_error(r, "strata: create: unknown flag -P;"), r.stderr)


def test_network_platform(root, image):
    r = strata(root, "create", "--network", "host", "--name", "net-host", image, check=False)
    check("--network host", r.returncode == 0, r.stderr)
    r = strata(root, "create", "--net=host", image, check=False)
    check("--net=host", r.returncode == 0, r.stderr)
    r = strata(root, "create", "--platform", "linux/amd64", "--name", "plat", image, check=False)
    check("--platform linux/amd64", r.returncode == 0, r.stderr)
    before = store_state(root)
    for net in ("none", "bridge", "mynet"):
        for cmd in ("run", "create"):
            r = strata(root, cmd, "--network", net, image, check=False)
            check(f"{cmd} --network {net}",
                  one_line_error(r, f"strata: {cmd}: --network {net}:") and "host's network" in r.stderr, r.stderr)
    for cmd in ("run", "create"):
        r = strata(root, cmd, "--platform", "linux/arm64", image, check=False)
        check(f"{cmd} --platform linux/arm64",
              one_line_error(r, f"strata: {cmd} {image}: --platform linux/arm64: the image is linux/amd64"), r.stderr)
        r = strata(root, cmd, "--platform", "amd64", image, check=False)
        check(f"{cmd} --platform amd64", one_line_error(r, f"strata: {cmd} {image}: --platform \"amd64\""), r.stderr)
    check("refused network/platform change nothing", store_state(root) == before)


def test_help():
    for cmd, words in (("run", "IMAGE [COMMAND] [ARG...]"), ("create", "IMAGE [COMMAND] [ARG...]"),
                       ("exec", "CONTAINER COMMAND [ARG...]")):
        out = run(STRATA, cmd, "--help").stdout
        usage = next((line for line in out.splitlines() if line.startswith("Usage:")), "")
        check(f"{cmd} --help usage", usage.endswith(f"[OPTIONS] {words}"), usage)
        first = words.split()[0]
        check(f"{cmd} --help positionals", re.search(rf"^\s+{first}\s+\S", out, re.M) is not None, out)


def test_entrypoint(root):
    # dockerd 20.10 on an image with Entrypoint ["/bin/echo","ep"], Cmd ["imgcmd"]:
    #   run --entrypoint "" IMG         -> "No command specified" (the image's Cmd is dropped too)
    #   create --entrypoint "" IMG true -> Config.Entrypoint null, Cmd ["true"]
    #   run --entrypoint /bin/echo IMG  -> an empty line (the image's Cmd is not the argument)
    strata(root, "load", "-q", "-i", os.path.join(root, "..", "ep.tar"))
    img = "ep:1"
    before = store_state(root)
    r = strata(root, "create", "--entrypoint", "", img, check=False)
    check("--entrypoint '' without a command", one_line_error(r, "strata: create ep:1: no command specified"),
          r.stderr)
    check("--entrypoint '' refused changes nothing", store_state(root) == before)
    # (flags, command after IMAGE, Path, Args, Config.Entrypoint, Config.Cmd)
    cases = (([], [], "/bin/echo", ["ep", "imgcmd"], ["/bin/echo", "ep"], ["imgcmd"]),
             (["--entrypoint", ""], ["true"], "true", [], None, ["true"]),
             (["--entrypoint=/bin/echo"], [], "/bin/echo", [], ["/bin/echo"], []),
             (["--entrypoint", "/bin/echo"], ["a"], "/bin/echo", ["a"], ["/bin/echo"], ["a"]))
    for flags, extra, path, args, ep, cmd in cases:
        r = strata(root, "create", *flags, img, *extra)
        cfg = container_config(root, r.stdout.strip())
        got = (cfg["Path"], cfg["Args"], cfg["Config"]["Entrypoint"], cfg["Config"]["Cmd"])
        check(f"create {' '.join(flags) or '(image entrypoint)'} {' '.join(extra)}", got == (path, args, ep, cmd),
              repr(got))


def test_short_names(work):
    root = os.path.join(work, "short")
    archive = os.path.join(work, "names.tar")
    docker_archive(archive, [("localhost/debian-real:12", {"Cmd": ["/bin/sh"]}, "local deb"),
                             ("localhost/debian-real:11", {}, "local deb 11"),
                             ("quay.io/a/app:1", {}, "quay a"), ("quay.io/b/app:1", {}, "quay b"),
                             ("both:1", {}, "hub both"), ("localhost/both:1", {}, "local both"),
                             ("example.com/only/tool:2", {}, "tool")])
    strata(root, "load", "-q", "-i", archive)
    ids = {t: inspect_id(root, t) for t in ("localhost/debian-real:12", "localhost/debian-real:11", "quay.io/a/app:1",
                                             "docker.io/library/both:1", "localhost/both:1",
                                             "example.com/only/tool:2")}
    check("short name -> localhost/", inspect_id(root, "debian-real:12") == ids["localhost/debian-real:12"])
    check("short name -> docker.io/library first",
          inspect_id(root, "both:1") == ids["docker.io/library/both:1"] != ids["localhost/both:1"])
    check("short name -> the one other registry", inspect_id(root, "tool:2") == ids["example.com/only/tool:2"])
    check("short path -> the one other registry", inspect_id(root, "only/tool:2") == ids["example.com/only/tool:2"])
    r = strata(root, "inspect", "app:1", check=False)
    check("ambiguous short name", one_line_error(r, "strata: inspect: short name \"app:1\" is ambiguous") and
          "quay.io/a/app:1" in r.stderr and "quay.io/b/app:1" in r.stderr, r.stderr)
    r = strata(root, "inspect", "debian-real:13", check=False)
    check("no such tag hints", one_line_error(r, "strata: inspect: no such image: debian-real:13; did you mean") and
          "localhost/debian-real:12" in r.stderr, r.stderr)
    r = strata(root, "inspect", "debain-real:12", check=False)
    check("a typo hints", "did you mean" in r.stderr and "localhost/debian-real:12" in r.stderr, r.stderr)
    r = strata(root, "inspect", "zzzz:1", check=False)
    check("nothing close: no hint", one_line_error(r, "strata: inspect: no such image: zzzz:1") and
          "did you mean" not in r.stderr, r.stderr)
    r = strata(root, "inspect", "quay.io/c/app:1", check=False)
    check("a name with a registry is not short", "no such image" in r.stderr, r.stderr)
    # Every command that takes IMAGE goes through the same resolver.
    r = strata(root, "create", "--name", "sn", "debian-real:12")
    check("create short name", container_config(root, r.stdout.strip())["Image"] == ids["localhost/debian-real:12"])
    strata(root, "tag", "debian-real:12", "localhost/debian-real:stable")
    check("tag short name", inspect_id(root, "localhost/debian-real:stable") == ids["localhost/debian-real:12"])
    out = os.path.join(work, "short-save.tar")
    strata(root, "save", "-o", out, "debian-real:12")
    with tarfile.open(out) as t:
        tags = json.load(t.extractfile("manifest.json"))[0]["RepoTags"]
    check("save short name names the stored tag", tags == ["localhost/debian-real:12"], repr(tags))
    strata(root, "history", "debian-real:11")
    strata(root, "verify", "debian-real:11")
    # rmi of a short name untags the tag it named, as podman rmi does.
    r = strata(root, "rmi", "debian-real:stable", check=False)
    check("rmi short name untags", r.returncode == 0 and "Untagged: localhost/debian-real:stable" in r.stdout,
          r.stdout + r.stderr)
    check("rmi short name keeps the other tag", inspect_id(root, "localhost/debian-real:12") ==
          ids["localhost/debian-real:12"])


def test_commit_change(root):
    strata(root, "load", "-q", "-i", os.path.join(root, "..", "ep.tar"))
    strata(root, "create", "--name", "tochange", "ep:1")
    # Each: --change values, then the config fields dockerd 20.10 gives (`docker commit
    # --change` of a container of the same image, recorded on this machine).
    base = {"Cmd": ["imgcmd"], "Entrypoint": ["/bin/echo", "ep"], "Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "",
            "User": ""}
    cases = [
        (['CMD ["x","y"]'], {"Cmd": ["x", "y"]}),
        (["CMD echo hi"], {"Cmd": ["/bin/sh", "-c", "echo hi"]}),
        (['CMD ["unterminated'], {"Cmd": ["/bin/sh", "-c", '["unterminated']}),
        (['cmd ["lower"]'], {"Cmd": ["lower"]}),
        (["ENV K=V"], {"Env": ["PATH=/usr/bin:/bin", "K=V"]}),
        (['ENV A=1 B="2 3"'], {"Env": ["PATH=/usr/bin:/bin", "A=1", "B=2 3"]}),
        (["ENV C 4 5"], {"Env": ["PATH=/usr/bin:/bin", "C=4 5"]}),
        (["ENV PATH=/opt:$PATH"], {"Env": ["PATH=/opt:/usr/bin:/bin"]}),
        (["WORKDIR /d"], {"WorkingDir": "/d"}),
        (["WORKDIR rel"], {"WorkingDir": "/rel"}),
        (["WORKDIR /a", "WORKDIR b/../c"], {"WorkingDir": "/a/c"}),
        (["ENTRYPOINT /bin/sh -c"], {"Entrypoint": ["/bin/sh", "-c", "/bin/sh -c"], "Cmd": None}),
        (['ENTRYPOINT ["a"]'], {"Entrypoint": ["a"], "Cmd": None}),
        (['ENTRYPOINT ["a"]', "CMD b"], {"Entrypoint": ["a"], "Cmd": ["/bin/sh", "-c", "b"]}),
        (["USER nobody"], {"User": "nobody"}),
        (["EXPOSE 80 443/udp"], {"ExposedPorts": {"443/udp": {}, "80/tcp": {}}}),
        (['LABEL a=b "c d"="e f"'], {"Labels": {"a": "b", "c d": "e f"}}),
        (["VOLUME /v"], {"Volumes": {"/v": {}}}),
        (["ONBUILD RUN x"], {"OnBuild": ["RUN x"]}),
    ]
    for i, (changes, want) in enumerate(cases):
        args = [a for c in changes for a in ("--change", c)]
        r = strata(root, "commit", *args, "tochange", f"changed:{i}", check=False)
        if r.returncode != 0:
            check(f"commit --change {changes}", False, r.stderr)
            continue
        cfg = json.loads(strata(root, "inspect", f"changed:{i}").stdout)[0]["Config"]["config"]
        exp = dict(base, **want)
        got = {k: cfg.get(k) for k in exp}
        check(f"commit --change {changes}", got == exp, f"got {got}, want {exp}")
    before = store_state(root)
    for bad, msg in (("STOPSIGNAL SIGINT", "stopsignal is not a valid change command"),
                     ("BOGUS x", "bogus is not a valid change command"),
                     ("ENV", "ENV requires at least one argument"), ("ENV K", "ENV must have two arguments"),
                     ("EXPOSE 99999", "invalid port")):
        r = strata(root, "commit", "--change", "CMD ok", "--change", bad, "tochange", "bad:1", check=False)
        check(f"commit --change {bad!r} refused", one_line_error(r, "strata: commit tochange:") and msg in r.stderr,
              r.stderr)
    check("refused --change writes nothing", store_state(root) == before)


def main():
    work = workdir()
    try:
        root = os.path.join(work, "root")
        docker_archive(os.path.join(work, "base.tar"), [("localhost/base:1", {"Cmd": ["/bin/sh"]}, "base")])
        docker_archive(os.path.join(work, "ep.tar"),
                       [("ep:1", {"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["imgcmd"]}, "ep")])
        strata(root, "load", "-q", "-i", os.path.join(work, "base.tar"))
        test_version()
        test_help()
        test_unknown_flags(root, "localhost/base:1")
        test_network_platform(root, "localhost/base:1")
        test_entrypoint(root)
        test_commit_change(root)
        test_short_names(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print("FAIL:\n  " + "\n  ".join(FAILURES))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
