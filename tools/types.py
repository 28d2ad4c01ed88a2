"""What other packages may import from tools: tool declarations, calls, results, errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from identity import Principal

Risk = Literal["read", "write", "destructive"]
RISKS: tuple[Risk, ...] = ("read", "write", "destructive")
ApprovalRule = Literal["never", "always", "when_untrusted"]
ApprovalPredicate = Callable[[BaseModel], bool]
Trust = Literal["trusted", "untrusted"]
OutcomeStatus = Literal["ok", "denied", "approval_required", "failed"]
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
APPROVAL_ARG = "approval_id"
"""The reserved argument external clients repeat a call with once it was approved."""

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]


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
    session whose transaction also writes the ledger row.

    ``tainted`` tells tools that record content (notes, tickets) that the run has read
    untrusted content, so what they write is marked untrusted for later readers.
    A handler calls :meth:`mark_untrusted` when what it returns came from an untrusted
    place even though the tool's source is trusted (a note that a tainted run wrote).
    """

    principal: Principal
    session: AsyncSession
    thread_id: str | None = None
    run_id: str | None = None
    tainted: bool = False
    progress: ProgressCallback | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    """Stable for one logical call (derived from its ledger key), for downstream systems
    that deduplicate (attached MCP servers get it); None for unrecorded calls."""

    def mark_untrusted(self) -> None:
        self.flags["untrusted"] = True

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Tell the caller how far a long tool got (MCP progress notifications)."""
        if self.progress is not None:
            await self.progress(progress, total, message)


Handler = Callable[[ToolContext, Any], Awaitable[BaseModel]]
DryRunHandler = Callable[[ToolContext, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool.

    ``transactional`` tools do all their effects through ``ctx.session``: the
    effect and its ledger row commit together, so a replay after a crash returns
    the recorded result and never acts twice.

    ``source`` names where the tool's output comes from (``workspace``, ``web``,
    ``files``, ``documents``, ``external``...); whether that source is trusted is
    configuration (:class:`tools.trust.TrustConfig`), not a property of the tool.
    ``dry_run`` says what a call would do without touching anything (reads only);
    approvals show it to the reviewer. ``taint_exempt`` lets a write tool run without
    approval after untrusted content was read (its own approval rule still applies).
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
    source: str = "workspace"
    dry_run: DryRunHandler | None = None
    title: str | None = None
    open_world: bool = False
    taint_exempt: bool = False
    max_output_chars: int = 100_000

    def __post_init__(self) -> None:
        if not TOOL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {TOOL_NAME.pattern}")
        if self.risk not in RISKS:
            raise ValueError(f"tool {self.name!r}: risk must be one of {RISKS}, not {self.risk!r}")
        if isinstance(self.approval, str) and self.approval not in (
            "never",
            "always",
            "when_untrusted",
        ):
            raise ValueError(f"tool {self.name!r}: unknown approval rule {self.approval!r}")
        if self.timeout_seconds <= 0:
            raise ValueError(f"tool {self.name!r}: timeout_seconds must be positive")

    @property
    def side_effecting(self) -> bool:
        return self.risk != "read"

    @property
    def supports_dry_run(self) -> bool:
        return self.dry_run is not None

    @property
    def may_need_approval(self) -> bool:
        """Whether some call of this tool can need a human's approval (so an external
        client may have to repeat it with ``approval_id``)."""
        return self.side_effecting or self.approval != "never"

    @property
    def display_title(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    def approval_label(self) -> str:
        return self.approval if isinstance(self.approval, str) else "predicate"

    def input_schema(self) -> dict[str, Any]:
        """The input model's JSON schema (computed once; treat it as read-only)."""
        cached = self.__dict__.get("_input_schema")
        if cached is None:
            cached = self.input_model.model_json_schema()
            object.__setattr__(self, "_input_schema", cached)
        return cached  # type: ignore[no-any-return]

    def output_schema(self) -> dict[str, Any]:
        """The output model's JSON schema (an object schema; computed once)."""
        cached = self.__dict__.get("_output_schema")
        if cached is None:
            cached = self.output_model.model_json_schema(mode="serialization")
            object.__setattr__(self, "_output_schema", cached)
        return cached  # type: ignore[no-any-return]

    def mcp_annotations(self) -> dict[str, bool]:
        """MCP tool annotations, all four set from the risk (clients assume the worst
        for unset ones: a read tool without hints gets prompted as destructive)."""
        return {
            "readOnlyHint": self.risk == "read",
            "destructiveHint": self.risk == "destructive",
            "idempotentHint": self.idempotent or self.risk == "read",
            "openWorldHint": self.open_world,
        }


def canonical_json(value: Any) -> str:
    """One spelling of a JSON value: sorted keys, no spaces (what hashes are taken of)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def args_hash(tool: str, args: BaseModel | dict[str, Any]) -> str:
    """The digest an approval is bound to: the tool name and its validated arguments."""
    data = args.model_dump(mode="json") if isinstance(args, BaseModel) else args
    return hashlib.sha256(canonical_json({"tool": tool, "args": data}).encode()).hexdigest()


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

    def idempotency_key(self) -> str:
        """The key as one opaque string (what downstream systems deduplicate on)."""
        raw = canonical_json([self.thread_id, self.task_id, self.tool_call_id])
        return "rg-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class ApprovalTicket:
    """A pending approval, as returned to a caller whose call needs one."""

    approval_id: str
    tool: str
    risk: Risk
    reason: str
    args: dict[str, Any]
    args_hash: str
    expires_at: datetime
    preview: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "approval_id": self.approval_id,
            "tool": self.tool,
            "risk": self.risk,
            "reason": self.reason,
            "args": self.args,
            "args_hash": self.args_hash,
            "expires_at": self.expires_at.isoformat(),
            "preview": self.preview,
        }


@dataclass
class ToolOutcome:
    """The result of one call through the executor.

    ``status``: ``ok``; ``denied`` (the gate refused, or the approval given does not
    hold); ``approval_required`` (``approval`` says which id a reviewer must approve);
    ``failed`` (the tool ran and failed, timed out or is in doubt).
    """

    call: ToolCall
    ok: bool
    output: dict[str, Any] | None = None
    error: ToolError | None = None
    replayed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    status: OutcomeStatus | None = None
    approval: ApprovalTicket | None = None
    trusted: bool = True
    truncated: bool = False

    def __post_init__(self) -> None:
        if self.status is None:
            self.status = "ok" if self.ok else "failed"

    def content(self) -> str:
        """Text for the model: the output as JSON, or the error with its code."""
        if self.ok:
            return json.dumps(self.output, ensure_ascii=False, default=str)
        assert self.error is not None
        return f"Error ({self.error.code}): {self.error.message}"
