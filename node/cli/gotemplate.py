"""The subset of Go's text/template that Docker users script `--format` with.

Supported: `{{.A.B}}`, `{{.}}`, `{{json .X}}`, `{{index .Labels "k"}}`, `{{join .X ","}}`, `{{lower .X}}`,
`{{upper .X}}`, `{{title .X}}`, `{{len .X}}`, `{{println .X}}`, `{{range .X}}...{{end}}`,
`{{if .X}}...{{else}}...{{end}}`, a leading `table ` (header row, tab-aligned), and `\\t`/`\\n` escapes.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from node.errors import InvalidArgument

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


def render(template: str, obj: Any) -> str:
    """Render one object; raises InvalidArgument naming the template on a syntax error."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    tokens = _tokenize(template)
    nodes, rest = _parse(tokens, 0, template)
    if rest != len(tokens):
        raise InvalidArgument(f"template {template!r}: unexpected {{{{end}}}}")
    return _exec(nodes, obj)


def _tokenize(template: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    for match in _ACTION.finditer(template):
        if match.start() > pos:
            tokens.append(("text", template[pos:match.start()]))
        tokens.append(("action", match.group(1)))
        pos = match.end()
    if pos < len(template):
        tokens.append(("text", template[pos:]))
    return tokens


def _parse(tokens: list[tuple[str, str]], i: int, template: str) -> tuple[list[Any], int]:
    nodes: list[Any] = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            nodes.append(("text", value))
            i += 1
            continue
        word = value.split(None, 1)[0] if value else ""
        if word in ("end", "else"):
            return nodes, i
        if word in ("range", "if", "with"):
            body, j = _parse(tokens, i + 1, template)
            other: list[Any] = []
            if j < len(tokens) and tokens[j][1].strip() == "else":
                other, j = _parse(tokens, j + 1, template)
            if j >= len(tokens) or tokens[j][1].strip() != "end":
                raise InvalidArgument(f"template {template!r}: missing {{{{end}}}} for {word}")
            nodes.append((word, value[len(word):].strip(), body, other))
            i = j + 1
            continue
        nodes.append(("expr", value))
        i += 1
    return nodes, i


def _exec(nodes: list[Any], obj: Any) -> str:
    out: list[str] = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "expr":
            out.append(_to_text(_eval(node[1], obj)))
        elif node[0] == "range":
            items = _eval(node[1], obj)
            seq = list(items.values()) if isinstance(items, Mapping) else list(items or [])
            out.append("".join(_exec(node[2], item) for item in seq) if seq else _exec(node[3], obj))
        elif node[0] in ("if", "with"):
            value = _eval(node[1], obj)
            target = value if node[0] == "with" else obj
            out.append(_exec(node[2], target) if value else _exec(node[3], obj))
    return "".join(out)


def _eval(expr: str, obj: Any) -> Any:
    parts = shlex.split(expr, posix=True) if '"' in expr else expr.split()
    if not parts:
        return ""
    head, args = parts[0], [_operand(a, obj) for a in parts[1:]]
    functions = {
        "json": lambda v: json.dumps(v, separators=(",", ":")),
        "index": lambda v, *keys: _index(v, keys),
        "join": lambda v, sep: sep.join(str(x) for x in (v or [])),
        "lower": lambda v: str(v).lower(),
        "upper": lambda v: str(v).upper(),
        "title": lambda v: str(v).title(),
        "len": lambda v: len(v or []),
        "println": lambda *v: " ".join(_to_text(x) for x in v) + "\n",
        "printf": lambda fmt, *v: _go_printf(fmt, v),
        "truncate": lambda v, n: str(v)[: int(n)],
    }
    if head in functions:
        try:
            return functions[head](*args)
        except TypeError as exc:
            raise InvalidArgument(f"template: wrong arguments to {head}: {expr!r}") from exc
    if len(parts) > 1:
        raise InvalidArgument(f"template: function {head!r} not defined")
    return _operand(head, obj)


def _operand(token: str, obj: Any) -> Any:
    if token == ".":
        return obj
    if token.startswith("."):
        value = obj
        for key in token[1:].split("."):
            value = _field(value, key)
        return value
    if token.isdigit():
        return int(token)
    return token


def _field(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        for k in value:  # Docker's templates are case-sensitive, but JSON from older APIs differs in case
            if isinstance(k, str) and k.lower() == key.lower():
                return value[k]
        return None
    return getattr(value, key, None)


def _index(value: Any, keys: Sequence[Any]) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            value = value[int(key)]
        else:
            return None
    return value


def _go_printf(fmt: str, args: Sequence[Any]) -> str:
    return re.sub(r"%[-0-9.]*[sdvq]", "{}", fmt).format(*(_to_text(a) for a in args))


def _to_text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_to_text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_to_text(v) for v in value) + "]"
    return str(value)


def render_table(template: str, rows: Sequence[Any], *, headers: Mapping[str, str]) -> str:
    """`table {{.ID}}\\t{{.Names}}`: a header row from `headers` (field -> title), then rows, tab-aligned."""
    body = template[len("table"):].strip()
    header_line = re.sub(r"{{\s*\.(\w+)\s*}}", lambda m: headers.get(m.group(1), m.group(1).upper()), body)
    lines = [render(header_line, {})] + [render(body, row) for row in rows]
    return align_tabs(lines)


def align_tabs(lines: Sequence[str], *, padding: int = 3) -> str:
    """Go's tabwriter as Docker uses it: columns separated by at least `padding` spaces."""
    split = [line.split("\t") for line in lines]
    widths: list[int] = []
    for cells in split:
        for n, cell in enumerate(cells[:-1]):
            if n >= len(widths):
                widths.append(0)
            widths[n] = max(widths[n], len(cell))
    out = []
    for cells in split:
        padded = [cell.ljust(widths[n] + padding) for n, cell in enumerate(cells[:-1])]
        out.append(("".join(padded) + cells[-1]).rstrip())
    return "\n".join(out)
