"""Issue 6's acceptance points, through `pynode build` against a real daemon with a busybox base."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.node.builder.conftest import ensure_busybox, write_context
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged
Unique = Callable[[str], str]

MULTI_STAGE = """\
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM $BASE AS builder
WORKDIR /src
COPY hello.txt .
RUN echo "built from $(cat hello.txt)" > /out.txt && echo step output here
FROM busybox
COPY --from=builder /out.txt /app/out.txt
COPY other.txt /app/
CMD ["cat", "/app/out.txt"]
"""


def steps(output: str) -> list[tuple[str, str]]:
    """(vertex name, CACHED | DONE | ERROR) for each `#N [...]` vertex of BuildKit plain output."""
    names: dict[str, str] = {}
    status: dict[str, str] = {}
    for line in output.splitlines():
        match = re.match(r"^#(\d+) (.*)$", line)
        if not match:
            continue
        number, rest = match.groups()
        if number not in names:
            names[number] = rest
        elif rest == "CACHED" or rest.startswith(("DONE", "ERROR")):
            status[number] = rest.split()[0].rstrip(":")
    return [(names[n], status.get(n, "")) for n in names if names[n].startswith("[") and "[internal]" not in names[n]]


def build(e: EngineProcess, *args: str, check: bool = True) -> tuple[int, str, str]:
    result = e.cli("build", *args, check=check, timeout=300)
    return result.returncode, result.stdout, result.stderr


def containers_of(e: EngineProcess) -> list[str]:
    return e.cli("ps", "-aq").stdout.split()


def test_multi_stage_builds_runs_and_rebuilds_all_cached(busybox_engine: EngineProcess, unique: Unique,
                                                         tmp_path: Path) -> None:  # fmt: skip
    e = busybox_engine
    tag = unique("multi") + ":1"
    ctx = write_context(tmp_path, {"Dockerfile": MULTI_STAGE, "hello.txt": "world\n", "other.txt": "x\n"})
    _, _, out = build(e, "-t", tag, str(ctx))
    assert "[builder 4/4] RUN" in out and "step output here" in out
    assert re.search(r"^#\d+ DONE \d+\.\d+s$", out, re.M)
    assert e.cli("run", "--rm", tag).stdout == "built from world\n"
    _, _, again = build(e, "-t", tag, str(ctx))
    assert steps(again) and all(status == "CACHED" for _, status in steps(again)), again
    history = e.cli("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", tag).stdout.splitlines()
    assert history[0] == 'CMD ["cat", "/app/out.txt"]|0B'
    assert history[1].startswith("COPY other.txt /app/|") and not history[1].endswith("|0B")
    assert history[2].startswith("COPY --from=builder /out.txt /app/out.txt|")
    e.cli("rmi", tag)


def test_changing_one_file_rebuilds_from_its_copy(busybox_engine: EngineProcess, unique: Unique,
                                                  tmp_path: Path) -> None:  # fmt: skip
    e = busybox_engine
    tag = unique("change")
    dockerfile = ("FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy-a\nCOPY b.txt /b.txt\n"
                  "RUN cat /a.txt /b.txt > /both\nCMD [\"cat\", \"/both\"]\n")  # fmt: skip
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile, "a.txt": "a1\n", "b.txt": "b1\n"})
    build(e, "-t", tag, str(ctx))
    (ctx / "b.txt").write_text("b2\n")
    _, _, out = build(e, "-t", tag, str(ctx))
    status = {name.split("] ", 1)[1]: s for name, s in steps(out)}
    assert status["COPY a.txt /a.txt"] == "CACHED"
    assert status["RUN cat /a.txt > /copy-a"] == "CACHED"
    assert status["COPY b.txt /b.txt"] == "DONE"
    assert status["RUN cat /a.txt /b.txt > /both"] == "DONE"
    assert status['CMD ["cat", "/both"]'] == "DONE"
    assert e.cli("run", "--rm", tag).stdout == "a1\nb2\n"
    _, _, fresh = build(e, "--no-cache", "-t", tag, str(ctx))
    assert [s for n, s in steps(fresh) if "FROM" not in n] == ["DONE"] * 5
    e.cli("rmi", tag)


def test_secret_is_readable_in_its_step_and_in_no_layer(busybox_engine: EngineProcess, unique: Unique,
                                                        tmp_path: Path) -> None:  # fmt: skip
    e = busybox_engine
    tag = unique("secret")
    secret = f"s3cr3t-{unique('value')}"
    digest = hashlib.sha256(secret.encode()).hexdigest()  # the Dockerfile must not hold the secret itself
    dockerfile = ("FROM busybox\n"
                  f"RUN --mount=type=secret,id=token test \"$(sha256sum < /run/secrets/token)\" = \"{digest}  -\""
                  " && echo secret-ok && echo done > /done\n"
                  "RUN --mount=type=secret,id=token,target=/etc/tok.txt,required=true wc -c /etc/tok.txt\n")
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    (tmp_path / "token").write_text(secret)
    _, _, out = build(e, "-t", tag, "--secret", f"id=token,src={tmp_path / 'token'}", str(ctx))
    assert "secret-ok" in out
    saved = _save(e, tag)
    assert secret.encode() not in saved
    names = _layer_names(saved)
    assert "done" in names
    assert not [n for n in names if "secrets" in n or "tok.txt" in n or n in ("etc/hosts", "etc/resolv.conf")], names
    e.cli("rmi", tag)


def _save(e: EngineProcess, tag: str) -> bytes:
    with e.client.stream("GET", "/images/get", params={"names": [tag]}) as response:
        return b"".join(response.iter_raw())


def _layer_names(saved: bytes) -> set[str]:
    names: set[str] = set()
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        for member in outer:
            if member.isfile() and (member.name.endswith("layer.tar") or member.name.startswith("blobs/")):
                data = outer.extractfile(member)
                assert data is not None
                try:
                    with tarfile.open(fileobj=io.BytesIO(data.read())) as layer:
                        names |= {m.name for m in layer}
                except tarfile.TarError:
                    continue
    return names


def test_dockerignore_add_heredoc_chown_chmod_and_metadata(busybox_engine: EngineProcess, unique: Unique,
                                                           tmp_path: Path) -> None:  # fmt: skip
    e = busybox_engine
    tag = unique("features")
    dockerfile = """\
