"""The part of Go's text/template that Docker users script `--format` with.

Actions: `{{.A.B}}`, `{{.}}`, `{{$}}`, variables (`{{$x := .A}}`, `{{$x.B}}`), parenthesised pipelines with
fields after them (`{{(index .IPAM.Config 0).Gateway}}`), pipelines (`{{.Name | upper}}`), `if`/`else if`/
`else`, `range` (over lists and maps, `range $k, $v := ...`), `with`, comments, and the `{{-`/`-}}` trim
markers. Functions: Go's `and or not eq ne lt le gt ge len index slice print printf println` and Docker's
`json join split lower upper title truncate pad`. A leading `table ` gives a header row and tab-aligned
columns; `\\t` and `\\n` in the template are tabs and newlines, as Docker's CLI reads them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.errors import InvalidArgument

_ACTION = re.compile(r"{{(-\s)?(.*?)(\s-)?}}", re.S)
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>"(?:[^"\\]|\\.)*") | (?P<raw>`[^`]*`) | (?P<num>-?\d+(?:\.\d+)?(?![\w.])) |
      (?P<declare>:=) | (?P<assign>=) | (?P<pipe>\|) | (?P<open>\() | (?P<close>\)) | (?P<comma>,) |
      (?P<chain>(?<=\))\.[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*) |
      (?P<field>\.[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*) | (?P<dot>\.) |
      (?P<var>\$[\w]*(?:\.[A-Za-z_][\w]*)*) | (?P<ident>[A-Za-z_][\w]*)
    )""", re.X)
_MISSING = object()


class TemplateError(InvalidArgument):
    pass


def render(template: str, obj: Any) -> str:
    """Render one object; raises InvalidArgument naming the problem on a syntax or call error."""
    nodes = _parse_template(template.replace("\\t", "\t").replace("\\n", "\n"))
    out: list[str] = []
    _exec(nodes, _Scope(dot=obj, variables={"$": obj}), out)
    return "".join(out)


# --- parsing -------------------------------------------------------------------------------------
@dataclass
class _Control:
    word: str  # if, range, with
    pipeline: list[Any]
    declare: list[str]
    body: list[Any] = field(default_factory=list)
    other: list[Any] = field(default_factory=list)


def _parse_template(template: str) -> list[Any]:
    items: list[tuple[str, str]] = []
    pos = 0
    for match in _ACTION.finditer(template):
        text = template[pos:match.start()]
        if match.group(1):
            text = text.rstrip()
        if items and items[-1] == ("trim", ""):
            items.pop()
            text = text.lstrip()
        if text:
            items.append(("text", text))
        items.append(("action", match.group(2).strip()))
        if match.group(3):
            items.append(("trim", ""))
        pos = match.end()
    rest = template[pos:]
    if items and items[-1] == ("trim", ""):
        items.pop()
        rest = rest.lstrip()
    if rest:
        items.append(("text", rest))
    nodes, i, stop = _parse_block(items, 0, template)
    if stop is not None:
        raise TemplateError(f"template {template!r}: unexpected {{{{{stop}}}}}")
    return nodes


def _parse_block(items: list[tuple[str, str]], i: int, template: str) -> tuple[list[Any], int, str | None]:
    """Nodes up to an `{{end}}` or `{{else ...}}` (returned as the stop word, `i` at that action)."""
    nodes: list[Any] = []
    while i < len(items):
        kind, value = items[i]
        if kind == "text":
            nodes.append(value)
            i += 1
            continue
        if value.startswith("/*"):
            i += 1
            continue
        word = value.split(None, 1)[0] if value else ""
        if word in ("end", "else"):
            return nodes, i, word
        if word in ("if", "range", "with"):
            control, i = _parse_control(items, i, word, value[len(word):], template)
            nodes.append(control)
            continue
        nodes.append(_parse_action(value, template))
        i += 1
    return nodes, i, None


def _parse_control(items: list[tuple[str, str]], i: int, word: str, head: str,
                   template: str) -> tuple[_Control, int]:
    declare, pipeline = _parse_head(head, template, allow_two=word == "range")
    control = _Control(word=word, pipeline=pipeline, declare=declare)
    control.body, i, stop = _parse_block(items, i + 1, template)
    if stop == "else":
        rest = items[i][1][len("else"):].strip()
        if rest.split(None, 1)[:1] in (["if"], ["with"]):  # `else if` / `else with`: a nested control
            inner_word = rest.split(None, 1)[0]
            nested, i = _parse_control(items, i, inner_word, rest[len(inner_word):], template)
            control.other = [nested]
            return control, i
        control.other, i, stop = _parse_block(items, i + 1, template)
    if stop != "end":
        raise TemplateError(f"template {template!r}: missing {{{{end}}}} for {word}")
    return control, i + 1


