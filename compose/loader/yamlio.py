"""YAML reading with Compose's `!reset` and `!override` tags and YAML 1.2 booleans."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from compose.loader.errors import LoadError


class Reset:
    """Marker left by `!reset`: the key is removed from what came before."""

    def __repr__(self) -> str:
        return "RESET"


RESET = Reset()


@dataclass(frozen=True, slots=True)
class Override:
    """Marker left by `!override`: the value replaces what came before instead of merging."""

    value: Any


class _ComposeYamlLoader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's (`yes`/`on` stay strings, as in compose),
    and which refuses a key written twice in one mapping (PyYAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        if key_node.value in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"mapping key {key_node.value!r} already defined at line {seen[key_node.value]}",
                key_node.start_mark)
        seen[key_node.value] = key_node.start_mark.line + 1


_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_ComposeYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ComposeYamlLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_12, list("tTfF"))


def _construct_untagged(loader: _ComposeYamlLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    tag = loader.resolve(yaml.ScalarNode, node.value, (True, False))  # type: ignore[no-untyped-call]
    return loader.construct_object(yaml.ScalarNode(tag, node.value), deep=True)


def _construct_reset(loader: _ComposeYamlLoader, node: yaml.Node) -> Reset:
    return RESET


def _construct_override(loader: _ComposeYamlLoader, node: yaml.Node) -> Override:
    return Override(_construct_untagged(loader, node))


_ComposeYamlLoader.add_constructor("!reset", _construct_reset)
_ComposeYamlLoader.add_constructor("!override", _construct_override)


def parse_yaml(text: str, *, file: str) -> dict[str, Any]:
    """Parse one Compose document; syntax errors carry line and column (1-based)."""
    try:
        data = yaml.load(text, Loader=_ComposeYamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise LoadError.at(file, _mark(exc), str(exc.problem or exc.context or "invalid YAML")) from exc
    except yaml.YAMLError as exc:
        raise LoadError.at(file, "", f"invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LoadError.at(file, "", "top-level object must be a mapping")
    return data


def _mark(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return ""
    return f"line {mark.line + 1}, column {mark.column + 1}"


def read_yaml_file(path: Path, *, display: str | None = None) -> dict[str, Any]:
    """Read and parse a Compose file, naming it `display` (default: the path) in errors."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadError.at(name, "", f"cannot read file: {exc.strerror or exc}") from exc
    return parse_yaml(text, file=name)


def strip_markers(value: Any) -> Any:
    """Resolve markers with nothing beneath them: `!reset` keys vanish, `!override` unwraps."""
    if isinstance(value, Override):
        return strip_markers(value.value)
    if isinstance(value, dict):
        return {k: strip_markers(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [strip_markers(v) for v in value if not isinstance(v, Reset)]
    return value