FROM busybox
ARG GREETING=hello
ENV APP_HOME=/srv/app
WORKDIR $APP_HOME
COPY . ./ctx/
ADD bundle.tar.gz /opt/
COPY --chown=nobody:nobody --chmod=0640 data.txt /owned/
COPY --chmod=u+x,go= keep.txt /exec.txt
COPY <<EOF /etc/motd
welcome $GREETING
EOF
RUN <<EOF
set -e
test -e ctx/keep.txt
test ! -e ctx/secret.log
test ! -e ctx/logs
test -e ctx/logs2/keep.log
test ! -e ctx/Dockerfile
test "$(cat /opt/inner/file.txt)" = packed
test "$(stat -c '%U:%G %a' /owned/data.txt)" = "nobody:nobody 640"
test "$(stat -c '%a' /exec.txt)" = 700
echo "$GREETING from $(pwd)" > /greeting
EOF
USER nobody
EXPOSE 8080/tcp 53/udp
LABEL org.example.name="demo app" version=1
VOLUME ["/data"]
HEALTHCHECK --interval=5s --retries=2 CMD ["true"]
STOPSIGNAL SIGQUIT
ENTRYPOINT ["cat"]
CMD ["/greeting"]
"""
    ctx = write_context(tmp_path, {
        "Dockerfile": dockerfile, "keep.txt": "k", "secret.log": "no", "logs/a.log": "no",
        "logs2/keep.log": "yes", "data.txt": "d", ".dockerignore": "*.log\nlogs\n!logs2/keep.log\nDockerfile\n",
    })  # fmt: skip
    bundle = tarfile.open(ctx / "bundle.tar.gz", "w:gz")
    info = tarfile.TarInfo("inner/file.txt")
    info.size = len(b"packed")
    bundle.addfile(info, io.BytesIO(b"packed"))
    bundle.close()
    build(e, "-t", tag, "--label", "from-cli=yes", str(ctx))
    assert e.cli("run", "--rm", tag).stdout == "hello from /srv/app\n"
    fmt = ("{{.Config.User}}|{{.Config.WorkingDir}}|{{json .Config.ExposedPorts}}|{{json .Config.Volumes}}|"
           "{{.Config.StopSignal}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Labels}}")
    inspected = e.cli("image", "inspect", "-f", fmt, tag).stdout.strip().split("|")
    assert inspected[:3] == ["nobody", "/srv/app", '{"53/udp":{},"8080/tcp":{}}']
    assert inspected[3:7] == ['{"/data":{}}', "SIGQUIT", '["cat"]', '["/greeting"]']
    assert '"from-cli":"yes"' in inspected[7] and '"org.example.name":"demo app"' in inspected[7]
    health = e.cli("image", "inspect", "-f", "{{json .Config.Healthcheck}}", tag).stdout
    assert '"Interval":5000000000' in health and '"Retries":2' in health
    e.cli("rmi", tag)


def test_target_builds_only_what_it_needs_and_stages_run_in_parallel(busybox_engine: EngineProcess,
                                                                     unique: Unique, tmp_path: Path) -> None:
    e = busybox_engine
    tag = unique("target")
    # Each stage notes the kernel's uptime before and after its sleep: the two intervals overlap when
    # the stages run at the same time (a wall-clock bound would be flaky on a loaded machine).
    uptime = "cut -d' ' -f1 /proc/uptime"
    dockerfile = f"""\
