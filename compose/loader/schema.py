"""Validation against our Compose schema (compose/schema/compose-spec.json)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError as SchemaError

from compose.loader.errors import ConfigValidationError, Issue, format_path

_TYPE_NAMES = {
    "object": "a mapping", "array": "a list", "string": "a string", "number": "a number",
    "integer": "an integer", "boolean": "a boolean", "null": "null",
}


@cache
def load_schema() -> dict[str, Any]:
    text = resources.files("compose").joinpath("schema/compose-spec.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(load_schema())


def _type_list(schema: dict[str, Any]) -> list[str]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _type_list(load_schema()["definitions"][name])
    if "oneOf" in schema or "anyOf" in schema:
        return [t for sub in schema.get("oneOf", schema.get("anyOf", [])) for t in _type_list(sub)]
    kind = schema.get("type")
    kinds: list[str] = kind if isinstance(kind, list) else [kind] if kind else []
    return [_TYPE_NAMES.get(k, k) for k in kinds]


def _describe(error: SchemaError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        names = ", ".join(repr(e) for e in extra if not str(e).startswith("x-"))
        return f"additional properties {names} not allowed"
    if error.validator == "type":
        return f"must be {' or '.join(_type_list(error.schema))}, not {error.instance!r}"
    if error.validator in ("oneOf", "anyOf"):
        return _describe_alternatives(error)
    if error.validator == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        return f"must be one of {options}, not {error.instance!r}"
    if error.validator == "pattern":
        return f"{error.instance!r} has an invalid format"
    if error.validator == "required":
        return str(error.message).replace("is a required property", "is required")
    return str(error.message)


def _most_relevant(error: SchemaError) -> SchemaError:
    """For oneOf/anyOf: the failure inside the alternative whose type matched, if one did."""
    if error.validator not in ("oneOf", "anyOf"):
        return error
    typed = [c for c in error.context or [] if c.validator != "type"]
    if not typed:
        return error
    return _most_relevant(max(typed, key=lambda c: len(c.absolute_path)))


def _describe_alternatives(error: SchemaError) -> str:
    kinds = list(dict.fromkeys(_type_list(error.schema)))
    return f"must be {' or '.join(kinds)}, not {error.instance!r}"


def _issues(document: dict[str, Any], file: str) -> Iterator[Issue]:
    errors = sorted(_validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        relevant = _most_relevant(error)
        yield Issue(file=file, path=format_path(list(relevant.absolute_path)), message=_describe(relevant))


def validate_document(document: dict[str, Any], *, file: str) -> None:
    """Raise ConfigValidationError listing every schema violation of one file."""
    issues = list(_issues(document, file))
    if issues:
        raise ConfigValidationError(issues)
