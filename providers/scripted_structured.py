"""Structured answers for the offline demo model: a schema-valid object derived from the
request alone, deterministically (the same request always gets the same object).

When a graph asks the demo model for structured output (``bind_tools([Schema],
tool_choice=name)``, as ``providers.structured`` does), the model calls that tool with
arguments built from the tool's JSON schema:

- strings come from the request (the text after ``Request:`` in the last user message, or
  the whole message) shaped by the field's name (``summary``, ``goal``, ``answer``,
  ``title``...), within ``minLength``/``maxLength``;
- an enum takes the first option named in the request, else a neutral or concluding one
  (``finish``, ``other``, ``normal``...), else the first, so a replanner finishes;
- arrays get ``minItems`` items (one for arrays of objects, e.g. a plan's steps); keyword
  lists (``search_terms``, ``keywords``) get the request's longest words;
- optional fields keep their defaults, except keyword lists and text fields whose default
  is null.

It is a demo, not a model: plans have one step, classifications follow keywords.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

_PREFERRED_CHOICES = ("finish", "done", "complete", "other", "normal", "medium", "general")
_KEYWORD_FIELDS = ("search_terms", "keywords", "terms", "queries", "tags")
_STOPWORDS = frozenset(
    "a an and are about for from have into just more need please that the their there this "
    "what when where which with would your my our you can could should will help".split()
)
_MAX_DEPTH = 8


def request_text(messages: Sequence[BaseMessage]) -> str:
    """The request a structured call is about: the ``Request:`` block of the last user
    message (the planner's and triage's prompts), else that message's text."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            text = message.text.strip()
            found = re.search(r"Request:\s*\n(.+?)(?:\n\s*\n|$)", text, re.S)
            return (found.group(1) if found else text).strip() or "the request"
    return "the request"


def structured_arguments(schema: dict[str, Any], messages: Sequence[BaseMessage]) -> Any:
    """Arguments for the tool whose JSON-schema ``parameters`` is ``schema``."""
    request = request_text(messages)
    return _Synthesiser(schema, request).value(schema, "", 0)


class _Synthesiser:
    def __init__(self, root: dict[str, Any], request: str) -> None:
        self.root = root
        self.request = request
        self.lowered = request.lower()

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.resolve(merged)
        if "allOf" in schema and len(schema["allOf"]) == 1:
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            return self.resolve({**schema["allOf"][0], **rest})
        return schema

    def value(self, schema: dict[str, Any], name: str, depth: int) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.choice(list(schema["enum"]))
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            concrete = [o for o in options if self.resolve(o).get("type") != "null"]
            return self.value(concrete[0] if concrete else options[0], name, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if depth > _MAX_DEPTH:
            return None
        if kind == "object" or "properties" in schema:
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind == "string":
            return self.string(schema, name)
        if kind == "integer":
            return int(self.number(schema, integer=True))
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return self.string(schema, name)

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        required = set(schema.get("required") or [])
        result: dict[str, Any] = {}
        for key, prop in (schema.get("properties") or {}).items():
            resolved = self.resolve(prop)
            if key not in required and key not in _KEYWORD_FIELDS:
                default = resolved.get("default")
                if "default" in resolved and not (default is None and _is_text_field(key)):
                    continue  # pydantic fills the default
                if "default" not in resolved and not _is_text_field(key):
                    continue
            result[key] = self.value(prop, key, depth + 1)
        return result

    def array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        items = self.resolve(schema.get("items") or {})
        low = int(schema.get("minItems") or 0)
        high = schema.get("maxItems")
        if name in _KEYWORD_FIELDS and items.get("type", "string") == "string":
            words = self.keywords()
            count = max(low, min(len(words), 3))
            count = min(count, int(high)) if high is not None else count
            return [words[i % len(words)] if words else self.request for i in range(count)]
        count = max(low, 1 if items.get("type") == "object" or "properties" in items else 0)
        if high is not None:
            count = min(count, int(high))
        return [self.value(items, name, depth + 1) for _ in range(count)]

    def choice(self, options: list[Any]) -> Any:
        for option in options:
            text = str(option).lower().replace("_", " ")
            if re.search(rf"\b{re.escape(text)}\b", self.lowered):
                return option
        for preferred in _PREFERRED_CHOICES:
            if preferred in options:
                return preferred
        return options[0]

    def number(self, schema: dict[str, Any], *, integer: bool = False) -> float:
        """A number inside the schema's bounds: their midpoint, or next to the one bound."""
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if integer:
            if low is not None:
                low = math.floor(low) + 1 if "minimum" not in schema else math.ceil(low)
            if high is not None:
                high = math.ceil(high) - 1 if "maximum" not in schema else math.floor(high)
        if low is not None and high is not None:
            middle = (float(low) + float(high)) / 2
            return float(math.floor(middle)) if integer else middle
        if low is not None:
            return float(low) if integer or "minimum" in schema else float(low) + 1
        if high is not None:
            return float(high) if integer or "maximum" in schema else float(high) - 1
        return 1.0

    def string(self, schema: dict[str, Any], name: str) -> str:
        request = " ".join(self.request.split())
        field = name.lower()
        if field in ("answer", "final_answer", "result"):
            text = f"Offline demo answer to: {request} (see [step 1])."
        elif field in ("done_when", "criteria", "done_criteria"):
            text = "The step's tool results are reported."
        elif field in ("reply", "response", "message"):
            text = f"Thank you for your message. We are looking into it: {request}"
        elif "title" in field or field in ("name", "subject"):
            text = request if len(request) <= 80 else request[:77] + "..."
        elif field in ("reason", "rationale", "why"):
            text = "Derived offline from the request by the demo model."
        else:  # goal, summary, body, description, query ...
            text = request
        low = int(schema.get("minLength") or 0)
        high = schema.get("maxLength")
        if len(text) < low:
            text = text + "." * (low - len(text))
        if high is not None and len(text) > int(high):
            text = text[: int(high)]
        return text

    def keywords(self) -> list[str]:
        words = re.findall(r"[A-Za-z][A-Za-z0-9-]{3,}", self.request)
        seen: list[str] = []
        for word in words:
            lowered = word.lower()
            if lowered not in _STOPWORDS and lowered not in seen:
                seen.append(lowered)
        return sorted(seen, key=lambda w: (-len(w), seen.index(w)))


def _is_text_field(name: str) -> bool:
    return name.lower() in ("answer", "final_answer", "summary", "reply", "result")
