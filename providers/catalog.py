"""The model catalog: prices and capabilities per model, from the shipped ``prices.json``
(public list prices) optionally overlaid by an operator's file.

Prices are USD per 1M tokens (input, cached input, output). A model is looked up by its
exact name, then by the longest catalog name it starts with, so dated snapshots
(``gpt-4o-mini-2024-07-18``) find their family's entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.errors import ModelSpecError

SHIPPED_PRICES = Path(__file__).with_name("prices.json")
UNKNOWN_CONTEXT_WINDOW = 128_000
"""Assumed window of a model the catalog does not know (openai-compatible servers)."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: float = Field(default=0.0, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    output: float = Field(default=0.0, ge=0)
    context_window: int = Field(default=UNKNOWN_CONTEXT_WINDOW, gt=0)
    max_output_tokens: int = Field(default=4096, gt=0)
    tools: bool = True
    structured_output: bool = True
    web_search: bool = False


@dataclass(frozen=True)
class Capabilities:
    """What a deployment can serve; the router never sends a call it cannot."""

    tools: bool = True
    structured_output: bool = True
    web_search: bool = False
    context_window: int = UNKNOWN_CONTEXT_WINDOW
    max_output_tokens: int = 4096


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens."""

    input: float = 0.0
    cached_input: float = 0.0
    output: float = 0.0
    known: bool = False
    """False: the model is not in the price table, so its cost reads 0."""

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """Cost in USD; ``cached_tokens`` are the part of ``input_tokens`` read from cache."""
        cached = min(max(cached_tokens, 0), input_tokens)
        fresh = input_tokens - cached
        total = fresh * self.input + cached * self.cached_input + output_tokens * self.output
        return round(total / 1_000_000, 8)


@dataclass(frozen=True)
class ModelInfo:
    price: Price
    capabilities: Capabilities


class Catalog:
    """Prices and capabilities by model name."""

    def __init__(self, entries: dict[str, ModelInfo]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, override: Path | None = None) -> Catalog:
        """The shipped table, with ``override``'s models replacing or adding entries.

        Raises:
            ModelSpecError: a price file is missing, not JSON, or has a malformed entry.
        """
        entries = _read(SHIPPED_PRICES)
        if override is not None:
            entries.update(_read(override))
        return cls(entries)

    def lookup(self, model: str) -> ModelInfo | None:
        if model in self._entries:
            return self._entries[model]
        prefixes = [name for name in self._entries if model.startswith(name)]
        return self._entries[max(prefixes, key=len)] if prefixes else None

    def info(self, kind: str, model: str) -> ModelInfo:
        """What the catalog knows of ``model``; scripted models are free and capable,
        unknown models get conservative defaults and price 0 (``known=False``)."""
        if kind == "scripted":
            return ModelInfo(Price(known=True), Capabilities(context_window=1_000_000))
        found = self.lookup(model)
        return found if found is not None else ModelInfo(Price(), Capabilities())


def with_overrides(info: ModelInfo, overrides: dict[str, Any]) -> ModelInfo:
    """``info`` with per-deployment capability and price settings from RELAYGRAPH_MODELS.

    Raises:
        ModelSpecError: an unknown or malformed override.
    """
    caps = {k: v for k, v in overrides.items() if k in Capabilities.__dataclass_fields__}
    prices = {k: v for k, v in overrides.items() if k in ("input", "cached_input", "output")}
    unknown = set(overrides) - set(caps) - set(prices)
    if unknown:
        allowed = sorted([*Capabilities.__dataclass_fields__, "input", "cached_input", "output"])
        raise ModelSpecError(
            f"unknown deployment setting(s) {sorted(unknown)}; allowed: spec, {', '.join(allowed)}"
        )
    try:
        capabilities = replace(info.capabilities, **caps)
        price = replace(info.price, **prices, known=True) if prices else info.price
    except TypeError as exc:
        raise ModelSpecError(f"malformed deployment setting: {exc}") from exc
    return ModelInfo(price, capabilities)


def _read(path: Path) -> dict[str, ModelInfo]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        models = raw["models"]
        parsed = {name: _Entry.model_validate(entry) for name, entry in models.items()}
    except FileNotFoundError as exc:
        raise ModelSpecError(f"price file {path} does not exist") from exc
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ModelSpecError(
            f'price file {path} is not a JSON object with "models": {{name: prices}}: {exc}'
        ) from exc
    except ValidationError as exc:
        raise ModelSpecError(f"price file {path} has a malformed entry: {exc}") from exc
    return {
        name: ModelInfo(
            Price(
                entry.input,
                entry.cached_input if entry.cached_input is not None else entry.input,
                entry.output,
                known=True,
            ),
            Capabilities(
                tools=entry.tools,
                structured_output=entry.structured_output,
                web_search=entry.web_search,
                context_window=entry.context_window,
                max_output_tokens=entry.max_output_tokens,
            ),
        )
        for name, entry in parsed.items()
    }