FROM busybox AS one
RUN {uptime} > /one && sleep 2 && {uptime} >> /one
FROM busybox AS two
RUN {uptime} > /two && sleep 2 && {uptime} >> /two
FROM busybox AS unused
RUN echo never-built
FROM busybox AS final
COPY --from=one /one /
COPY --from=two /two /
CMD ["cat", "/one", "/two"]
"""
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    _, _, out = build(e, "--target", "final", "--no-cache", "-t", tag, str(ctx))
    assert "never-built" not in out and "[unused" not in out
    start_one, end_one, start_two, end_two = map(float, e.cli("run", "--rm", tag).stdout.split())
    assert start_two < end_one and start_one < end_two, "stages one and two did not run in parallel"
    _, _, only_one = build(e, "--target", "one", "-t", tag + "-one", str(ctx))
    assert {n.split()[0] for n, _ in steps(only_one)} == {"[one"}
    e.cli("rmi", tag, tag + "-one")


def test_cache_mount_persists_between_builds_and_onbuild_triggers_run(busybox_engine: EngineProcess,
                                                                      unique: Unique, tmp_path: Path) -> None:
    e = busybox_engine
    base, child = unique("onbase"), unique("onchild")
    write_context(tmp_path / "base", {"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered > /onbuild\n"})
    build(e, "-t", base, str(tmp_path / "base"))
    cache_id = unique("cache")
    dockerfile = (f"FROM {base}\nRUN --mount=type=cache,id={cache_id},target=/cache,sharing=locked "
                  "echo x >> /cache/runs && wc -l < /cache/runs > /count\n"
                  "CMD [\"cat\", \"/count\", \"/onbuild\"]\n")
    write_context(tmp_path / "child", {"Dockerfile": dockerfile})
    build(e, "-t", child, str(tmp_path / "child"))
    build(e, "--no-cache", "-t", child, str(tmp_path / "child"))
    assert e.cli("run", "--rm", child).stdout.split() == ["2", "triggered"]
    onbuild = "{{json .Config.OnBuild}}"
    assert e.cli("image", "inspect", "-f", onbuild, base).stdout.strip() == '["RUN echo triggered > /onbuild"]'
    assert e.cli("image", "inspect", "-f", onbuild, child).stdout.strip() == "null"  # triggers run once
    e.cli("rmi", base, child)


@pytest.mark.parametrize(("dockerfile", "args", "expected"), [
    ("FROM busybox\nRUN true\nRUNN false\n", (), "Dockerfile:3: unknown instruction: RUNN"),
    ("FROM busybox\nCOPY missing.txt /\n", (), "Dockerfile:2: COPY source 'missing.txt' matches no files"),
    ("FROM busybox\nCOPY ../outside /\n", (), "Dockerfile:2: COPY source '../outside' is outside the build context"),
    ("FROM busybox AS a\nFROM busybox\nCOPY --from=nosuchstage /x /\n", (), "Dockerfile:3: COPY --from nosuchstage"),
    ("FROM busybox AS a\nCOPY --from=a /x /\n", (), "circular dependency"),
    ("FROM busybox\n", ("--target", "nope"), "target stage 'nope' could not be found"),
    ("FROM nosuchimage:1\n", (), "Dockerfile:1: FROM nosuchimage:1"),
    ("FROM busybox\nADD https://example.com/x /x\n", (), "no network fetch is done here"),
    ("FROM busybox\n", ("-t", "Bad:Tag:x"), "invalid reference format"),
    ("FROM busybox\nCOPY --exclude=*.md . /\n", (), "Dockerfile:2: COPY --exclude is not supported here"),
    ("FROM busybox\nRUN --mount=type=bind,from=nosuch,target=/x true\n", (), "Dockerfile:2: RUN --mount=from nosuch"),
])  # fmt: skip
def test_bad_input_is_one_line_and_leaves_nothing(busybox_engine: EngineProcess, unique: Unique, tmp_path: Path,
                                                  dockerfile: str, args: tuple[str, ...], expected: str) -> None:
    e = busybox_engine
    tag = unique("bad")
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile, "present.txt": "p"})
    before = containers_of(e)
    code, _, err = build(e, "-t", tag, *args, str(ctx), check=False)
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err and err.startswith("ERROR: ")
    assert e.cli("image", "inspect", tag, check=False).returncode != 0
    assert containers_of(e) == before


def test_failing_run_reports_step_output_and_exit_code_and_tags_nothing(busybox_engine: EngineProcess,
                                                                         unique: Unique, tmp_path: Path) -> None:
    e = busybox_engine
    tag = unique("fail")
    dockerfile = "FROM busybox\nRUN echo fine\nRUN echo first line; echo last words >&2; exit 3\nRUN echo never\n"
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    before = containers_of(e)
    code, _, err = build(e, "-t", tag, str(ctx), check=False)
    assert code == 1
    assert "last words" in err and "first line" in err
    assert "exit code: 3" in err.splitlines()[-1] and err.splitlines()[-1].startswith("ERROR: ")
    assert "Dockerfile:3" in err and ">>> RUN echo first line" in err
    assert "] RUN echo never" not in err, err
    assert e.cli("image", "inspect", tag, check=False).returncode != 0
    assert containers_of(e) == before
    mounts = Path("/proc/mounts").read_text()
    assert str(e.data_root / "overlay2") not in mounts or all(
        "/merged" not in line for line in mounts.splitlines() if str(e.data_root) in line)


def test_cache_survives_restart_and_builder_prune_empties_it(engine: EngineProcess, unique: Unique,
                                                             tmp_path: Path) -> None:  # fmt: skip
    ensure_busybox(engine)
    tag = unique("restart")
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo one > /one\nCMD [\"cat\", \"/one\"]\n"})
    build(engine, "-t", tag, str(ctx))
    engine.stop()
    engine.start()
    _, _, out = build(engine, "-t", tag, str(ctx))
    assert all(s == "CACHED" for _, s in steps(out)), out
    assert "<none>" not in engine.cli("images").stdout
    cache_row = next(line for line in engine.cli("system", "df").stdout.splitlines() if line.startswith("Build Cache"))
    assert cache_row.split()[2] != "0", cache_row  # TOTAL: step results are counted
    pruned = engine.cli("builder", "prune", "-f").stdout
    assert "Total reclaimed space:" in pruned
    cache_row = next(line for line in engine.cli("system", "df").stdout.splitlines() if line.startswith("Build Cache"))
    assert cache_row.split()[2] == "0", cache_row
    _, _, after = build(engine, "-t", tag, str(ctx))
    assert [s for n, s in steps(after) if "FROM" not in n] == ["DONE", "DONE"]
    assert engine.cli("run", "--rm", tag).stdout == "one\n"


def test_shell_bind_mount_copy_from_image_scratch_and_dockerfile_outside_context(
        busybox_engine: EngineProcess, unique: Unique, tmp_path: Path) -> None:
    e = busybox_engine
    tag, scratch = unique("misc"), unique("scratch")
    dockerfile = """\
