"""`.env` file syntax as Compose reads it: `KEY=VALUE`, `export`, quotes, comments, `${VAR}`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from compose.loader.errors import LoadError
from compose.loader.interpolate import TemplateError, substitute

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$$"}


@dataclass(slots=True, kw_only=True)
class _EnvParser:
    text: str
    file: str
    environ: Mapping[str, str]
    values: dict[str, str] = field(default_factory=dict)
    pos: int = 0

    @property
    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def fail(self, message: str) -> LoadError:
        return LoadError.at(self.file, f"line {self.line}", message)

    def lookup(self, name: str) -> str | None:
        return self.values[name] if name in self.values else self.environ.get(name)

    def parse(self) -> dict[str, str]:
        while self.pos < len(self.text):
            self._statement()
        return self.values

    def _rest_of_line(self) -> str:
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        chunk = self.text[self.pos : end]
        self.pos = end + 1
        return chunk

    def _statement(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r":
            self.pos += 1
        if self.text.startswith(("#", "\n"), self.pos) or self.pos >= len(self.text):
            self._rest_of_line()
            return
        if self.text.startswith("export ", self.pos):
            self.pos += len("export ")
            while self.text[self.pos : self.pos + 1] in (" ", "\t"):
                self.pos += 1
        match = _KEY.match(self.text, self.pos)
        if not match:
            line = self.line
            raise LoadError.at(self.file, f"line {line}",
                               f"invalid variable name in {self._rest_of_line().strip()!r}")
        key = match.group()
        self.pos = match.end()
        while self.text[self.pos : self.pos + 1] in (" ", "\t"):
            self.pos += 1
        if self.text[self.pos : self.pos + 1] != "=":
            self._bare_key(key)
            return
        self.pos += 1
        while self.text[self.pos : self.pos + 1] in (" ", "\t"):
            self.pos += 1
        self.values[key] = self._value()

    def _bare_key(self, key: str) -> None:
        line = self.line
        rest = self._rest_of_line().strip()
        if rest and not rest.startswith("#"):
            raise LoadError.at(self.file, f"line {line}", f"unexpected {rest!r} after variable name {key!r}")
        value = self.environ.get(key)
        if value is not None:
            self.values[key] = value

    def _value(self) -> str:
        quote = self.text[self.pos : self.pos + 1]
        if quote == "'":
            return self._single_quoted()
        if quote == '"':
            return self._expand(self._double_quoted())
        raw = self._rest_of_line()
        raw = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
        return self._expand(raw)

    def _single_quoted(self) -> str:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise self.fail("unterminated single-quoted value")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        self._rest_of_line()
        return value

    def _double_quoted(self) -> str:
        out: list[str] = []
        i = self.pos + 1
        while i < len(self.text):
            char = self.text[i]
            if char == "\\" and i + 1 < len(self.text):
                nxt = self.text[i + 1]
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
                i += 2
                continue
            if char == '"':
                self.pos = i + 1
                self._rest_of_line()
                return "".join(out)
            out.append(char)
            i += 1
        raise self.fail("unterminated double-quoted value")

    def _expand(self, raw: str) -> str:
        try:
            return substitute(raw, self.lookup)
        except TemplateError as exc:
            raise self.fail(str(exc)) from exc


def parse_env_text(text: str, *, file: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Parse env-file text; `KEY` alone takes its value from `environ` (skipped when unset)."""
    return _EnvParser(text=text, file=file, environ=environ or {}).parse()


def read_env_file(path: Path, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise LoadError.at(str(path), "", "env file not found") from exc
    except OSError as exc:
        raise LoadError.at(str(path), "", f"cannot read env file: {exc.strerror or exc}") from exc
    return parse_env_text(text, file=str(path), environ=environ)
