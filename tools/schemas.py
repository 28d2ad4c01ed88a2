"""Tool input schemas in the shapes the model providers accept, from one pydantic model.

OpenAI strict function calling wants every object closed (``additionalProperties:
false``) with every property listed in ``required`` (optional ones nullable), and
no ``format``-like keywords. Gemini function declarations reject ``$defs``/``$ref``,
``additionalProperties``, ``$schema``, ``title``, ``default`` and exclusive bounds,
and want ``nullable`` instead of a ``null`` type in ``anyOf``. Both are derived here
and checked by :func:`openai_strict_problems` / :func:`gemini_problems`, which the
tests run over every registered tool.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel

_OPENAI_UNSUPPORTED = {
    "format",
    "default",
    "title",
    "examples",
    "$schema",
    "minLength",
    "maxLength",
}
"""Dropped from strict schemas (string lengths are not among strict mode's supported
keywords: they move into the description; pydantic still enforces them at the gate)."""
_GEMINI_ALLOWED = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "nullable",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "anyOf",
    "propertyOrdering",
}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every ``$ref`` to ``#/$defs/X`` replaced by the definition."""
    defs = schema.get("$defs", {})

    def walk(node: Any, depth: int = 0) -> Any:
        if depth > 32:
            raise ValueError("schema nests too deeply (a recursive model?)")
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[-1]
                merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
                return walk(merged, depth + 1)
            return {k: walk(v, depth + 1) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(item, depth + 1) for item in node]
        return node

    return walk(copy.deepcopy(schema))  # type: ignore[no-any-return]


def _is_object(node: dict[str, Any]) -> bool:
    return node.get("type") == "object" or "properties" in node


def openai_strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Parameters for ``{"type": "function", "function": {..., "strict": true}}``."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {
            key: {name: walk(prop) for name, prop in value.items()}
            if key == "properties"
            else walk(value)
            for key, value in node.items()
            if key not in _OPENAI_UNSUPPORTED
        }
        length = _length_note(node)
        if length:
            description = str(out.get("description", "")).rstrip(". ")
            out["description"] = f"{description} ({length})".lstrip()
        if _is_object(out):
            out["type"] = "object"
            props = out.setdefault("properties", {})
            required = set(out.get("required", []))
            for name, prop in list(props.items()):
                if name not in required and not _nullable(prop):
                    props[name] = {"anyOf": [prop, {"type": "null"}]}
            out["required"] = list(props)
            out["additionalProperties"] = False
        return out

    return walk(_inline_refs(model.model_json_schema()))  # type: ignore[no-any-return]


def nulls_as_absent(model: type[BaseModel], args: Any) -> Any:
    """``args`` without the ``null`` values strict function calling puts in optional,
    non-nullable properties (``openai_strict_schema`` lists every property as required
    and makes the optional ones nullable, so a strict model sends ``null`` for "left
    out"); the tool's own schema, which validates them, wants such properties absent.
    Nested objects likewise; properties the tool declares nullable keep their ``null``."""
    return _drop_nulls(_validation_schema(model), args)


@functools.lru_cache(maxsize=512)
def _validation_schema(model: type[BaseModel]) -> dict[str, Any]:
    return _inline_refs(model.model_json_schema())


def _drop_nulls(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, list):
        items = schema.get("items")
        return [_drop_nulls(items, v) for v in value] if isinstance(items, dict) else value
    if not isinstance(value, dict):
        return value
    for option in schema.get("anyOf", ()):  # an optional object: its object branch
        if isinstance(option, dict) and _is_object(option):
            schema = option
            break
    props = schema.get("properties")
    if not isinstance(props, dict):
        return value
    required = set(schema.get("required", ()))
    out: dict[str, Any] = {}
    for key, item in value.items():
        prop = props.get(key)
        if not isinstance(prop, dict):
            out[key] = item
        elif item is None and key not in required and not _nullable(prop):
            continue  # "left out", as a strict model says it
        else:
            out[key] = _drop_nulls(prop, item)
    return out


def _length_note(node: dict[str, Any]) -> str:
    low, high = node.get("minLength"), node.get("maxLength")
    if low is not None and high is not None:
        return f"{low} to {high} characters"
    if high is not None:
        return f"at most {high} characters"
    if low is not None:
        return f"at least {low} characters"
    return ""


def _nullable(prop: dict[str, Any]) -> bool:
    options = prop.get("anyOf", [])
    kind = prop.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(isinstance(o, dict) and o.get("type") == "null" for o in options)


def gemini_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Parameters for a Gemini ``FunctionDeclaration`` (OpenAPI-subset schema)."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        options = node.get("anyOf")
        if options is not None:
            non_null = [o for o in options if o.get("type") != "null"]
            if len(non_null) == 1:
                merged = {**non_null[0], **{k: v for k, v in node.items() if k != "anyOf"}}
                out = walk(merged)
                if len(non_null) != len(options):
                    out["nullable"] = True
                return out
        out = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {name: walk(prop) for name, prop in value.items()}
            elif key in _GEMINI_ALLOWED:
                out[key] = walk(value)
            elif key == "exclusiveMinimum":
                out["minimum"] = value
            elif key == "exclusiveMaximum":
                out["maximum"] = value
        if "properties" in out:
            out["type"] = "object"
        return out

    return walk(_inline_refs(model.model_json_schema()))  # type: ignore[no-any-return]


def openai_strict_problems(schema: dict[str, Any]) -> list[str]:
    """What makes ``schema`` unacceptable to OpenAI strict mode (empty: acceptable)."""
    problems: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")
            return
        if not isinstance(node, dict):
            return
        for key in node:
            if key in _OPENAI_UNSUPPORTED or key in ("$ref", "$defs"):
                problems.append(f"{where}: unsupported keyword {key!r}")
        if _is_object(node):
            if node.get("additionalProperties") is not False:
                problems.append(f"{where}: objects need additionalProperties false")
            props = node.get("properties", {})
            if set(node.get("required", [])) != set(props):
                problems.append(f"{where}: every property must be required")
            for name, prop in props.items():
                walk(prop, f"{where}.{name}")
        for key in ("items", "anyOf"):
            if key in node:
                walk(node[key], f"{where}.{key}")

    if schema.get("type") != "object":
        problems.append("the top level must be an object")
    walk(schema, "$")
    return problems


def gemini_problems(schema: dict[str, Any]) -> list[str]:
    """What makes ``schema`` unacceptable as Gemini function parameters."""
    problems: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")
            return
        if not isinstance(node, dict):
            return
        for key in node:
            if key not in _GEMINI_ALLOWED:
                problems.append(f"{where}: unsupported keyword {key!r}")
        if node.get("type") == "null" or isinstance(node.get("type"), list):
            problems.append(f"{where}: use nullable, not a null type")
        if "type" not in node and "anyOf" not in node:
            problems.append(f"{where}: every schema needs a type")
        for name, prop in node.get("properties", {}).items():
            walk(prop, f"{where}.{name}")
        for key in ("items", "anyOf"):
            if key in node:
                walk(node[key], f"{where}.{key}")

    if schema.get("type") != "object":
        problems.append("the top level must be an object")
    walk(schema, "$")
    return problems
