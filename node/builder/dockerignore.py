""".dockerignore: Docker's pattern rules (moby/patternmatcher) and a walker of the included files.

A pattern is cleaned like Go's filepath.Clean (``./a`` -> ``a``, ``a/`` -> ``a``), a leading ``/`` is
dropped, ``!`` makes it an exception, and the last pattern that matches a path decides. A pattern
excludes a path when it matches the path itself or one of its parent directories. ``*`` and ``?``
never cross ``/``; ``**`` matches any number of directories (zero included).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from node.errors import InvalidArgument

UTF8_BOM = "\ufeff"


class MatchType(Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEXP = "regexp"


def clean_path(path: str) -> str:
    """Go's path.Clean: lexical normalisation, "" -> ".", no trailing slash, one leading slash at most."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


class BadPattern(InvalidArgument):
    """A pattern Go's filepath.Match rejects (ErrBadPattern): an unclosed or empty class, a bare "-"."""


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise BadPattern(f"syntax error in pattern: {pattern!r}")
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise BadPattern(f"syntax error in pattern: {pattern!r}")
    return pattern[i], i + 1


def _translate_class(pattern: str, start: int) -> tuple[str, int]:
    """The Go character class opened at ``start`` as a regex, and the index just past its ``]``."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] == "^"
    i += negate
    parts: list[str] = []
    count = 0
    while not (i < len(pattern) and pattern[i] == "]" and count):
        lo, i = _class_char(pattern, i)
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        count += 1
        if lo <= hi:  # Go accepts a reversed range; it matches nothing
            parts.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
    body = "".join(parts)
    if negate:
        return (f"[^{body}]" if body else "."), i + 1
    return (f"[{body}]" if body else "(?!)"), i + 1


@dataclass(frozen=True, slots=True)
class Pattern:
    """One cleaned .dockerignore pattern."""

    text: str
    exclusion: bool
    match_type: MatchType
    regex: re.Pattern[str] | None
    dirs: tuple[str, ...]

    @classmethod
    def compile(cls, raw: str) -> Pattern:
        text = raw
        exclusion = text.startswith("!")
        if exclusion:
            text = text[1:]
            if not text:
                raise InvalidArgument('.dockerignore: illegal exclusion pattern: "!"')
        try:
            match_type, regex_text = _translate(text)
        except BadPattern as exc:
            raise BadPattern(f".dockerignore: {exc}") from None
        regex = re.compile(regex_text, re.DOTALL) if match_type is MatchType.REGEXP else None
        return cls(text, exclusion, match_type, regex, tuple(text.split("/")))

    def matches(self, path: str) -> bool:
        if self.match_type is MatchType.EXACT:
            return path == self.text
        if self.match_type is MatchType.PREFIX:
            return path.startswith(self.text[:-2])
        if self.match_type is MatchType.SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None


def _translate(pattern: str) -> tuple[MatchType, str]:
    """Port of patternmatcher's Pattern.compile: the match type and an anchored regex."""
    match_type = MatchType.EXACT
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        start = i
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i == n:
                    if match_type is MatchType.EXACT:
                        match_type = MatchType.PREFIX
                    else:
                        out.append(".*")
                        match_type = MatchType.REGEXP
                else:
                    out.append("(.*/)?")
                    match_type = MatchType.REGEXP
                if start == 0:
                    match_type = MatchType.SUFFIX
            else:
                out.append("[^/]*")
                match_type = MatchType.REGEXP
        elif ch == "?":
            out.append("[^/]")
            match_type = MatchType.REGEXP
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
                match_type = MatchType.REGEXP  # the pattern text is no longer the literal path
            else:
                out.append(re.escape("\\"))
        elif ch == "[":
            regex, i = _translate_class(pattern, start)
            out.append(regex)
            match_type = MatchType.REGEXP
        else:
            out.append(re.escape(ch))
    out.append("$")
    return match_type, "".join(out)


def match_component(pattern: str, name: str) -> bool:
    """Go filepath.Match for one path component (no "/" on either side). Raises BadPattern."""
    match_type, regex = _translate(pattern)
    if match_type is not MatchType.REGEXP:
        return pattern == name
    return re.match(regex, name, re.DOTALL) is not None


def read_patterns(text: str) -> list[str]:
    """Patterns of a .dockerignore text, as the Docker CLI's ignorefile.ReadAll returns them."""
    patterns: list[str] = []
    for number, line in enumerate(text.splitlines()):
        if number == 0:
            line = line.removeprefix(UTF8_BOM)
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = clean_path(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns


@dataclass(frozen=True, slots=True)
class DockerIgnore:
    """Compiled .dockerignore patterns; the last matching pattern wins."""

    patterns: tuple[Pattern, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        return cls.from_patterns(read_patterns(text))

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> DockerIgnore:
        compiled = []
        for raw in patterns:
            raw = raw.strip()
            if not raw:
                continue
            compiled.append(Pattern.compile(clean_path(raw)))
        return cls(tuple(compiled))

    @classmethod
    def load(cls, context_dir: Path) -> DockerIgnore:
        """The context's .dockerignore, or no patterns when it has none."""
        path = Path(context_dir) / ".dockerignore"
        if not path.is_file():
            return cls()
        return cls.parse(path.read_text(encoding="utf-8"))

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def keeping(self, *paths: str) -> DockerIgnore:
        """Add ``!path`` for each excluded path, as the Docker CLI does for the Dockerfile and .dockerignore."""
        extra = [Pattern.compile("!" + clean_path(p).lstrip("/")) for p in paths if self.is_excluded(p)]
        return DockerIgnore(self.patterns + tuple(extra))

    def is_excluded(self, relpath: str) -> bool:
        """Whether a path relative to the context (with "/" separators) is left out of the context."""
        path = clean_path(relpath).lstrip("/")
        parent = posixpath.dirname(path) or "."
        parent_dirs = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.matches(path)
            if not hit and parent != ".":
                hit = any(pattern.matches("/".join(parent_dirs[: i + 1])) for i in range(len(parent_dirs)))
            if hit:
                matched = not pattern.exclusion
        return matched

    def could_include_inside(self, dir_relpath: str) -> bool:
        """Whether an exception pattern might re-include something below an excluded directory."""
        parts = clean_path(dir_relpath).split("/")
        return any(_could_match_below(p.dirs, parts) for p in self.patterns if p.exclusion)


def _could_match_below(pattern_dirs: Sequence[str], dir_parts: Sequence[str]) -> bool:
    for depth, name in enumerate(dir_parts):
        if depth >= len(pattern_dirs):
            return True  # the pattern names an ancestor of the directory: everything below is back in
        component = pattern_dirs[depth]
        if "**" in component:
            return True
        if not match_component(component, name):
            return False
    return True


def walk_included(root: Path, ignore: DockerIgnore, *, start: str = "") -> Iterator[str]:
    """Relative paths (sorted, "/"-separated) of the directories, files and links under ``root`` that the
    context includes. Excluded directories are skipped whole unless an exception could match inside; an
    excluded directory that is descended into is not itself listed."""
    base = Path(root)
    top = base / start if start else base
    yield from _walk_dir(top, start, ignore)


def _walk_dir(directory: Path, prefix: str, ignore: DockerIgnore) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        rel = f"{prefix}/{entry.name}" if prefix else entry.name
        excluded = ignore.is_excluded(rel)
        is_dir = entry.is_dir(follow_symlinks=False)
        if not excluded:
            yield rel
        if is_dir and (not excluded or ignore.could_include_inside(rel)):
            yield from _walk_dir(Path(entry.path), rel, ignore)
