""".dockerignore: Docker's (moby/patternmatcher) rules, and the walker that skips excluded directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.builder import dockerignore
from node.builder.dockerignore import DockerIgnore, read_patterns, walk_included
from node.errors import InvalidArgument


def excluded(text: str, path: str) -> bool:
    return DockerIgnore.parse(text).is_excluded(path)


def test_read_patterns_cleans_like_the_docker_cli() -> None:
    text = "\ufeff# comment\n\n  *.log  \n/build\n./tmp/\n! ./keep.log\n #not-a-comment\na/../b\n//x\n"
    assert read_patterns(text) == ["*.log", "build", "tmp", "!keep.log", "#not-a-comment", "b", "x"]


@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        ("*.md", "README.md", True),
        ("*.md", "docs/a.md", False),  # "*" never crosses "/"
        ("**/*.md", "docs/a.md", True),
        ("**/*.md", "README.md", True),  # "**" matches zero directories too
        ("docs", "docs", True),
        ("docs", "docs/sub/a.txt", True),  # a matching parent directory excludes its contents
        ("docs/", "docs/a.txt", True),
        ("/build", "build/out.o", True),
        ("./tmp", "tmp/x", True),
        ("temp?", "temp1", True),
        ("temp?", "temp12", False),
        ("*/temp*", "somedir/temporary.txt", True),
        ("*/temp*", "a/b/temporary.txt", False),
        ("*/*/temp*", "a/b/temporary.txt", True),
        ("[a-c].txt", "b.txt", True),
        ("[a-c].txt", "d.txt", False),
        ("[^a-c].txt", "d.txt", True),
        ("\\*.txt", "*.txt", True),
        ("\\*.txt", "a.txt", False),
        ("a.b", "aXb", False),  # "." is literal
        ("a+b", "aab", False),  # regex characters are literal
        ("**/node_modules", "node_modules", True),
        ("**/node_modules", "web/app/node_modules/x/y.js", True),
        ("**/foo", "afoo", False),
        ("docs/**", "docs/a/b", True),
        ("docs/**", "docsx", False),
        ("**", "anything/at/all", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/c", False),
        ("**.go", "pkg/main.go", True),
        ("?", "a/b", True),  # "a" matches as a parent directory
    ],
)
def test_pattern_matching(patterns: str, path: str, expected: bool) -> None:
    assert excluded(patterns, path) is expected


def test_exceptions_and_last_match_wins() -> None:
    rules = DockerIgnore.parse("*.md\n!README*.md\nREADME-secret.md\n")
    assert rules.is_excluded("CHANGES.md")
    assert not rules.is_excluded("README.md")
    assert rules.is_excluded("README-secret.md")


def test_exception_inside_excluded_directory() -> None:
    rules = DockerIgnore.parse("docs\n!docs/keep\n")
    assert rules.is_excluded("docs/other.txt")
    assert not rules.is_excluded("docs/keep")
    assert not rules.is_excluded("docs/keep/nested.txt")
    assert rules.is_excluded("docs")


def test_exclude_everything_then_include() -> None:
    rules = DockerIgnore.parse("*\n!src\n!Dockerfile\n")
    assert rules.is_excluded("README")
    assert not rules.is_excluded("src/main.py")
    assert not rules.is_excluded("Dockerfile")


def test_keeping_adds_exceptions_only_for_excluded_files() -> None:
    rules = DockerIgnore.parse("Dockerfile*\n.dockerignore\n").keeping(".dockerignore", "Dockerfile")
    assert not rules.is_excluded("Dockerfile")
    assert not rules.is_excluded(".dockerignore")
    assert rules.is_excluded("Dockerfile.dev")
    assert DockerIgnore.parse("*.md\n").keeping("Dockerfile").patterns == DockerIgnore.parse("*.md\n").patterns


@pytest.mark.parametrize(
    "text", ["!\n", "[abc\n", "[]a]\n", "[-a]\n", "[a-]\n", "x[\n", "[\\\n", "[a-c--]\n", "[--0]\n"]
)
def test_bad_patterns(text: str) -> None:
    with pytest.raises(InvalidArgument, match="^.dockerignore: "):
        DockerIgnore.parse(text)


def test_class_edge_cases() -> None:
    assert not excluded("[z-a]", "m")  # a reversed range is accepted and matches nothing
    assert excluded("[^z-a]", "m")
    assert excluded("[\\]]x", "]x")
    assert excluded("[a\\-c]", "-")
    assert not excluded("[a\\-c]", "b")
    assert excluded("a[+-0]", "a.")  # "+" to "0" includes "." and "-"


def test_no_patterns_exclude_nothing() -> None:
    assert not DockerIgnore().is_excluded("a/b")
    assert not DockerIgnore.parse("# only comments\n\n").is_excluded("a")


@pytest.mark.parametrize(
    ("patterns", "directory", "expected"),
    [
        ("docs\n!docs/keep", "docs", True),
        ("docs\n!docs/keep", "other", False),
        ("*\n!*/keep", "anything", True),
        ("*\n!a/b/c", "a/x", False),
        ("*\n!a/b/c", "a/b", True),
        ("*\n!**/keep", "deep/er", True),
        ("*\n!a", "a/b/c", True),  # the exception names an ancestor
        ("docs", "docs", False),
    ],
)
def test_could_include_inside(patterns: str, directory: str, expected: bool) -> None:
    assert DockerIgnore.parse(patterns).could_include_inside(directory) is expected


def make_tree(root: Path, files: list[str]) -> None:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)


def test_walk_lists_included_entries_sorted(tmp_path: Path) -> None:
    make_tree(tmp_path, ["b.txt", "a/x.py", "a/x.pyc", "node_modules/m/i.js", "docs/keep.md", "docs/drop.md"])
    rules = DockerIgnore.parse("*.pyc\n**/*.pyc\nnode_modules\ndocs\n!docs/keep.md\n")
    assert list(walk_included(tmp_path, rules)) == ["a", "a/x.py", "b.txt", "docs/keep.md"]


def test_walk_skips_excluded_directories_without_reading_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path, ["src/a.py", "node_modules/x/y.js", "build/out/o.bin", "build/keep.txt"])
    scanned: list[str] = []
    real_scandir = os.scandir

    def spy(path: str | os.PathLike[str]) -> object:
        scanned.append(os.path.relpath(path, tmp_path))
        return real_scandir(path)

    monkeypatch.setattr(dockerignore.os, "scandir", spy)
    rules = DockerIgnore.parse("node_modules\nbuild\n!build/keep.txt\n")
    assert list(walk_included(tmp_path, rules)) == ["build/keep.txt", "src", "src/a.py"]
    assert "node_modules" not in scanned and "node_modules/x" not in scanned
    assert "build" in scanned and "build/out" not in scanned


def test_walk_from_a_subdirectory(tmp_path: Path) -> None:
    make_tree(tmp_path, ["app/a.py", "app/t/test_a.py", "other.txt"])
    assert list(walk_included(tmp_path, DockerIgnore.parse("app/t"), start="app")) == ["app/a.py"]


def test_walk_does_not_follow_directory_symlinks(tmp_path: Path) -> None:
    make_tree(tmp_path, ["real/f.txt"])
    (tmp_path / "link").symlink_to("real")
    assert list(walk_included(tmp_path, DockerIgnore())) == ["link", "real", "real/f.txt"]
