"""A checker for the OpenAPI v3 structural schemas that CustomResourceDefinitions use.

The CRD's schema is the one source of truth for the DynamicPrefix API. The API server
enforces it for objects it stores, but `calc -f file.yaml` reads files that never went
through a server, and the test control plane (1.20) enforces no CEL rules; this module
applies the same schema locally, defaults included, so both paths see the same rules.
Only the keywords structural schemas use are supported; an unsupported one is a bug.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JsonSchema = Mapping[str, Any]

_SUPPORTED_KEYWORDS = frozenset(
    {
        "type", "description", "properties", "required", "items", "enum", "default",
        "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
        "format", "nullable", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
        "x-kubernetes-preserve-unknown-fields",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, located by its field path (``spec.subnets[1].offset``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _type_name(value: object) -> str:
    match value:
        case bool():
            return "boolean"
        case int():
            return "integer"
        case float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
        case None:
            return "null"
    return type(value).__name__


def _matches_type(expected: str, value: object) -> bool:
    actual = _type_name(value)
    return actual == expected or (expected == "number" and actual == "integer")


def check(schema: JsonSchema, value: object, path: str = "") -> list[Problem]:
    """Every way ``value`` breaks ``schema``; an empty list means it conforms.

    Unknown fields are reported too: the API server would silently prune them, which
    hides typos such as ``adressRanges`` until nothing happens and nobody knows why.
    """
    unsupported = set(schema) - _SUPPORTED_KEYWORDS
    if unsupported:
        raise ValueError(f"schema at {path or '<root>'} uses unsupported {sorted(unsupported)}")
    if value is None and schema.get("nullable"):
        return []
    expected = schema.get("type")
    if expected is not None and not _matches_type(expected, value):
        return [Problem(path, f"must be of type {expected}, got {_type_name(value)}")]
    problems: list[Problem] = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(option) for option in schema["enum"])
        problems.append(Problem(path, f"unsupported value {value!r}: must be one of {allowed}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(Problem(path, f"must be at least {schema['minimum']}, got {value}"))
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(Problem(path, f"must be at most {schema['maximum']}, got {value}"))
    if isinstance(value, str):
        problems.extend(_check_string(schema, value, path))
    if isinstance(value, list):
        problems.extend(_check_array(schema, value, path))
    if isinstance(value, dict):
        problems.extend(_check_object(schema, value, path))
    return problems


def _check_string(schema: JsonSchema, value: str, path: str) -> list[Problem]:
    problems = []
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(Problem(path, f"must be at least {schema['minLength']} characters"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(Problem(path, f"must be at most {schema['maxLength']} characters"))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(Problem(path, f"{value!r} does not match {schema['pattern']!r}"))
    return problems


def _check_array(schema: JsonSchema, value: list[Any], path: str) -> list[Problem]:
    problems = []
    if "minItems" in schema and len(value) < schema["minItems"]:
        problems.append(Problem(path, f"must have at least {schema['minItems']} items"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        problems.append(Problem(path, f"must have at most {schema['maxItems']} items"))
    items = schema.get("items")
    if items is not None:
        for index, item in enumerate(value):
            problems.extend(check(items, item, f"{path}[{index}]"))
    if schema.get("x-kubernetes-list-type") == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen: dict[tuple[Any, ...], int] = {}
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = tuple(item.get(k) for k in keys)
            if key in seen:
                shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
                problems.append(
                    Problem(f"{path}[{index}]", f"duplicate entry with {shown} (see [{seen[key]}])")
                )
            else:
                seen[key] = index
    return problems


def _check_object(schema: JsonSchema, value: dict[str, Any], path: str) -> list[Problem]:
    problems = []
    properties: Mapping[str, JsonSchema] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            problems.append(Problem(_join(path, name), "is required"))
    for name, item in value.items():
        if name in properties:
            problems.extend(check(properties[name], item, _join(path, name)))
        elif properties and not schema.get("x-kubernetes-preserve-unknown-fields"):
            known = ", ".join(sorted(properties))
            problems.append(Problem(_join(path, name), f"unknown field (known fields: {known})"))
    return problems


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def with_defaults(schema: JsonSchema, value: object) -> Any:
    """A deep copy of ``value`` with the schema's defaults filled in, as the API server does."""
    result = _copied(value)
    _fill_defaults(schema, result)
    return result


def _copied(value: object) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times faster
    than `copy.deepcopy`, which it falls back to for anything else."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    if value is None or isinstance(value, str | int | float):  # (bool is an int)
        return value
    return copy.deepcopy(value)


def _fill_defaults(schema: JsonSchema, value: object) -> None:
    if isinstance(value, dict):
        for name, item_schema in schema.get("properties", {}).items():
            if name not in value and "default" in item_schema:
                value[name] = _copied(item_schema["default"])
            if name in value:
                _fill_defaults(item_schema, value[name])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _fill_defaults(schema["items"], item)