FROM scratch AS files
COPY --chmod=0755 tool.sh /tool.sh
FROM busybox
MAINTAINER someone@example.com
SHELL ["/bin/sh", "-ec"]
RUN --mount=type=bind,source=conf,target=/mnt/conf cat /mnt/conf/app.conf > /app.conf
RUN --mount=type=bind,from=files,target=/mnt/files test -x /mnt/files/tool.sh && test ! -e /tool.sh
COPY --from=files /tool.sh /usr/local/bin/
COPY --from=busybox /etc/passwd /copied-passwd
RUN test -x /usr/local/bin/tool.sh && test ! -e /mnt/conf/app.conf && grep -q root /copied-passwd
CMD ["/usr/local/bin/tool.sh"]
"""
    ctx = write_context(tmp_path / "ctx", {"tool.sh": "#!/bin/sh\ncat /app.conf\n", "conf/app.conf": "key=value\n"})
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text(dockerfile)
    build(e, "-f", str(outside), "-t", tag, str(ctx))
    assert e.cli("run", "--rm", tag).stdout == "key=value\n"
    history = e.cli("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout
    assert "RUN /bin/sh -ec cat /mnt/conf/app.conf > /app.conf" in history
    assert e.cli("image", "inspect", "-f", "{{.Author}}", tag).stdout.strip() == "someone@example.com"
    build(e, "-f", str(outside), "--target", "files", "-t", scratch, str(ctx))
    layers = e.cli("image", "inspect", "-f", "{{len .RootFS.Layers}}", scratch).stdout.strip()
    assert layers == "1"
    code, _, err = build(e, "-f", str(tmp_path / "bad.Dockerfile"), str(ctx), check=False)
    assert code != 0 and "bad.Dockerfile" in err
    e.cli("rmi", tag, scratch)


def test_build_args_enter_the_cache_key_and_network_none(busybox_engine: EngineProcess, unique: Unique,
                                                         tmp_path: Path) -> None:  # fmt: skip
    e = busybox_engine
    tag = unique("args")
    dockerfile = ("FROM busybox\nARG V=1\nRUN echo $V > /v\n"
                  "RUN --network=none sh -c '! ip -o link | grep -q eth0' && echo isolated\nCMD [\"cat\", \"/v\"]\n")
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    _, _, first = build(e, "--build-arg", "V=2", "--build-arg", "UNUSED=x", "-t", tag, str(ctx))
    assert "isolated" in first and "[Warning] One or more build-args ['UNUSED'] were not consumed" in first
    assert e.cli("run", "--rm", tag).stdout == "2\n"
    _, _, same = build(e, "--build-arg", "V=2", "-t", tag, str(ctx))
    assert all(s == "CACHED" for _, s in steps(same)), same
    _, _, other = build(e, "--build-arg", "V=3", "-t", tag, str(ctx))
    assert dict((n.split("] ", 1)[1], s) for n, s in steps(other))["RUN echo $V > /v"] == "DONE"
    assert e.cli("run", "--rm", tag).stdout == "3\n"
    e.cli("rmi", tag)


def test_dockerfile_from_stdin_iidfile_and_build_network(busybox_engine: EngineProcess, tmp_path: Path) -> None:
    e = busybox_engine
    ctx = write_context(tmp_path / "ctx", {"file.txt": "from the context\n"})
    dockerfile = "FROM busybox\nCOPY file.txt /\nRUN ! ip -o link | grep -q eth0\n"
    iidfile = tmp_path / "iid"
    result = e.cli("build", "-f", "-", "--network", "none", "--iidfile", str(iidfile), str(ctx), input=dockerfile)
    image_id = iidfile.read_text()
    assert image_id.startswith("sha256:") and image_id in result.stderr
    assert e.cli("run", "--rm", image_id, "cat", "/file.txt").stdout == "from the context\n"
    assert image_id.removeprefix("sha256:")[:12] in e.cli("images", "-q").stdout.split()  # listed, dangling
    e.cli("rmi", image_id)


def test_api_stream_is_docker_shaped(busybox_engine: EngineProcess, unique: Unique, tmp_path: Path) -> None:
    from node.errors import NodeError

    e = busybox_engine
    tag = unique("api")
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo via-api\n"})
    messages = list(e.client.build(ctx, tags=[tag], labels={"a": "b"}))
    assert all(set(m) <= {"stream", "aux"} for m in messages)
    assert "via-api" in "".join(m.get("stream", "") for m in messages)
    image_id = messages[-1]["aux"]["ID"]
    assert e.client.get(f"/images/{tag}/json")["Id"] == image_id
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    with pytest.raises(NodeError, match="failed to solve: .*exit code: 7"):
        list(e.client.build(ctx, tags=[tag + "-failed"]))
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo via-api\n")
    quiet = list(e.client.build(ctx, dockerfile=ctx / "Dockerfile", quiet=True, tags=[tag], labels={"a": "b"}))
    assert quiet[-1]["stream"].strip() == image_id and not [m for m in quiet if "#" in m.get("stream", "")]
    assert e.client.post("/build/prune")["SpaceReclaimed"] >= 0
    e.cli("rmi", tag)


def test_unknown_user_fails_its_run_step_with_the_location(busybox_engine: EngineProcess, unique: Unique,
                                                           tmp_path: Path) -> None:  # fmt: skip
    e = busybox_engine
    tag = unique("user")
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nUSER ghost\nRUN id\n"})
    before = containers_of(e)
    code, _, err = build(e, "-t", tag, str(ctx), check=False)
    assert code == 1
    assert err.splitlines()[-1].startswith("ERROR: Dockerfile:3: ") and "unable to find user ghost" in err
    assert containers_of(e) == before
    assert e.cli("image", "inspect", tag, check=False).returncode != 0
