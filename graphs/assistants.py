"""Assistants: configurations of a graph (model, tools, scopes, limits, prompt version).

Each graph has a default assistant of the same name; settings add more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graphs.registry import GraphRegistry, InvalidOptions


class AssistantNotFound(LookupError):
    pass


class AssistantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assistant_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    graph_id: str
    name: str | None = None
    description: str | None = None
    model: str | None = None
    """Model spec or alias; None: the default model from settings."""
    tools: list[str] | None = None
    """Tools this assistant may use; None: every registered tool."""
    allowed_scopes: list[str] | None = None
    """Narrows the caller's scopes; None: no narrowing."""
    limits: dict[str, Any] = Field(default_factory=dict)
    prompt_version: str | None = None
    """Pinned prompt version for new threads; None: the newest."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Graph-specific options (e.g. the planner's ``{"review_plan": true}``), checked against
    the graph's options model when the assistant is configured, created or changed."""


class AssistantCatalog:
    def __init__(self, assistants: Mapping[str, AssistantConfig]) -> None:
        self._assistants = dict(assistants)

    @classmethod
    def build(
        cls, graphs: GraphRegistry, configured: Mapping[str, Mapping[str, Any]]
    ) -> AssistantCatalog:
        """Default assistants for every graph, plus the configured ones.

        Raises:
            ValueError: a configured assistant is malformed or names an unknown graph.
        """
        assistants = {
            entry.graph_id: AssistantConfig(assistant_id=entry.graph_id, graph_id=entry.graph_id)
            for entry in graphs
        }
        for assistant_id, raw in configured.items():
            try:
                config = AssistantConfig.model_validate({"assistant_id": assistant_id, **raw})
            except ValidationError as exc:
                raise ValueError(f"assistant {assistant_id!r} is malformed: {exc}") from exc
            if config.graph_id not in graphs.ids():
                raise ValueError(
                    f"assistant {assistant_id!r} names unknown graph {config.graph_id!r}"
                )
            try:
                graphs.get(config.graph_id).check_options(config.options)
            except InvalidOptions as exc:
                raise ValueError(f"assistant {assistant_id!r}: {exc}") from None
            assistants[assistant_id] = config
        return cls(assistants)

    def get(self, assistant_id: str) -> AssistantConfig:
        """Raises:
        AssistantNotFound: no such assistant."""
        try:
            return self._assistants[assistant_id]
        except KeyError:
            known = ", ".join(sorted(self._assistants))
            raise AssistantNotFound(
                f"there is no assistant {assistant_id!r}; assistants: {known}"
            ) from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._assistants[key] for key in sorted(self._assistants))
