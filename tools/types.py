"""What other packages may import from tools: tool declarations, calls, results, errors."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from identity import Principal

Risk = Literal["read", "write", "destructive"]
ApprovalRule = Literal["never", "always", "when_untrusted"]
ApprovalPredicate = Callable[[BaseModel], bool]
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ToolError(Exception):
    """A tool call failed in a way the caller (a model or a person) can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


@dataclass(frozen=True)
class ToolContext:
    """What a tool handler may use: who is acting, where, and (for SQL tools) the
    session whose transaction also writes the ledger row."""

    principal: Principal
    session: AsyncSession
    thread_id: str | None = None
    run_id: str | None = None


Handler = Callable[[ToolContext, Any], Awaitable[BaseModel]]


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool.

    ``transactional`` tools do all their effects through ``ctx.session``: the
    effect and its ledger row commit together, so a replay after a crash returns
    the recorded result and never acts twice.
    """

    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    handler: Handler
    risk: Risk
    scope: str
    approval: ApprovalRule | ApprovalPredicate = "never"
    timeout_seconds: float = 30.0
    idempotent: bool = False
    transactional: bool = True
    trusted_output: bool = True

    def __post_init__(self) -> None:
        if not TOOL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {TOOL_NAME.pattern}")

    @property
    def side_effecting(self) -> bool:
        return self.risk != "read"

    def approval_label(self) -> str:
        return self.approval if isinstance(self.approval, str) else "predicate"

    def input_schema(self) -> dict[str, Any]:
        """The input model's JSON schema (computed once; treat it as read-only)."""
        cached = self.__dict__.get("_input_schema")
        if cached is None:
            cached = self.input_model.model_json_schema()
            object.__setattr__(self, "_input_schema", cached)
        return cached  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ToolCall:
    """A proposed call, as a model (or an MCP client) asked for it."""

    name: str
    args: dict[str, Any]
    id: str


@dataclass(frozen=True)
class CallKey:
    """The ledger key of a call: replaying the same key returns the recorded result."""

    thread_id: str
    task_id: str
    tool_call_id: str


@dataclass
class ToolOutcome:
    """The result of one call through the executor."""

    call: ToolCall
    ok: bool
    output: dict[str, Any] | None = None
    error: ToolError | None = None
    replayed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def content(self) -> str:
        """Text for the model: the output as JSON, or the error with its code."""
        if self.ok:
            return json.dumps(self.output, ensure_ascii=False, default=str)
        assert self.error is not None
        return f"Error ({self.error.code}): {self.error.message}"
