"""Dockerfile parsing and variable substitution, as Docker's (BuildKit's) Dockerfile frontend does them.

``parse_dockerfile`` reads the text into stages of instructions (syntax only, plus the FROM lines, which
are expanded with the global ARGs); ``resolve_stage`` then walks one stage with the ARG/ENV scope rules
and returns each step with its arguments substituted, which is what the executor and the cache key use.
Substitution needs the base image's ENV, which only the executor knows, so it is passed in.
"""

from __future__ import annotations

import csv
import json
import platform as platform_module
import posixpath
import re
import signal as signal_module
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from node.errors import InvalidArgument

UTF8_BOM = "\ufeff"

PROXY_ARGS = frozenset(
    {
        "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
    }
)  # fmt: skip

KEYWORDS = frozenset(
    {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
        "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    }
)  # fmt: skip

HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
JSON_KEYWORDS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
SINGLE_WORD_KEYWORDS = frozenset({"WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"})
RESERVED_STAGE_NAMES = frozenset({"scratch", "context"})

_STR, _BOOL, _SLICE = "string", "bool", "slice"
FLAG_KINDS: Mapping[str, Mapping[str, str]] = {
    "FROM": {"platform": _STR},
    "RUN": {"mount": _SLICE, "network": _STR, "security": _STR},
    "COPY": {"from": _STR, "chown": _STR, "chmod": _STR, "link": _BOOL, "parents": _BOOL, "exclude": _SLICE},
    "ADD": {
        "chown": _STR, "chmod": _STR, "link": _BOOL, "keep-git-dir": _BOOL, "checksum": _STR,
        "exclude": _SLICE,
    },
    "HEALTHCHECK": {
        "interval": _STR, "timeout": _STR, "start-period": _STR, "start-interval": _STR, "retries": _STR,
    },
}  # fmt: skip
EXPANDED_FLAGS = frozenset({"from", "chown", "chmod", "mount", "platform", "exclude", "checksum"})

_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)([^<]+)$")
_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_URL_RE = re.compile(r"^(https?://|git@|git://)", re.IGNORECASE)
_PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")
_CHMOD_RE = re.compile(r"^([0-7]{3,4}|([ugoa]*[-+=][rwxXst]*)(,[ugoa]*[-+=][rwxXst]*)*)$")
_RT_SIGNAL_RE = re.compile(r"^RTM(IN|AX)([+-]\d+)?$")
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# ---------------------------------------------------------------------------------------------- errors


class BuildError(InvalidArgument):
    """Root of the builder's own errors: the build input (Dockerfile, context, arguments) is wrong."""


class DockerfileError(BuildError):
    """A Dockerfile error, located: ``Dockerfile:7: unknown instruction: RUNN``."""

    def __init__(self, message: str, *, filename: str = "Dockerfile", lineno: int | None = None) -> None:
        self.filename = filename
        self.lineno = lineno
        self.reason = message
        where = f"{filename}:{lineno}" if lineno is not None else filename
        super().__init__(f"{where}: {message}")


class _LexError(ValueError):
    """A substitution syntax error; turned into a located DockerfileError by the caller."""


