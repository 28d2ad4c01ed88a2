"""What the adapters' fixture tools share: argument-less input, a free-form result, and
the ToolSpec of a tool that acts on an in-memory world (never the store's transaction)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from tools import ToolSpec


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Result(BaseModel):
    result: Any


def fixture_tool(
    name: str, handler: Any, model: type[BaseModel], risk: str, text: str, **extra: Any
) -> ToolSpec:
    """A fixture tool with a ``Result`` output; ``tickets:read``/``tickets:write`` stand in
    for a domain scope. ``extra`` sets further ToolSpec fields (source, approval, ...)."""
    return ToolSpec(
        name=name,
        description=text,
        input_model=model,
        output_model=Result,
        handler=handler,
        risk=risk,  # type: ignore[arg-type]
        scope="tickets:write" if risk != "read" else "tickets:read",
        transactional=False,
        **extra,
    )
