"""`build:` services: `pycompose up --build` and `pycompose build` through the engine's builder (issue 6)."""

from __future__ import annotations

import pytest

from compose.cli.buildoutput import BuildOutput
from compose.loader import LoadError
from tests.compose.conftest import Compose, LoadFn, WriteFn

UPTIME = "cut -d' ' -f1 /proc/uptime"


@pytest.mark.privileged
def test_up_build_builds_services_in_parallel_with_their_secrets_tags_and_inline_dockerfile(
        compose: Compose, write: WriteFn) -> None:
    # Each build notes the kernel's uptime around a sleep: the intervals overlap when the builds run at once
    # (a wall-clock bound would be flaky on a loaded machine).
    write("a/Dockerfile", f"FROM busybox\nRUN --mount=type=secret,id=token {UPTIME} > /t && sleep 2 && "
                          f"{UPTIME} >> /t && cp /run/secrets/token /seen\nCMD [\"cat\", \"/t\"]\n")
    write("b/Dockerfile", f"FROM busybox\nRUN {UPTIME} > /t && sleep 2 && {UPTIME} >> /t\nCMD [\"cat\", \"/t\"]\n")
    write("token.txt", "s3cr3t")
    write("compose.yaml", """
        services:
          a:
            build:
              context: ./a
              secrets: [token]
              tags: ["myapp-extra:1"]
          b:
            build: ./b
          c:
            build:
              context: .
              dockerfile_inline: |
                FROM busybox
                CMD ["echo", "inline"]
        secrets:
          token: {file: ./token.txt}
        """)
    result = compose("up", "-d", "--build")
    assert "[a 2/3] RUN --mount=type=secret" in result.stderr and "[b 2/3] RUN" in result.stderr
    steps = [line.split()[0] for line in result.stderr.splitlines() if line.startswith("#") and "[" in line]
    assert len(steps) == len(set(steps)), "two builds' steps share a number"
    engine = compose.engine
    start_a, end_a = map(float, engine.cli("run", "--rm", "myapp-a").stdout.split())
    start_b, end_b = map(float, engine.cli("run", "--rm", "myapp-b").stdout.split())
    assert start_b < end_a and start_a < end_b, "services a and b were not built in parallel"
    assert engine.cli("run", "--rm", "myapp-a", "cat", "/seen").stdout == "s3cr3t"
    assert engine.cli("run", "--rm", "myapp-extra:1", "true").returncode == 0
    assert engine.cli("run", "--rm", "myapp-c").stdout == "inline\n"
    compose("down", "--rmi", "local")
    tags = {t for image in engine.client.get("/images/json") for t in image.get("RepoTags") or []}
    assert not {t for t in tags if t.startswith("myapp-") and t != "myapp-extra:1"}
    engine.cli("rmi", "myapp-extra:1")


@pytest.mark.privileged
def test_build_command_reports_each_service_and_a_failure(compose: Compose, write: WriteFn) -> None:
    write("ok/Dockerfile", "FROM busybox\nRUN echo fine\n")
    write("bad/Dockerfile", "FROM busybox\nRUN echo broken >&2; exit 3\n")
    write("compose.yaml", "services:\n  ok: {build: ./ok}\n")
    built = compose("build")
    assert " ✔ Service ok  Built (myapp-ok)" in built.stderr
    write("compose.yaml", "services:\n  bad: {build: ./bad}\n")
    failed = compose("build", check=False)
    assert failed.returncode == 1 and "service bad: build failed" in failed.stderr and "exit code: 3" in failed.stderr
    assert "broken" in failed.stderr
    compose.engine.cli("rmi", "myapp-ok")


def test_build_secrets_are_long_syntax_and_must_be_defined(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        services:
          app:
            build: {context: ., secrets: [token, {source: other, target: id2}]}
        secrets:
          token: {file: ./t}
        """)
    with pytest.raises(LoadError, match=r'services\.app\.build\.secrets\[1\]: secret "other" is not defined'):
        load()
    write("compose.yaml", "services:\n  app:\n    build: {context: ., secrets: [token]}\n"
                          "secrets:\n  token: {file: ./t}\n")
    assert load().services["app"].raw["build"]["secrets"] == [{"source": "token"}]


def test_build_output_of_several_services_is_numbered_once_and_named() -> None:
    output = BuildOutput()
    assert output.render("web", "#1 [internal] load build definition") == "#1 [web internal] load build definition"
    assert output.render("api", "#1 [1/2] FROM busybox") == "#2 [api 1/2] FROM busybox"
    assert output.render("web", "#1 DONE 0.0s") == "#1 DONE 0.0s"
    assert output.render("api", "#1 0.123 output") == "#2 0.123 output"
    assert output.render("web", "ERROR: failed to solve") == "ERROR: failed to solve"
