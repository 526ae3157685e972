"""Variable interpolation as Compose does it: `$VAR`, `${VAR:-default}`, nesting, `$$`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compose.loader.errors import Issue, LoadError, format_path
from compose.loader.yamlio import Override

Lookup = Callable[[str], "str | None"]

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class TemplateError(ValueError):
    """A template is malformed or names a required variable that has no value."""


@dataclass(frozen=True, slots=True)
class _Var:
    name: str
    operator: str = ""
    argument: tuple[_Part, ...] = ()


_Part = str | _Var


@dataclass(slots=True)
class _Parser:
    text: str
    pos: int = 0

    def parse(self, *, in_braces: bool) -> tuple[_Part, ...]:
        parts: list[_Part] = []
        literal: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if in_braces and char == "}":
                break
            if char != "$":
                literal.append(char)
                self.pos += 1
                continue
            nxt = self.text[self.pos + 1 : self.pos + 2]
            if nxt == "$":
                literal.append("$")
                self.pos += 2
                continue
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(self._variable())
        if literal:
            parts.append("".join(literal))
        return tuple(parts)

    def _variable(self) -> _Var:
        self.pos += 1  # the '$'
        if self.text[self.pos : self.pos + 1] != "{":
            match = _NAME.match(self.text, self.pos)
            if not match:
                raise TemplateError("invalid interpolation format")
            self.pos = match.end()
            return _Var(match.group())
        match = _NAME.match(self.text, self.pos + 1)
        if not match:
            raise TemplateError("invalid interpolation format")
        self.pos = match.end()
        operator = next((op for op in _OPERATORS if self.text.startswith(op, self.pos)), "")
        self.pos += len(operator)
        argument = self.parse(in_braces=True) if operator else ()
        if self.text[self.pos : self.pos + 1] != "}":
            raise TemplateError("invalid interpolation format")
        self.pos += 1
        return _Var(match.group(), operator, argument)


def _evaluate(parts: tuple[_Part, ...], lookup: Lookup, missing: list[str]) -> str:
    return "".join(p if isinstance(p, str) else _evaluate_var(p, lookup, missing) for p in parts)


def _evaluate_var(var: _Var, lookup: Lookup, missing: list[str]) -> str:
    value = lookup(var.name)
    op = var.operator
    is_set = value is not None
    is_full = bool(value)
    if op in (":-", "-"):
        if (op == ":-" and not is_full) or (op == "-" and not is_set):
            return _evaluate(var.argument, lookup, missing)
    elif op in (":?", "?"):
        if (op == ":?" and not is_full) or (op == "?" and not is_set):
            reason = _evaluate(var.argument, lookup, missing)
            suffix = f": {reason}" if reason else ""
            raise TemplateError(f"required variable {var.name} is missing a value{suffix}")
    elif op in (":+", "+"):
        wanted = is_full if op == ":+" else is_set
        return _evaluate(var.argument, lookup, missing) if wanted else ""
    if value is None:
        missing.append(var.name)
        return ""
    return value


def substitute(template: str, lookup: Lookup, *, missing: list[str] | None = None) -> str:
    """Expand one string; names of unset plain variables are appended to `missing`."""
    parts = _Parser(template).parse(in_braces=False)
    return _evaluate(parts, lookup, missing if missing is not None else [])


def lookup_in(mapping: Mapping[str, str]) -> Lookup:
    return mapping.get


# Paths whose values compose converts after interpolation (strings from variables -> typed values).
_BOOL_PATHS = (
    "services.*.privileged", "services.*.read_only", "services.*.stdin_open", "services.*.tty",
    "services.*.init", "services.*.oom_kill_disable", "services.*.attach", "services.*.healthcheck.disable",
    "services.*.volumes.*.read_only", "services.*.volumes.*.bind.create_host_path",
    "services.*.volumes.*.volume.nocopy", "services.*.depends_on.*.required",
    "services.*.depends_on.*.restart", "services.*.env_file.*.required", "services.*.build.no_cache",
    "services.*.build.pull", "services.*.build.privileged", "networks.*.external", "networks.*.internal",
    "networks.*.attachable", "networks.*.enable_ipv6", "networks.*.enable_ipv4", "volumes.*.external",
    "secrets.*.external", "configs.*.external",
)
_INT_PATHS = (
    "services.*.scale", "services.*.deploy.replicas", "services.*.healthcheck.retries",
    "services.*.ports.*.target", "services.*.mem_swappiness", "services.*.oom_score_adj",
    "services.*.cpu_count", "services.*.cpu_percent", "services.*.ulimits.*",
    "services.*.ulimits.*.soft", "services.*.ulimits.*.hard",
)
_TRUE = {"y", "yes", "true", "on", "1"}
_FALSE = {"n", "no", "false", "off", "0"}


def _matches(path: tuple[str | int, ...], pattern: str) -> bool:
    parts = pattern.split(".")
    return len(parts) == len(path) and all(p == "*" or p == str(q) for p, q in zip(parts, path, strict=True))


def _cast(value: str, path: tuple[str | int, ...]) -> Any:
    if any(_matches(path, p) for p in _BOOL_PATHS):
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    if any(_matches(path, p) for p in _INT_PATHS) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


@dataclass(slots=True, kw_only=True)
class _TreeInterpolator:
    file: str
    lookup: Lookup
    issues: list[Issue] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def walk(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, Override):
            return Override(self.walk(value.value, path))
        if isinstance(value, dict):
            return {k: self.walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return self._string(value, path)
        return value

    def _string(self, value: str, path: tuple[str | int, ...]) -> Any:
        try:
            return _cast(substitute(value, self.lookup, missing=self.missing), path)
        except TemplateError as exc:
            message = str(exc)
            if message == "invalid interpolation format":
                message = f"invalid interpolation format in {value!r}; you may need to escape any $ with $$"
            self.issues.append(Issue(file=self.file, path=format_path(path), message=message))
            return value


def interpolate_tree(
    tree: dict[str, Any], *, file: str, lookup: Lookup, warnings: list[str] | None = None
) -> dict[str, Any]:
    """Interpolate every string value (never keys) of a parsed file; all errors at once."""
    walker = _TreeInterpolator(file=file, lookup=lookup)
    result = walker.walk(tree, ())
    if walker.issues:
        raise LoadError(walker.issues)
    if warnings is not None:
        for name in dict.fromkeys(walker.missing):
            warnings.append(f'The "{name}" variable is not set. Defaulting to a blank string.')
    assert isinstance(result, dict)
    return result
