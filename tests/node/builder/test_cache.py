"""The cache key: same inputs give the same key, each input changes it, irrelevant inputs do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.builder.cache import CacheInput, cache_input_for_step, compute_cache_key, step_cache_key
from node.builder.context import digest_step_sources
from node.builder.dockerfile import ResolvedStep, parse_dockerfile, resolve_stage

PARENT = "sha256:" + "1" * 64
OTHER_PARENT = "sha256:" + "2" * 64


def step(text: str, index: int = -1, **build_args: str) -> ResolvedStep:
    df = parse_dockerfile(text, build_args=build_args)
    return resolve_stage(df, len(df.stages) - 1)[index]


def key(text: str, *, parent: str = PARENT, files: str | None = None, sources: dict[str, str] | None = None,
        **build_args: str) -> str:  # fmt: skip
    return step_cache_key(step(text, **build_args), parent=parent, files_digest=files, sources=sources or {})


RUN = "FROM busybox\nARG VERSION=1\nRUN make install\n"


def test_same_inputs_same_key() -> None:
    assert key(RUN) == key(RUN)
    assert key(RUN).startswith("sha256:") and len(key(RUN)) == 71


def test_key_of_cache_input_ignores_order_of_args_and_sources() -> None:
    a = CacheInput(parent=PARENT, instruction="RUN x", build_args=(("a", "1"), ("b", "2")),
                   sources=(("x", "1"), ("y", "2")))  # fmt: skip
    b = CacheInput(parent=PARENT, instruction="RUN x", build_args=(("b", "2"), ("a", "1")),
                   sources=(("y", "2"), ("x", "1")))  # fmt: skip
    assert compute_cache_key(a) == compute_cache_key(b)


def test_parent_changes_key() -> None:
    assert key(RUN) != key(RUN, parent=OTHER_PARENT)
    assert key(RUN, parent="") != key(RUN)


def test_instruction_text_changes_key() -> None:
    assert key(RUN) != key("FROM busybox\nARG VERSION=1\nRUN make  install\n")
    assert key('FROM busybox\nCMD ["a"]\n') != key("FROM busybox\nCMD a\n")  # exec vs shell form
    assert key("FROM busybox\nRUN --network=none x\n") != key("FROM busybox\nRUN x\n")


def test_substituted_value_changes_key() -> None:
    text = "FROM busybox\nARG DIR=/a\nWORKDIR $DIR\n"
    assert key(text) == key(text, DIR="/a")
    assert key(text) != key(text, DIR="/b")


def test_declared_build_arg_in_scope_changes_run_key() -> None:
    assert key(RUN) == key(RUN, VERSION="1")
    assert key(RUN) != key(RUN, VERSION="2")


def test_undeclared_build_arg_does_not_change_key() -> None:
    assert key(RUN) == key(RUN, UNRELATED="x")
    assert key("FROM busybox\nRUN x\n") == key("FROM busybox\nRUN x\n", VERSION="9")


def test_global_arg_not_redeclared_in_stage_does_not_change_run_key() -> None:
    text = "ARG V=1\nFROM busybox\nRUN x\n"
    assert key(text) == key(text, V="2")
    redeclared = "ARG V=1\nFROM busybox\nARG V\nRUN x\n"
    assert key(redeclared) != key(redeclared, V="2")


def test_arg_declared_after_the_step_does_not_change_its_key() -> None:
    text = "FROM busybox\nRUN x\nARG LATE=1\n"
    assert step_cache_key(step(text, 0), parent=PARENT) == step_cache_key(step(text, 0, LATE="2"), parent=PARENT)


def test_undeclared_proxy_args_never_change_key() -> None:
    assert key(RUN) == key(RUN, HTTP_PROXY="http://proxy:3128", no_proxy="*")
    declared = "FROM busybox\nARG HTTP_PROXY\nRUN x\n"
    assert key(declared, HTTP_PROXY="a") != key(declared, HTTP_PROXY="b")


def test_files_digest_changes_copy_key() -> None:
    text = "FROM busybox\nCOPY . /app\n"
    assert key(text, files="sha256:aa") == key(text, files="sha256:aa")
    assert key(text, files="sha256:aa") != key(text, files="sha256:bb")


def test_source_stage_result_changes_key() -> None:
    text = "FROM busybox AS b\nFROM busybox\nCOPY --from=b /out /out\n"
    assert key(text, sources={"b": "sha256:r1"}) != key(text, sources={"b": "sha256:r2"})
    assert key(text, sources={"b": "sha256:r1"}) == key(text, sources={"b": "sha256:r1"})


def test_heredoc_content_changes_key() -> None:
    assert key("FROM busybox\nRUN <<EOF\necho a\nEOF\n") != key("FROM busybox\nRUN <<EOF\necho b\nEOF\n")


def test_non_run_steps_do_not_carry_unused_args() -> None:
    copy = step("FROM busybox\nARG V=1\nCOPY a /a\n")
    assert cache_input_for_step(copy, parent=PARENT).build_args == ()
    assert step_cache_key(copy, parent=PARENT) == step_cache_key(
        step("FROM busybox\nARG V=1\nCOPY a /a\n", V="2"), parent=PARENT
    )


@pytest.mark.parametrize("change", ["content", "mode", "new-file"])
def test_key_follows_context_files_end_to_end(tmp_path: Path, change: str) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.py").write_text("a = 1\n")
    copy = step("FROM busybox\nCOPY src /app/src\n")

    def current() -> str:
        return step_cache_key(copy, parent=PARENT, files_digest=digest_step_sources(tmp_path, copy))

    before = current()
    assert current() == before
    if change == "content":
        (tmp_path / "src/a.py").write_text("a = 2\n")
    elif change == "mode":
        (tmp_path / "src/a.py").chmod(0o700)
    else:
        (tmp_path / "src/b.py").write_text("")
    assert current() != before