def _parse_action(text: str, template: str) -> Any:
    declare, pipeline = _parse_head(text, template, allow_two=False)
    return ("action", declare, pipeline)


def _parse_head(text: str, template: str, *, allow_two: bool) -> tuple[list[str], list[Any]]:
    """`[$x :=] pipeline`, or for range `[$k, $v :=] pipeline`: (declared names, pipeline)."""
    tokens = _tokens(text, template)
    kinds = [k for k, _ in tokens[:4]]
    declare: list[str] = []
    if kinds[:2] in (["var", "declare"], ["var", "assign"]):
        declare, tokens = [tokens[0][1]], tokens[2:]
    elif allow_two and kinds == ["var", "comma", "var", "declare"]:
        declare, tokens = [tokens[0][1], tokens[2][1]], tokens[4:]
    pipeline, rest = _parse_pipeline(tokens, template)
    if rest:
        raise TemplateError(f"template {template!r}: unexpected {rest[0][1]!r}")
    return declare, pipeline


def _tokens(text: str, template: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise TemplateError(f"template {template!r}: cannot parse {text[pos:].strip()!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _parse_pipeline(tokens: list[tuple[str, str]], template: str) -> tuple[list[Any], list[tuple[str, str]]]:
    """A pipeline: commands separated by `|`, each a list of operands; stops at `)` or the end."""
    commands: list[list[Any]] = [[]]
    while tokens:
        kind, value = tokens[0]
        if kind == "close":
            break
        tokens = tokens[1:]
        if kind == "pipe":
            commands.append([])
        elif kind == "open":
            inner, tokens = _parse_pipeline(tokens, template)
            if not tokens or tokens[0][0] != "close":
                raise TemplateError(f"template {template!r}: unclosed left paren")
            tokens = tokens[1:]
            chain = ""
            if tokens and tokens[0][0] == "chain":
                chain, tokens = tokens[0][1], tokens[1:]
            commands[-1].append(("group", inner, chain))
        else:
            commands[-1].append((kind, value))
    if any(not c for c in commands):
        raise TemplateError(f"template {template!r}: missing command in pipeline")
    return commands, tokens


# --- execution -----------------------------------------------------------------------------------
@dataclass
class _Scope:
    dot: Any
    variables: dict[str, Any]

    def with_dot(self, dot: Any) -> _Scope:
        return _Scope(dot=dot, variables=dict(self.variables))


def _exec(nodes: list[Any], scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Control):
            _exec_control(node, scope, out)
        else:
            _, declare, pipeline = node
            value = _run_pipeline(pipeline, scope)
            if declare:
                scope.variables[declare[0]] = value
            else:
                out.append(_to_text(value))


def _exec_control(node: _Control, scope: _Scope, out: list[str]) -> None:
    value = _run_pipeline(node.pipeline, scope)
    if node.word == "range":
        pairs = (sorted(value.items(), key=lambda kv: str(kv[0])) if isinstance(value, Mapping)
                 else list(enumerate(value or [])))
        if not pairs:
            _exec(node.other, scope, out)
        for key, item in pairs:
            inner = scope.with_dot(item)
            if len(node.declare) == 2:
                inner.variables[node.declare[0]], inner.variables[node.declare[1]] = key, item
            elif node.declare:
                inner.variables[node.declare[0]] = item
            _exec(node.body, inner, out)
        return
    if node.declare:
        scope.variables[node.declare[0]] = value
    if _truth(value):
        _exec(node.body, scope.with_dot(value) if node.word == "with" else scope, out)
    else:
        _exec(node.other, scope, out)


def _run_pipeline(commands: list[list[Any]], scope: _Scope) -> Any:
    value: Any = _MISSING
    for command in commands:
        value = _run_command(command, scope, piped=value)
    return None if value is _MISSING else value


def _run_command(command: list[Any], scope: _Scope, *, piped: Any) -> Any:
    head = command[0]
    if head[0] == "ident" and head[1] not in ("true", "false", "nil"):
        fn = _FUNCTIONS.get(head[1])
        if fn is None:
            raise TemplateError(f'template: function "{head[1]}" not defined')
        args = [_operand(a, scope) for a in command[1:]]
        if piped is not _MISSING:
            args.append(piped)
        try:
            return fn(*args)
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise TemplateError(f"template: error calling {head[1]}: {exc}") from exc
    if len(command) > 1 or piped is not _MISSING:
        raise TemplateError(f"template: can't give argument to non-function {head[1] if len(head) > 1 else head}")
    return _operand(head, scope)


def _operand(token: Any, scope: _Scope) -> Any:
    kind = token[0]
    if kind == "group":
        return _fields(_run_pipeline(token[1], scope), token[2])
    value = token[1]
    if kind == "dot":
        return scope.dot
    if kind == "field":
        return _fields(scope.dot, value)
    if kind == "var":
        name, _, rest = value.partition(".")
        if name not in scope.variables:
            raise TemplateError(f"template: undefined variable {name!r}")
        return _fields(scope.variables[name], "." + rest if rest else "")
    if kind == "string":
        return json.loads(value)
    if kind == "raw":
        return value[1:-1]
    if kind == "num":
        return float(value) if "." in value else int(value)
    if kind == "ident":
        return {"true": True, "false": False, "nil": None}[value]
    raise TemplateError(f"template: unexpected {value!r}")


def _fields(value: Any, chain: str) -> Any:
    for key in chain.split(".")[1:]:
        value = _field(value, key)
    return value


def _field(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        for k in value:  # Docker's templates are case-sensitive, but JSON from older APIs differs in case
            if isinstance(k, str) and k.lower() == key.lower():
                return value[k]
        return None
    return getattr(value, key, None)


def _truth(value: Any) -> bool:
    return bool(value)


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            value = value[int(key)]
        else:
            return None
    return value


def _compare(op: Callable[[Any, Any], bool], *, ordered: bool) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if (a is None or b is None) and not ordered:  # a missing field equals nothing but another missing one
            return op(a, b)
        if isinstance(a, bool) != isinstance(b, bool) or isinstance(a, str) != isinstance(b, str) or \
                a is None or b is None:
            raise ValueError(f"incompatible types for comparison: {a!r} and {b!r}")
        return op(a, b)
    return compare


def _and(*values: Any) -> Any:
    for v in values:
        if not _truth(v):
            return v
    return values[-1]


def _or(*values: Any) -> Any:
    for v in values:
        if _truth(v):
            return v
    return values[-1]


def _go_printf(fmt: str, *args: Any) -> str:
    def one(match: re.Match[str], values: list[Any]) -> str:
        spec = match.group(0)
        if spec == "%%":
            return "%"
        value = values.pop(0) if values else None
        verb, flags = spec[-1], spec[1:-1]
        if verb == "q":
            return json.dumps(_to_text(value))
        if verb == "d":
            return f"%{flags}d" % int(value)
        if verb == "f":
            return f"%{flags}f" % float(value)
        return f"%{flags}s" % _to_text(value)

    queue = list(args)
    return re.sub(r"%%|%[-+ 0#]*\d*(?:\.\d+)?[sdvqf]", lambda m: one(m, queue), fmt)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": lambda v: json.dumps(v, separators=(",", ":")),
    "index": _index,
    "slice": lambda v, *ij: v[int(ij[0]) if ij else 0: int(ij[1]) if len(ij) > 1 else None],
    "join": lambda v, sep: sep.join(_to_text(x) for x in (v or [])),
    "split": lambda v, sep: str(v).split(sep),
    "lower": lambda v: str(v).lower(),
    "upper": lambda v: str(v).upper(),
    "title": lambda v: str(v).title(),
    "truncate": lambda v, n: str(v)[: int(n)],
    "pad": lambda v, left, right: " " * int(left) + _to_text(v) + " " * int(right),
    "len": lambda v: len(v or []),
    "not": lambda v: not _truth(v),
    "and": _and,
    "or": _or,
    "eq": lambda a, *bs: any(_compare(lambda x, y: x == y, ordered=False)(a, b) for b in bs),
    "ne": _compare(lambda a, b: a != b, ordered=False),
    "lt": _compare(lambda a, b: a < b, ordered=True),
    "le": _compare(lambda a, b: a <= b, ordered=True),
    "gt": _compare(lambda a, b: a > b, ordered=True),
    "ge": _compare(lambda a, b: a >= b, ordered=True),
    "print": lambda *v: "".join(_to_text(x) for x in v),
    "println": lambda *v: " ".join(_to_text(x) for x in v) + "\n",
    "printf": _go_printf,
}


def _to_text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
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