# ----------------------------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Flag:
    """One instruction flag: ``--from=builder`` is Flag("from", "builder"); ``--link`` is Flag("link", "true")."""

    name: str
    value: str

    def __str__(self) -> str:
        return f"--{self.name}={self.value}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heredoc:
    """A here-document: ``<<EOF``. ``content`` ends with a newline and, for ``<<-``, has its leading tabs
    stripped. ``expand`` is False when the delimiter was quoted (no substitution in the content)."""

    name: str
    content: str
    expand: bool = True
    strip_tabs: bool = False
    file_descriptor: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction:
    """One instruction as written. ``args`` by keyword:

    - RUN, CMD, ENTRYPOINT, SHELL: the JSON items (``json_form``) or a single shell command string
    - COPY, ADD: sources then destination (heredoc sources appear as ``<<EOF``)
    - ENV, LABEL: flattened name/value pairs, quotes kept (see ``pairs()``); ARG: ``name`` or ``name=default``
    - WORKDIR, USER, STOPSIGNAL, MAINTAINER: the rest of the line; EXPOSE, VOLUME: words
    - HEALTHCHECK: ``("NONE",)`` or ``("CMD", *command)``; ONBUILD: the trigger text (parsed in ``trigger``)
    - FROM: ``(image,)`` or ``(image, "AS", name)``
    """

    keyword: str
    args: tuple[str, ...]
    flags: tuple[Flag, ...] = ()
    original_line_text: str
    lineno: int
    end_lineno: int
    heredocs: tuple[Heredoc, ...] = ()
    json_form: bool = False
    trigger: Instruction | None = None

    def flag(self, name: str) -> str | None:
        return _last_flag(self.flags, name)

    def flag_values(self, name: str) -> tuple[str, ...]:
        return tuple(f.value for f in self.flags if f.name == name)

    def pairs(self) -> list[tuple[str, str]]:
        """ENV/LABEL name/value pairs (raw, before substitution)."""
        return list(zip(self.args[::2], self.args[1::2], strict=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """A build stage: a FROM line and the instructions up to the next FROM."""

    index: int
    name: str | None
    base: str
    base_is_stage: bool
    base_stage_index: int | None
    platform: str | None
    instructions: tuple[Instruction, ...]
    from_instruction: Instruction

    @property
    def display_name(self) -> str:
        return self.name if self.name is not None else f"stage-{self.index}"

    @property
    def is_scratch(self) -> bool:
        return self.base == "scratch"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dockerfile:
    filename: str
    directives: Mapping[str, str]
    escape: str
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform_args: Mapping[str, str] = field(default_factory=dict)

    def find_stage(self, name: str) -> Stage | None:
        lowered = name.lower()
        return next((s for s in self.stages if s.name == lowered), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    """A ``RUN --mount=...`` option."""

    type: str
    target: str
    source: str | None = None
    from_ref: str | None = None
    id: str | None = None
    sharing: str = "shared"
    readonly: bool = False
    required: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    env: str | None = None
    size: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Healthcheck:
    """HEALTHCHECK in image-config form: test is ["NONE"], ["CMD", ...] or ["CMD-SHELL", cmd]; seconds."""

    test: tuple[str, ...]
    interval: float | None = None
    timeout: float | None = None
    start_period: float | None = None
    start_interval: float | None = None
    retries: int | None = None


def _last_flag(flags: Iterable[Flag], name: str) -> str | None:
    value = None
    for f in flags:
        if f.name == name:
            value = f.value
    return value


# ------------------------------------------------------------------------------ variable substitution

Lookup = Callable[[str], str | None]


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch


class _Words:
    """Word splitting of a processed string: expansions split on whitespace, quoted text does not."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word, self.in_word = "", False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def finish(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word, self.in_word = "", False
        return self.words


class ShellLex:
    """Docker's shell-like word processing: quotes, the escape character and ``$VAR``, ``${VAR}``,
    ``${VAR:-word}``, ``${VAR-word}``, ``${VAR:+word}``, ``${VAR+word}``, ``${VAR:?msg}``, ``${VAR?msg}``.
    Unset variables expand to "". With ``heredoc=True`` quotes are ordinary characters (shell heredoc rules).
    """

    def __init__(self, escape: str = "\\", *, heredoc: bool = False) -> None:
        self.escape = escape
        self.heredoc = heredoc

    def expand_word(self, word: str, lookup: Lookup) -> str:
        """One word, quotes removed, no splitting (ENV values, WORKDIR, COPY sources...)."""
        return _Expansion(self, word, lookup).run()[0]

    def expand_words(self, text: str, lookup: Lookup) -> list[str]:
        """Split into words like a shell would after expansion."""
        return _Expansion(self, text, lookup).run()[1]


class _Expansion:
    def __init__(self, lex: ShellLex, text: str, lookup: Lookup) -> None:
        self.lex = lex
        self.scan = _Scanner(text)
        self.lookup = lookup

    def run(self) -> tuple[str, list[str]]:
        return self.process(stop="")

    def process(self, *, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.scan.peek():
            ch = self.scan.peek()
            if stop and ch == stop:
                self.scan.next()
                return "".join(result), words.finish()
            if ch == "$":
                value = self.dollar()
                result.append(value)
                words.add_string(value)
            elif ch in "'\"" and not self.lex.heredoc:
                value = self.single_quote() if ch == "'" else self.double_quote()
                result.append(value)
                words.add_raw(value)
            else:
                self.plain_char(result, words)
        if stop:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish()

    def plain_char(self, result: list[str], words: _Words) -> None:
        ch = self.scan.next()
        if ch == self.lex.escape:
            if self.lex.heredoc and self.scan.peek() not in ("$", self.lex.escape):
                result.append(ch)
                words.add_raw(ch)
                return
            ch = self.scan.next()
            if not ch:
                return
            words.add_raw(ch)
        else:
            words.add_char(ch)
        result.append(ch)

    def single_quote(self) -> str:
        self.scan.next()
        out: list[str] = []
        while True:
            ch = self.scan.next()
            if not ch:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.scan.next()
        out: list[str] = []
        while True:
            ch = self.scan.peek()
            if not ch:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.scan.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.scan.next()
            if ch == self.lex.escape:
                nxt = self.scan.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.lex.escape):
                    ch = self.scan.next()
            out.append(ch)

    def name(self) -> str:
        out = []
        if self.scan.peek().isdigit():
            while self.scan.peek().isdigit():
                out.append(self.scan.next())
            return "".join(out)
        while (ch := self.scan.peek()) and (ch.isalnum() or ch == "_"):
            out.append(self.scan.next())
        return "".join(out)

    def dollar(self) -> str:
        self.scan.next()
        if self.scan.peek() != "{":
            name = self.name()
            return (self.lookup(name) or "") if name else "$"
        self.scan.next()
        if not self.scan.peek():
            raise _LexError("syntax error: missing '}'")
        if self.scan.peek() in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self.name()
        op = self.scan.next()
        if not op:
            raise _LexError("syntax error: missing '}'")
        if op == "}":
            return self.lookup(name) or ""
        if op == ":":
            op += self.scan.next()
        if op not in (":-", ":+", ":?", "-", "+", "?"):
            raise _LexError(f"unsupported modifier ({op}) in substitution")
        word, _ = self.process(stop="}")
        return _apply_modifier(name, op, word, self.lookup(name))


def _apply_modifier(name: str, op: str, word: str, value: str | None) -> str:
    present = bool(value) if op.startswith(":") else value is not None
    if op.endswith("-"):
        return (value or "") if present else word
    if op.endswith("+"):
        return word if present else ""
    if not present:
        raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
    return value or ""


# -------------------------------------------------------------------------------------- line reading


@dataclass(frozen=True, slots=True)
class _LogicalLine:
    text: str
    lineno: int
    end_lineno: int
    original: str


class _LineReader:
    def __init__(self, lines: list[str], start: int) -> None:
        self.lines = lines
        self.pos = start

    def has_more(self) -> bool:
        return self.pos < len(self.lines)

    def next(self) -> str:
        line = self.lines[self.pos]
        self.pos += 1
        return line


def _parse_directives(lines: list[str], filename: str) -> tuple[dict[str, str], int]:
    """Parser directives at the very top; returns them and the index of the first line after them."""
    directives: dict[str, str] = {}
    index = 0
    for index, line in enumerate(lines):  # noqa: B007
        match = _DIRECTIVE_RE.match(line)
        if not match:
            return directives, index
        key, value = match.group(1).lower(), match.group(2)
        if key in ("escape", "syntax", "check"):
            if key in directives:
                raise DockerfileError(f"only one {key} parser directive can be used", filename=filename,
                                      lineno=index + 1)  # fmt: skip
            if key == "escape" and value not in ("\\", "`"):
                raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\",
                                      filename=filename, lineno=index + 1)  # fmt: skip
            directives[key] = value
    return directives, len(lines)


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        return stripped[: -len(escape)], True
    return line, False


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _next_logical_line(reader: _LineReader, escape: str) -> _LogicalLine | None:
    while reader.has_more():
        lineno = reader.pos + 1
        raw = reader.next()
        first = raw.lstrip()
        if not first or first.startswith("#"):
            continue
        text, continued = _trim_continuation(first, escape)
        originals = [raw]
        while continued and reader.has_more():
            raw = reader.next()
            originals.append(raw)
            if _is_comment(raw) or not raw.strip():
                continue  # comment and empty lines inside a continuation are dropped, as Docker does
            part, continued = _trim_continuation(raw, escape)
            text += part
        if not text.strip():
            continue  # only escape characters and blanks: an empty line
        return _LogicalLine(text.strip(), lineno, lineno + len(originals) - 1, "\n".join(originals))
    return None


# ------------------------------------------------------------------------------------- word splitting


def parse_words(rest: str, escape: str) -> list[str]:
    """Docker's parseWords: split on whitespace outside quotes; quotes and escapes are kept in the words."""
    words: list[str] = []
    word = ""
    quote = ""
    blank_ok = False
    in_word = False
    i = 0
    while i < len(rest):
        ch = rest[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == len(rest):
                    i += 1
                    continue
                word += ch
                i += 1
                ch = rest[i]
            word += ch
        elif ch.isspace():
            if in_word and (blank_ok or word):
                words.append(word)
            word, blank_ok, in_word = "", False, False
        else:
            in_word = True
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == escape:
                if i + 1 == len(rest):
                    i += 1
                    continue
                word += ch
                i += 1
                ch = rest[i]
            word += ch
        i += 1
    if in_word and (blank_ok or word):
        words.append(word)
    return words


def _extract_flag_words(rest: str) -> tuple[list[str], str]:
    """Leading ``--flag[=value]`` words (quotes removed, ``\\`` escapes) and the rest of the line."""
    words: list[str] = []
    i = 0
    n = len(rest)
    while True:
        while i < n and rest[i].isspace():
            i += 1
        if not rest.startswith("--", i):
            return words, rest[i:]
        word, i = _read_flag_word(rest, i)
        if word == "--":
            return words, rest[i:].lstrip()
        words.append(word)


def _read_flag_word(rest: str, i: int) -> tuple[str, int]:
    out = []
    quote = ""
    while i < len(rest):
        ch = rest[i]
        if not quote and ch.isspace():
            break
        if not quote and ch in "'\"":
            quote = ch
        elif quote and ch == quote:
            quote = ""
        elif ch == "\\" and i + 1 < len(rest):
            i += 1
            out.append(rest[i])
        elif ch != "\\":
            out.append(ch)
        i += 1
    return "".join(out), i


def _parse_flags(keyword: str, words: list[str], err: Callable[[str], DockerfileError]) -> tuple[Flag, ...]:
    allowed = FLAG_KINDS.get(keyword, {})
    flags: list[Flag] = []
    seen: set[str] = set()
    for word in words:
        name, has_value, value = word[2:].partition("=")
        kind = allowed.get(name)
        if kind is None:
            raise err(f"Unknown flag: {name}")
        if kind == _BOOL:
            value = (value or "true").lower() if has_value else "true"
            if value not in ("true", "false"):
                raise err(f"expecting boolean value for flag {name}, not: {value}")
        elif not has_value:
            raise err(f"Missing a value on flag: --{name}")
        if kind != _SLICE and name in seen:
            raise err(f"Duplicate flag specified: {name}")
        seen.add(name)
        flags.append(Flag(name, value))
    return tuple(flags)


def _parse_json_list(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


# ------------------------------------------------------------------------------------------ heredocs


def _heredoc_markers(rest: str) -> list[tuple[str, bool, bool, int]]:
    """(name, expand, strip_tabs, fd) of each ``<<NAME`` word of an instruction line."""
    markers = []
    for word in parse_words(rest, "\\"):
        match = _HEREDOC_RE.match(word)
        if not match:
            continue
        raw_name = match.group(3)
        try:
            name = ShellLex().expand_word(raw_name, lambda _: None)
        except _LexError:
            continue  # not a usable delimiter: not a heredoc
        if not name:
            continue
        expand = not any(q in raw_name for q in "'\"")
        markers.append((name, expand, match.group(2) == "-", int(match.group(1) or 0)))
    return markers


def _read_heredocs(rest: str, reader: _LineReader, err: Callable[[str], DockerfileError]) -> list[Heredoc]:
    heredocs = []
    for name, expand, strip_tabs, fd in _heredoc_markers(rest):
        body: list[str] = []
        while True:
            if not reader.has_more():
                raise err(f"unterminated heredoc {name}")
            line = reader.next()
            candidate = line.lstrip("\t") if strip_tabs else line
            if candidate == name:
                break
            body.append(candidate)
        content = "".join(f"{line}\n" for line in body)
        heredocs.append(Heredoc(name=name, content=content, expand=expand, strip_tabs=strip_tabs,
                                file_descriptor=fd))  # fmt: skip
    return heredocs


# ------------------------------------------------------------------------------ instruction building


@dataclass(frozen=True, slots=True)
class _Ctx:
    filename: str
    escape: str

    def error(self, lineno: int) -> Callable[[str], DockerfileError]:
        return lambda message: DockerfileError(message, filename=self.filename, lineno=lineno)


def _build_instruction(line: _LogicalLine, reader: _LineReader | None, ctx: _Ctx) -> Instruction:
    err = ctx.error(line.lineno)
    keyword_text, rest = _split_keyword(line.text)
    keyword = keyword_text.upper()
    if keyword not in KEYWORDS:
        raise err(f"unknown instruction: {keyword_text}")
    flag_words, rest = _extract_flag_words(rest)
    flags = _parse_flags(keyword, flag_words, err)
    heredocs: list[Heredoc] = []
    if keyword in HEREDOC_KEYWORDS and reader is not None and not rest.startswith("["):
        heredocs = _read_heredocs(rest, reader, err)
    args, json_form, trigger = _shape_args(keyword, rest, line, ctx)
    end = reader.pos if heredocs and reader is not None else line.end_lineno
    instruction = Instruction(keyword=keyword, args=tuple(args), flags=flags, original_line_text=line.original,
                              lineno=line.lineno, end_lineno=end, heredocs=tuple(heredocs),
                              json_form=json_form, trigger=trigger)  # fmt: skip
    _validate(instruction, err)
    return instruction


def _split_keyword(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    return parts[0], (parts[1] if len(parts) > 1 else "")


def _shape_args(keyword: str, rest: str, line: _LogicalLine, ctx: _Ctx) -> tuple[list[str], bool, Instruction | None]:
    err = ctx.error(line.lineno)
    if not rest:
        raise err(f"{keyword} requires an argument")
    if keyword == "ONBUILD":
        return [rest], False, _build_trigger(rest, line, ctx)
    if keyword in JSON_KEYWORDS:
        items = _parse_json_list(rest)
        if items is not None:
            return items, True, None
        if keyword == "SHELL":
            raise err("SHELL requires the arguments to be in JSON form")
        if keyword in ("COPY", "ADD", "VOLUME"):
            return rest.split(), False, None
        return [rest], False, None
    if keyword in ("ENV", "LABEL"):
        return _name_value_pairs(keyword, rest, ctx.escape, err), False, None
    if keyword == "HEALTHCHECK":
        return _healthcheck_args(rest, err)
    if keyword in SINGLE_WORD_KEYWORDS:
        return [rest], False, None
    if keyword in ("ARG", "EXPOSE"):
        return parse_words(rest, ctx.escape), False, None
    return rest.split(), False, None  # FROM


def _build_trigger(rest: str, line: _LogicalLine, ctx: _Ctx) -> Instruction:
    err = ctx.error(line.lineno)
    inner = _split_keyword(rest)[0].upper()
    if inner == "ONBUILD":
        raise err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if inner in ("FROM", "MAINTAINER"):
        raise err(f"{inner} isn't allowed as an ONBUILD trigger")
    return _build_instruction(_LogicalLine(rest, line.lineno, line.end_lineno, rest), None, ctx)


def _name_value_pairs(keyword: str, rest: str, escape: str, err: Callable[[str], DockerfileError]) -> list[str]:
    words = parse_words(rest, escape)
    if "=" not in words[0]:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise err(f"{keyword} must have two arguments")
        return [parts[0], parts[1]]
    out = []
    for word in words:
        name, eq, value = word.partition("=")
        if not eq:
            raise err(f"syntax error - can't find = in {word!r}. Must be of the form: name=value")
        if not name:
            raise err(f"{keyword} names can not be blank")
        out += [name, value]
    return out


def _healthcheck_args(rest: str, err: Callable[[str], DockerfileError]) -> tuple[list[str], bool, None]:
    kind, command = _split_keyword(rest)
    kind = kind.upper()
    if kind == "NONE":
        if command:
            raise err("HEALTHCHECK NONE takes no arguments")
        return ["NONE"], False, None
    if kind != "CMD":
        raise err(f"unknown type {kind!r} in HEALTHCHECK (try CMD)")
    if not command:
        raise err("missing command after HEALTHCHECK CMD")
    items = _parse_json_list(command)
    if items is not None:
        return ["CMD", *items], True, None
    return ["CMD", command], False, None


def _validate(instruction: Instruction, err: Callable[[str], DockerfileError]) -> None:
    keyword = instruction.keyword
    if keyword in ("COPY", "ADD"):
        _validate_copy(instruction, err)
    elif keyword == "HEALTHCHECK":
        parse_healthcheck(instruction, err=err)
    elif keyword == "RUN":
        network = instruction.flag("network")
        if network is not None and network not in ("default", "none", "host"):
            raise err(f"unsupported network mode: {network}")
    elif keyword == "ARG":
        for word in instruction.args:
            if not word.partition("=")[0]:
                raise err("ARG names can not be blank")
    elif keyword == "FROM" and len(instruction.args) not in (1, 3):
        raise err("FROM requires either one or three arguments")


def _validate_copy(instruction: Instruction, err: Callable[[str], DockerfileError]) -> None:
    keyword = instruction.keyword
    if len(instruction.args) < 2:
        raise err(f"{keyword} requires at least two arguments, but only one was provided. "
                  "Destination could not be determined.")  # fmt: skip
    chmod = instruction.flag("chmod")
    if chmod is not None and "$" not in chmod and not _CHMOD_RE.match(chmod):
        raise err(f"invalid chmod parameter: {chmod}")
    if keyword == "ADD":
        _refuse_urls(instruction.args[:-1], err)


def _refuse_urls(sources: Iterable[str], err: Callable[[str], DockerfileError]) -> None:
    for source in sources:
        if _URL_RE.match(source):
            raise err("ADD from a URL is not supported: no network fetch is done here")


# ------------------------------------------------------------------------------------ typed options


def parse_duration(text: str) -> float:
    """A Go duration ("30s", "1m30s", "1.5h", "0") in seconds."""
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos = 0
    total = 0.0
    for match in _DURATION_RE.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * total


def parse_healthcheck(instruction: Instruction, *, err: Callable[[str], DockerfileError] | None = None) -> Healthcheck:
    error = err or (lambda message: DockerfileError(message, lineno=instruction.lineno))
    args = instruction.args
    if args == ("NONE",):
        return Healthcheck(test=("NONE",))
    test = ("CMD", *args[1:]) if instruction.json_form else ("CMD-SHELL", args[1])
    options = {name: _health_duration(instruction, name, error) for name in
               ("interval", "timeout", "start-period", "start-interval")}  # fmt: skip
    return Healthcheck(test=test, interval=options["interval"], timeout=options["timeout"],
                       start_period=options["start-period"], start_interval=options["start-interval"],
                       retries=_health_retries(instruction, error))  # fmt: skip


def _health_duration(instruction: Instruction, name: str, err: Callable[[str], DockerfileError]) -> float | None:
    text = instruction.flag(name)
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise err(f"--{name}: {exc}") from None
    if seconds < 0:
        raise err(f"--{name} cannot be negative")
    if 0 < seconds < 0.001:
        raise err(f"--{name} cannot be less than 1ms")
    return seconds


def _health_retries(instruction: Instruction, err: Callable[[str], DockerfileError]) -> int | None:
    text = instruction.flag("retries")
    if text is None:
        return None
    try:
        retries = int(text)
    except ValueError:
        raise err(f"--retries must be an integer, not {text!r}") from None
    if retries < 0:
        raise err("--retries cannot be negative")
    return retries


_MOUNT_KEYS = {
    "type": "type", "target": "target", "dst": "target", "destination": "target", "source": "source",
    "src": "source", "from": "from_ref", "id": "id", "sharing": "sharing", "mode": "mode", "uid": "uid",
    "gid": "gid", "required": "required", "readonly": "readonly", "ro": "readonly", "rw": "rw",
    "readwrite": "rw", "env": "env", "size": "size",
}  # fmt: skip
_MOUNT_TYPES = frozenset({"bind", "cache", "tmpfs", "secret", "ssh"})


def parse_mount(value: str) -> Mount:
    """A ``--mount`` value (CSV of key=value) as BuildKit reads it. Raises ValueError with the reason."""
    fields: dict[str, str] = {}
    for item in next(csv.reader([value])):
        key, eq, val = item.partition("=")
        key = key.strip().lower()
        attr = _MOUNT_KEYS.get(key)
        if attr is None:
            raise ValueError(f"unexpected key '{key}' in '{item}'")
        if not eq:
            if attr not in ("readonly", "rw", "required"):
                raise ValueError(f"invalid field '{item}' must be a key=value pair")
            val = "true"
        fields[attr] = val
    return _mount_from_fields(fields)


def _mount_from_fields(fields: dict[str, str]) -> Mount:
    kind = fields.pop("type", "bind").lower()
    if kind not in _MOUNT_TYPES:
        raise ValueError(f"unsupported mount type {kind!r}")
    readonly = _parse_bool(fields.pop("readonly", "true" if kind == "bind" else "false"), "readonly")
    if "rw" in fields:
        readonly = not _parse_bool(fields.pop("rw"), "rw")
    target = fields.pop("target", "")
    ident = fields.pop("id", None)
    if kind in ("secret", "ssh"):
        ident = ident or (posixpath.basename(target) if target else ("default" if kind == "ssh" else None))
        if ident is None and "env" not in fields:
            raise ValueError("secret mount requires an id or a target")
        if not target and "env" not in fields:
            target = f"/run/secrets/{ident}" if kind == "secret" else "/run/buildkit/ssh_agent.0"
    elif not target:
        raise ValueError(f"mount type {kind} requires a target")
    sharing = fields.pop("sharing", "shared").lower()
    if sharing not in ("shared", "private", "locked"):
        raise ValueError(f"unsupported sharing value {sharing!r}")
    return Mount(type=kind, target=target, id=ident, sharing=sharing, readonly=readonly,
                 required=_parse_bool(fields.pop("required", "false"), "required"),
                 mode=_parse_int(fields.pop("mode", None), 8, "mode"),
                 uid=_parse_int(fields.pop("uid", None), 10, "uid"),
                 gid=_parse_int(fields.pop("gid", None), 10, "gid"), **fields)  # fmt: skip


def _parse_bool(text: str, name: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"invalid value for {name}: {text!r}")


def _parse_int(text: str | None, base: int, name: str) -> int | None:
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        raise ValueError(f"invalid value for {name}: {text!r}") from None


# ------------------------------------------------------------------------------------------- parsing


_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm/v7",
           "armv6l": "arm/v6", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64"}  # fmt: skip


def host_platform() -> str:
    """This host's platform in OCI form: ``linux/amd64``, ``linux/arm/v7``..."""
    machine = platform_module.machine().lower()
    return f"linux/{_ARCHES.get(machine, machine)}"


def platform_args(target: str, build: str) -> dict[str, str]:
    """BuildKit's automatic platform ARGs: global, usable in FROM lines, and in a stage after ``ARG NAME``."""
    args: dict[str, str] = {}
    for prefix, value in (("TARGET", target), ("BUILD", build)):
        os_name, _, rest = value.partition("/")
        arch, _, variant = rest.partition("/")
        args |= {f"{prefix}PLATFORM": value, f"{prefix}OS": os_name, f"{prefix}ARCH": arch,
                 f"{prefix}VARIANT": variant}  # fmt: skip
    return args


def parse_dockerfile(text: str, *, filename: str = "Dockerfile", build_args: Mapping[str, str] | None = None,
                     platform: str | None = None) -> Dockerfile:  # fmt: skip
    """Parse a Dockerfile. FROM lines are expanded with the global ARGs (defaults or ``build_args``) and
    the automatic platform ARGs (``platform`` is the target platform; the host's by default)."""
    lines = text.splitlines()
    if lines:
        lines[0] = lines[0].removeprefix(UTF8_BOM)
    directives, start = _parse_directives(lines, filename)
    escape = directives.get("escape", "\\")
    ctx = _Ctx(filename, escape)
    instructions = list(_read_instructions(lines, start, ctx))
    if not instructions:
        raise DockerfileError("file with no instructions", filename=filename)
    args = dict(build_args or {})
    automatic = platform_args(platform or host_platform(), host_platform())
    global_args, stages = _assemble_stages(instructions, ctx, args, automatic)
    return Dockerfile(filename=filename, directives=directives, escape=escape, global_args=global_args,
                      stages=stages, build_args=args, platform_args=automatic)  # fmt: skip


def parse_triggers(triggers: Sequence[str], *, filename: str = "ONBUILD") -> list[Instruction]:
    """A base image's ONBUILD triggers (image config ``OnBuild``: one instruction per string); errors are
    located as ``ONBUILD:<n>``, n counting the triggers from 1."""
    ctx = _Ctx(filename, "\\")
    instructions = []
    for number, text in enumerate(triggers, start=1):
        line = _LogicalLine(text.strip(), number, number, text)
        if not line.text:
            raise ctx.error(number)("empty ONBUILD trigger")
        instructions.append(_build_trigger(line.text, line, ctx))
    return instructions


def _read_instructions(lines: list[str], start: int, ctx: _Ctx) -> Iterator[Instruction]:
    reader = _LineReader(lines, start)
    while (line := _next_logical_line(reader, ctx.escape)) is not None:
        yield _build_instruction(line, reader, ctx)


def _assemble_stages(instructions: list[Instruction], ctx: _Ctx, build_args: Mapping[str, str],
                     automatic: Mapping[str, str]) -> tuple[tuple[Instruction, ...], tuple[Stage, ...]]:  # fmt: skip
    global_args: list[Instruction] = []
    groups: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            groups.append([instruction])
        elif groups:
            groups[-1].append(instruction)
        elif instruction.keyword == "ARG":
            global_args.append(instruction)
        else:
            raise ctx.error(instruction.lineno)(
                f"{instruction.keyword} before the first FROM: no build stage in current context")
    if not groups:
        raise DockerfileError("no FROM instruction: a Dockerfile must have at least one stage",
                              filename=ctx.filename)  # fmt: skip
    scope = _global_scope(global_args, build_args, ctx, automatic)
    stages: list[Stage] = []
    for group in groups:
        stages.append(_make_stage(len(stages), group, stages, scope, ctx))
    return tuple(global_args), tuple(stages)


def _global_scope(global_args: list[Instruction], build_args: Mapping[str, str], ctx: _Ctx,
                  automatic: Mapping[str, str]) -> _Scope:  # fmt: skip
    scope = _Scope(build_args=build_args, globals_={}, env={}, implicit=automatic, platform_args=automatic)
    for instruction in global_args:
        scope.declare_args(instruction, ShellLex(ctx.escape), ctx.error(instruction.lineno))
    return scope


def _make_stage(index: int, group: list[Instruction], earlier: list[Stage], scope: _Scope, ctx: _Ctx) -> Stage:
    from_ = group[0]
    err = ctx.error(from_.lineno)
    base = scope.expand(from_.args[0], ShellLex(ctx.escape), err)
    if not base:
        raise err(f"base name ({from_.args[0]}) should not be blank")
    name = _stage_name(from_, err, earlier)
    platform = from_.flag("platform")
    if platform is not None:
        platform = scope.expand(platform, ShellLex(ctx.escape), err)
    # As in Docker, only earlier stages count: ``FROM node AS node`` or a later stage's name is an image.
    base_stage = next((s for s in earlier if s.name == base.lower()), None)
    return Stage(index=index, name=name, base=base, base_is_stage=base_stage is not None,
                 base_stage_index=base_stage.index if base_stage else None, platform=platform or None,
                 instructions=tuple(group[1:]), from_instruction=from_)  # fmt: skip


def _stage_name(from_: Instruction, err: Callable[[str], DockerfileError], earlier: list[Stage]) -> str | None:
    if len(from_.args) == 1:
        return None
    if from_.args[1].upper() != "AS":
        raise err("FROM requires either one or three arguments")
    name = from_.args[2].lower()
    if not _STAGE_NAME_RE.match(name):
        raise err(f"invalid name for build stage: {from_.args[2]!r}, "
                  "name can't start with a number or contain symbols")  # fmt: skip
    if name in RESERVED_STAGE_NAMES:
        raise err(f"{name!r} is reserved and cannot be used as a stage name")
    if any(s.name == name for s in earlier):
        raise err(f"duplicate stage name {name!r}")
    return name


# ------------------------------------------------------------------------------------------- scopes


@dataclass(slots=True)
class _Scope:
    """ARG and ENV visible at one point of a stage. ENV wins over ARG of the same name."""

    build_args: Mapping[str, str]
    globals_: Mapping[str, str | None]
    env: dict[str, str]
    args: dict[str, str | None] = field(default_factory=dict)
    implicit: Mapping[str, str] = field(default_factory=dict)  # visible without ARG (global scope only)
    platform_args: Mapping[str, str] = field(default_factory=dict)  # values of redeclared automatic ARGs

    def lookup(self, name: str) -> str | None:
        if name in self.env:
            return self.env[name]
        if name in self.args:
            return self.args[name]
        if name in PROXY_ARGS and name in self.build_args:
            return self.build_args[name]
        return self.implicit.get(name)

    def expand(self, word: str, lex: ShellLex, err: Callable[[str], DockerfileError]) -> str:
        try:
            return lex.expand_word(word, self.lookup)
        except _LexError as exc:
            raise err(str(exc)) from None

    def declare_args(self, instruction: Instruction, lex: ShellLex, err: Callable[[str], DockerfileError]) -> None:
        resolved: list[tuple[str, str | None]] = []
        for word in instruction.args:
            name, eq, default = word.partition("=")
            resolved.append((self.expand(name, lex, err), self.expand(default, lex, err) if eq else None))
        for name, value in resolved:
            self.args[name] = self.arg_value(name, value)

    def arg_value(self, name: str, default: str | None) -> str | None:
        if name in self.build_args:
            return self.build_args[name]
        if default is not None:
            return default
        if self.globals_.get(name) is not None:
            return self.globals_[name]
        return self.platform_args.get(name)

    def visible_args(self) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in self.args.items() if v is not None)

    def proxy_args(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, v) for k, v in self.build_args.items() if k in PROXY_ARGS and k not in self.args))


def global_arg_values(dockerfile: Dockerfile) -> dict[str, str | None]:
    """The global ARGs (declared before the first FROM) with their values for this build."""
    ctx = _Ctx(dockerfile.filename, dockerfile.escape)
    scope = _global_scope(list(dockerfile.global_args), dockerfile.build_args, ctx, dockerfile.platform_args)
    return dict(scope.args)


def unused_build_args(dockerfile: Dockerfile) -> list[str]:
    """Build args no ARG declares (Docker warns: "One or more build-args [...] were not consumed")."""
    declared = {w.partition("=")[0] for i in dockerfile.global_args for w in i.args}
    for stage in dockerfile.stages:
        declared |= {w.partition("=")[0] for i in stage.instructions if i.keyword == "ARG" for w in i.args}
    return sorted(k for k in dockerfile.build_args if k not in declared and k not in PROXY_ARGS)


# ------------------------------------------------------------------------------------------ resolution


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedStep:
    """An instruction with its substitutions done, and the scope it runs in.

    ``build_args``: declared ARGs in scope with a value (the env of a RUN, and its cache input);
    ``proxy_args``: predefined proxy ARGs given but not declared (env of a RUN, never in the cache key);
    ``env``: the ENV in effect when the step runs (base image ENV, then the stage's ENV lines).
    """

    instruction: Instruction
    position: int
    args: tuple[str, ...]
    flags: tuple[Flag, ...]
    heredocs: tuple[Heredoc, ...]
    mounts: tuple[Mount, ...] = ()
    healthcheck: Healthcheck | None = None
    build_args: tuple[tuple[str, str], ...] = ()
    proxy_args: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def keyword(self) -> str:
        return self.instruction.keyword

    def flag(self, name: str) -> str | None:
        return _last_flag(self.flags, name)

    def pairs(self) -> list[tuple[str, str]]:
        return list(zip(self.args[::2], self.args[1::2], strict=True))

    @property
    def text(self) -> str:
        """Normalised instruction text: keyword, sorted flags, JSON of the substituted arguments, heredocs."""
        parts = [self.keyword, *sorted(str(f) for f in self.flags)]
        parts.append(json.dumps(list(self.args), ensure_ascii=False))
        if self.instruction.json_form:
            parts.append("(exec)")
        for doc in self.heredocs:
            parts.append(json.dumps([doc.name, doc.content, doc.expand, doc.file_descriptor], ensure_ascii=False))
        return " ".join(parts)


def resolve_stage(dockerfile: Dockerfile, stage_index: int, *,
                  base_env: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                  triggers: Sequence[Instruction] = ()) -> list[ResolvedStep]:  # fmt: skip
    """Walk a stage's instructions with Docker's ARG/ENV scope rules and substitute their arguments.

    ``base_env`` is the ENV of the base image (for a stage built on another stage: that stage's final
    ENV). Global ARGs are visible in the stage only when redeclared with ``ARG NAME``. ``triggers`` are
    the base image's ONBUILD instructions (see ``parse_triggers``): they run first, right after FROM,
    and their steps have negative positions.
    """
    stage = dockerfile.stages[stage_index]
    env = dict(base_env.items() if isinstance(base_env, Mapping) else base_env)
    scope = _Scope(build_args=dockerfile.build_args, globals_=global_arg_values(dockerfile), env=env,
                   platform_args=dockerfile.platform_args)  # fmt: skip
    ctx = _Ctx(dockerfile.filename, dockerfile.escape)
    steps: list[ResolvedStep] = []
    for position, instruction in enumerate([*triggers, *stage.instructions], start=-len(triggers)):
        steps.append(_resolve_step(instruction, position, scope, ctx))
        _apply_to_scope(steps[-1], scope)
    return steps


def _resolve_step(instruction: Instruction, position: int, scope: _Scope, ctx: _Ctx) -> ResolvedStep:
    err = ctx.error(instruction.lineno)
    lex = ShellLex(ctx.escape)
    args = _expand_args(instruction, scope, lex, err)
    flags = tuple(Flag(f.name, scope.expand(f.value, lex, err)) if f.name in EXPANDED_FLAGS else f
                  for f in instruction.flags)  # fmt: skip
    step = ResolvedStep(instruction=instruction, position=position, args=args, flags=flags,
                        heredocs=_expand_heredocs(instruction, scope, err),
                        build_args=scope.visible_args(), proxy_args=scope.proxy_args(),
                        env=tuple(scope.env.items()))  # fmt: skip
    return _typed_step(step, err)


def _expand_args(instruction: Instruction, scope: _Scope, lex: ShellLex,
                 err: Callable[[str], DockerfileError]) -> tuple[str, ...]:  # fmt: skip
    keyword = instruction.keyword
    if keyword in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK", "ONBUILD", "MAINTAINER"):
        return instruction.args
    if keyword == "ARG":
        return tuple(_expand_arg_word(w, scope, lex, err) for w in instruction.args)
    return tuple(a if instruction.heredocs and _HEREDOC_RE.match(a) else scope.expand(a, lex, err)
                 for a in instruction.args)  # fmt: skip


def _expand_arg_word(word: str, scope: _Scope, lex: ShellLex, err: Callable[[str], DockerfileError]) -> str:
    name, eq, default = word.partition("=")
    name = scope.expand(name, lex, err)
    return f"{name}={scope.expand(default, lex, err)}" if eq else name


def _expand_heredocs(instruction: Instruction, scope: _Scope,
                     err: Callable[[str], DockerfileError]) -> tuple[Heredoc, ...]:  # fmt: skip
    if instruction.keyword == "RUN":
        return instruction.heredocs  # the shell expands a RUN heredoc (or not, when quoted)
    lex = ShellLex("\\", heredoc=True)
    return tuple(
        Heredoc(name=d.name, content=scope.expand(d.content, lex, err), expand=d.expand,
                strip_tabs=d.strip_tabs, file_descriptor=d.file_descriptor) if d.expand else d
        for d in instruction.heredocs
    )  # fmt: skip


def _typed_step(step: ResolvedStep, err: Callable[[str], DockerfileError]) -> ResolvedStep:
    keyword = step.keyword
    if keyword == "RUN":
        mounts = []
        for value in (f.value for f in step.flags if f.name == "mount"):
            try:
                mounts.append(parse_mount(value))
            except ValueError as exc:
                raise err(f"--mount={value}: {exc}") from None
        return replace(step, mounts=tuple(mounts))
    if keyword == "HEALTHCHECK":
        return replace(step, healthcheck=parse_healthcheck(step.instruction, err=err))
    if keyword == "ADD":
        _refuse_urls(step.args[:-1], err)
    elif keyword == "EXPOSE":
        for port in step.args:
            _check_port(port, err)
    elif keyword in ("WORKDIR", "USER", "STOPSIGNAL") and not step.args[0]:
        raise err(f"{keyword} cannot be empty")
    elif keyword == "STOPSIGNAL" and not is_valid_signal(step.args[0]):
        raise err(f"invalid signal: {step.args[0]}")
    return step


def is_valid_signal(text: str) -> bool:
    """A signal as Docker accepts it: a number, or a name with or without SIG (SIGTERM, term, RTMIN+3)."""
    if text.isdigit():
        return 0 < int(text) < 65
    name = text.upper().removeprefix("SIG")
    if _RT_SIGNAL_RE.match(name):
        return True
    return f"SIG{name}" in signal_module.Signals.__members__


def _check_port(port: str, err: Callable[[str], DockerfileError]) -> None:
    match = _PORT_RE.match(port)
    if not match:
        raise err(f"invalid containerPort: {port}")
    proto = (match.group(3) or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise err(f"invalid proto: {proto}")


def _apply_to_scope(step: ResolvedStep, scope: _Scope) -> None:
    if step.keyword == "ENV":
        scope.env.update(step.pairs())
    elif step.keyword == "ARG":
        for word in step.args:
            name, eq, default = word.partition("=")
            scope.args[name] = scope.arg_value(name, default if eq else None)
