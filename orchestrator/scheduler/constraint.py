"""Placement constraints, as SwarmKit and `docker service create --constraint` spell them.

`node.id==abc`, `node.hostname!=db1`, `node.role==manager`, `node.labels.zone==a`,
`engine.labels.disk==ssd`. Values compare case-insensitively; a missing label never equals and
always differs.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from orchestrator.errors import OrchestratorError
from orchestrator.model import Node


class ConstraintError(OrchestratorError):
    """A constraint or placement preference could not be read."""


class Operator(enum.StrEnum):
    EQ = "=="
    NE = "!="


_FIXED_KEYS = ("node.id", "node.hostname", "node.role")
_LABEL_PREFIXES = ("node.labels.", "engine.labels.")
_EXPR = re.compile(r"^\s*([^=!\s]+)\s*(==|!=)\s*(.*?)\s*$")


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str
    operator: Operator
    value: str

    def matches(self, node: Node) -> bool:
        actual = node_attribute(node, self.key)
        equal = actual is not None and actual.lower() == self.value.lower()
        return equal if self.operator is Operator.EQ else not equal


def node_attribute(node: Node, key: str) -> str | None:
    """The value a constraint or preference key names on `node`; None when the label is absent."""
    if key == "node.id":
        return node.id
    if key == "node.hostname":
        return node.hostname
    if key == "node.role":
        return node.role.value
    if key.startswith("node.labels."):
        return node.labels.get(key[len("node.labels.") :])
    if key.startswith("engine.labels."):
        return node.engine_labels.get(key[len("engine.labels.") :])
    raise ConstraintError(f"unknown constraint key {key!r}")


def check_key(key: str) -> str:
    if key in _FIXED_KEYS:
        return key
    for prefix in _LABEL_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            return key
    known = ", ".join([*_FIXED_KEYS, *(p + "<name>" for p in _LABEL_PREFIXES)])
    raise ConstraintError(f"unknown constraint key {key!r} (known: {known})")


def parse_constraint(expression: str) -> Constraint:
    match = _EXPR.match(expression)
    if match is None:
        raise ConstraintError(f"invalid constraint {expression!r}: expected KEY==VALUE or KEY!=VALUE")
    key, operator, value = match.groups()
    if not value:
        raise ConstraintError(f"invalid constraint {expression!r}: the value is empty")
    return Constraint(check_key(key), Operator(operator), value)


@lru_cache(maxsize=4096)
def parse_constraints(expressions: tuple[str, ...]) -> tuple[Constraint, ...]:
    """Parse every expression (cached: tasks of one service share theirs)."""
    return tuple(parse_constraint(e) for e in expressions)


def parse_spread(descriptor: str) -> str:
    """Check a `spread=` preference's key (the `spread=` itself is stripped if present)."""
    key = descriptor.removeprefix("spread=").strip()
    if not key.startswith(_LABEL_PREFIXES) and key not in _FIXED_KEYS:
        raise ConstraintError(
            f"invalid placement preference {descriptor!r}: spread over node.labels.* or engine.labels.*"
        )
    return check_key(key)


def matches_all(constraints: Iterable[Constraint], node: Node) -> bool:
    return all(c.matches(node) for c in constraints)


def validate_placement(constraints: Sequence[str], spreads: Sequence[str]) -> None:
    """Raise `ConstraintError` for the first bad constraint or preference (for service create)."""
    parse_constraints(tuple(constraints))
    for spread in spreads:
        parse_spread(spread)
