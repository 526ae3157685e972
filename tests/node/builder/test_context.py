"""The build context: tar creation and safe extraction, COPY/ADD source matching and digests."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from node.builder.context import (
    ContextError,
    context_sources,
    copy_sources,
    digest_paths,
    digest_sources,
    digest_step_sources,
    extract_context_tar,
    list_context,
    load_ignore,
    match_sources,
    write_context_tar,
)
from node.builder.dockerfile import parse_dockerfile, resolve_stage
from node.builder.dockerignore import DockerIgnore
from node.errors import InvalidArgument


def make_tree(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    make_tree(root, {
        "Dockerfile": "FROM busybox\n",
        ".dockerignore": "*.log\nsecrets\nDockerfile\n.dockerignore\n",
        "app/main.py": "print(1)\n",
        "app/util.py": "x = 1\n",
        "app/data/a.json": "{}",
        "debug.log": "noise",
        "secrets/key": "k",
        "README.md": "hi",
    })  # fmt: skip
    os.chmod(root / "app/main.py", 0o755)
    return root


def tar_bytes(root: Path) -> bytes:
    out = io.BytesIO()
    write_context_tar(root, out)
    return out.getvalue()


# ------------------------------------------------------------------------------------------- tar


def test_context_listing_honours_dockerignore_but_keeps_build_files(context: Path) -> None:
    assert list_context(context) == [
        ".dockerignore", "Dockerfile", "README.md", "app", "app/data", "app/data/a.json", "app/main.py",
        "app/util.py",
    ]  # fmt: skip


def test_custom_dockerfile_name_is_kept(context: Path) -> None:
    (context / "ci").mkdir()
    (context / "ci/Dockerfile.ci").write_text("FROM x\n")
    (context / ".dockerignore").write_text("ci\n")
    assert "ci/Dockerfile.ci" in list_context(context, dockerfile="ci/Dockerfile.ci")
    assert load_ignore(context).is_excluded("ci/Dockerfile.ci")


def test_tar_is_deterministic_and_round_trips(context: Path, tmp_path: Path) -> None:
    first = tar_bytes(context)
    assert first == tar_bytes(context)
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == list_context(context)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    dest = tmp_path / "out"
    extract_context_tar(io.BytesIO(first), dest)
    assert (dest / "app/main.py").read_text() == "print(1)\n"
    assert os.stat(dest / "app/main.py").st_mode & 0o777 == 0o755
    assert not (dest / "debug.log").exists() and not (dest / "secrets").exists()


def test_tar_keeps_symlinks_as_links(context: Path, tmp_path: Path) -> None:
    (context / "link").symlink_to("app/main.py")
    dest = tmp_path / "out"
    extract_context_tar(io.BytesIO(tar_bytes(context)), dest)
    assert os.readlink(dest / "link") == "app/main.py"


def evil_tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    out.seek(0)
    return out


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "members",
    [
        [(entry("../escape.txt"), b"x")],
        [(entry("/etc/passwd-copy"), b"x")],
        [(entry("a/../../escape.txt"), b"x")],
        [(entry("link", tarfile.SYMTYPE, "/"), None), (entry("link/tmp/pwned"), b"x")],
        [(entry("up", tarfile.SYMTYPE, ".."), None), (entry("up/pwned"), b"x")],
        [(entry("hard", tarfile.LNKTYPE, "../outside"), None)],
        [(entry("dev", tarfile.CHRTYPE), None)],
        [(entry("fifo", tarfile.FIFOTYPE), None)],
    ],
)
def test_extract_refuses_unsafe_members(members: list[tuple[tarfile.TarInfo, bytes | None]], tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(ContextError):
        extract_context_tar(evil_tar(*members), dest)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "pwned").exists()


def test_extract_refuses_overwriting_a_symlink_that_points_outside(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("safe")
    tar = evil_tar((entry("f", tarfile.SYMTYPE, str(victim)), None), (entry("f"), b"overwritten"))
    with pytest.raises(ContextError, match="outside the context"):
        extract_context_tar(tar, tmp_path / "dest")
    assert victim.read_text() == "safe"


def test_extract_accepts_symlinks_pointing_anywhere_as_data(tmp_path: Path) -> None:
    extract_context_tar(evil_tar((entry("abs", tarfile.SYMTYPE, "/etc/passwd"), None)), tmp_path / "d")
    assert os.readlink(tmp_path / "d/abs") == "/etc/passwd"


# ---------------------------------------------------------------------------------------- sources


def test_match_sources_exact_glob_and_root(context: Path) -> None:
    ignore = load_ignore(context)
    assert match_sources(context, ["app/main.py"], location="Dockerfile:2", ignore=ignore) == ["app/main.py"]
    assert match_sources(context, ["app/*.py"], location="Dockerfile:2", ignore=ignore) == [
        "app/main.py", "app/util.py",
    ]  # fmt: skip
    assert match_sources(context, ["*/d?ta"], location="x", ignore=ignore) == ["app/data"]
    assert match_sources(context, ["."], location="x", ignore=ignore) == [""]
    assert match_sources(context, ["/app/../README.md", "./README.md"], location="x") == ["README.md"]


def test_glob_does_not_see_ignored_files(context: Path) -> None:
    with pytest.raises(ContextError) as info:
        match_sources(context, ["*.log"], location="Dockerfile:4", ignore=load_ignore(context))
    assert str(info.value) == (
        "Dockerfile:4: COPY source '*.log' matches no files in the build context (excluded by .dockerignore)"
    )
    with pytest.raises(ContextError, match=r"'\*\.txt' matches no files in the build context$"):
        match_sources(context, ["*.txt"], location="Dockerfile:4", ignore=load_ignore(context))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("../outside", "Dockerfile:3: COPY source '../outside' is outside the build context"),
        ("app/../../x", "Dockerfile:3: COPY source 'app/../../x' is outside the build context"),
        ("missing.txt", "Dockerfile:3: COPY source 'missing.txt' matches no files in the build context"),
        ("app/*.rb", "Dockerfile:3: COPY source 'app/*.rb' matches no files in the build context"),
        ("debug.log", "Dockerfile:3: COPY source 'debug.log' matches no files in the build context "
                      "(excluded by .dockerignore)"),
    ],
)
def test_source_errors_name_the_line(context: Path, source: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        match_sources(context, [source], location="Dockerfile:3", ignore=load_ignore(context))
    assert str(info.value) == message


def test_bad_glob_is_located(context: Path) -> None:
    with pytest.raises(ContextError) as info:
        match_sources(context, ["app/[a"], location="Dockerfile:6")
    assert str(info.value) == "Dockerfile:6: COPY source 'app/[a': syntax error in pattern: '[a'"


def test_symlink_source_leading_outside_is_refused(context: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    (context / "sneaky").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(ContextError, match="^Dockerfile:2: ADD source 'sneaky' is a symlink leading outside"):
        match_sources(context, ["sneaky"], location="Dockerfile:2", keyword="ADD")


# ---------------------------------------------------------------------------------------- digests


def digest(root: Path, *sources: str) -> str:
    return digest_sources(root, list(sources), location="Dockerfile:1", ignore=load_ignore(root))


def test_digest_is_stable_and_ignores_mtime(context: Path) -> None:
    before = digest(context, "app")
    os.utime(context / "app/main.py", (1, 1))
    assert digest(context, "app") == before
    assert before.startswith("sha256:") and len(before) == 71


def test_digest_changes_with_content_mode_and_listing(context: Path) -> None:
    base = digest(context, "app")
    (context / "app/util.py").write_text("x = 2\n")
    changed_content = digest(context, "app")
    os.chmod(context / "app/util.py", 0o600)
    changed_mode = digest(context, "app")
    (context / "app/data/b.json").write_text("{}")
    changed_listing = digest(context, "app")
    assert len({base, changed_content, changed_mode, changed_listing}) == 4


def test_digest_of_a_file_depends_on_its_name(context: Path) -> None:
    (context / "copy.py").write_text((context / "app/main.py").read_text())
    assert digest(context, "app/main.py") != digest(context, "copy.py")


def test_digest_ignores_excluded_files_inside_a_directory(context: Path) -> None:
    before = digest(context, ".")
    (context / "more.log").write_text("ignored")
    (context / "secrets/other").write_text("ignored")
    assert digest(context, ".") == before
    (context / "new.txt").write_text("counted")
    assert digest(context, ".") != before


def test_digest_records_inner_symlinks_and_follows_top_level_ones(context: Path) -> None:
    (context / "app/link").symlink_to("main.py")
    with_link = digest(context, "app")
    (context / "app/link").unlink()
    (context / "app/link").symlink_to("util.py")
    assert digest(context, "app") != with_link
    (context / "top").symlink_to("app/main.py")
    assert digest_paths(context, ["top"]) != digest_paths(context, ["app/main.py"])  # names differ
    (context / "app/main.py").write_text("changed")
    assert digest_paths(context, ["top"]) == digest_paths(context, ["top"])


def test_top_level_symlink_digest_follows_its_target(context: Path) -> None:
    (context / "top").symlink_to("app/main.py")
    before = digest_paths(context, ["top"])
    (context / "app/main.py").write_text("changed")
    assert digest_paths(context, ["top"]) != before


def test_digest_of_glob_equals_digest_of_its_matches(context: Path) -> None:
    assert digest(context, "app/*.py") == digest_paths(context, ["app/main.py", "app/util.py"])


# --------------------------------------------------------------------------------- steps and sources


def resolved(text: str):
    return resolve_stage(parse_dockerfile(text), 0)


def test_copy_sources_of_steps() -> None:
    copy, from_stage, heredoc, add, run = resolved(
        "FROM busybox\nCOPY a b /d/\nCOPY --from=build /out /out\nCOPY <<EOF a /d/\nx\nEOF\nADD t.tar /\nRUN x\n"
    )
    assert copy_sources(copy) == ["a", "b"]
    assert copy_sources(from_stage) == []
    assert copy_sources(heredoc) == ["a"]
    assert copy_sources(add) == ["t.tar"]
    assert copy_sources(run) == []


def test_digest_step_sources_locates_errors(context: Path) -> None:
    copy, from_stage, missing = resolved(
        "FROM busybox\nCOPY app/*.py /app/\nCOPY --from=b /x /x\nCOPY nope /x\n"
    )
    ignore = load_ignore(context)
    assert digest_step_sources(context, copy, ignore=ignore) == digest(context, "app/*.py")
    assert digest_step_sources(context, from_stage, ignore=ignore) is None
    with pytest.raises(ContextError, match="^Dockerfile:4: COPY source 'nope' matches no files"):
        digest_step_sources(context, missing, ignore=ignore)


def test_default_ignore_is_empty(context: Path) -> None:
    assert match_sources(context, ["debug.log"], location="x") == ["debug.log"]
    assert DockerIgnore().patterns == ()


def test_run_bind_mounts_of_the_context_are_sources(context: Path) -> None:
    run, from_stage, cache, plain = resolved(
        "FROM busybox\nRUN --mount=type=bind,source=app,target=/src --mount=target=/all make\n"
        "RUN --mount=from=build,target=/b ls\nRUN --mount=type=cache,target=/c ls\nRUN ls\n"
    )
    assert context_sources(run) == ["app", "."]
    assert context_sources(from_stage) == context_sources(cache) == context_sources(plain) == []
    assert digest_step_sources(context, plain) is None
    before = digest_step_sources(context, run, ignore=load_ignore(context))
    (context / "app/util.py").write_text("changed")
    assert digest_step_sources(context, run, ignore=load_ignore(context)) != before
