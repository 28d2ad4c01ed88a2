"""The run context handed to graph nodes (LangGraph ``Runtime.context``): the run's
dependencies, never checkpointed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import Runnable

from graphs.limits import Limits
from graphs.prompts import Prompt
from identity import Principal
from memory.nodes import AgentMemory
from memory.thread_pseudonyms import RunPseudonyms
from tools import ToolExecutor


@dataclass(frozen=True)
class RunContext:
    run_id: str
    principal: Principal
    """The requester: the run acts as this principal, re-checked on every call."""
    decided_by: str | None
    """Who answered the pending interrupt in this run (None when nothing was decided)."""
    model: Runnable[Any, Any]
    """The chat model, already bound to this assistant's tool definitions."""
    tools: ToolExecutor
    tool_names: tuple[str, ...]
    allowed_scopes: frozenset[str] | None
    limits: Limits
    deadline: float
    """Wall-clock (time.time()) deadline of this run."""
    prompt: Prompt | None
    options: Mapping[str, Any] = field(default_factory=dict)
    """Graph-specific assistant options (e.g. the planner's ``review_plan``)."""
    memory: AgentMemory | None = None
    """Long-term memory, set when the assistant's ``memory`` option is on."""
    pseudonyms: RunPseudonyms = field(default_factory=RunPseudonyms)
    """The run's minimisation policy and pseudonym maps (every run; the runner passes the
    ``privacy_minimise`` setting): what the user typed reaches the provider minimised and
    the replies and events are restored with them. Shared by a planner's step agents."""
