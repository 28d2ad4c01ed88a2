"""Every tool call, from graphs and (later) MCP clients: gate → ledger → run.

Transactional (SQL) tools run inside the transaction that writes their ledger
row, so an effect and its record commit together: exactly once. Other
side-effecting tools record ``started`` first; a replay that finds a call
started but never finished reports it as in doubt instead of repeating it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from identity import Principal
from store import Database
from tools import ledger
from tools.policy import ToolPolicy
from tools.types import CallKey, ToolCall, ToolContext, ToolError, ToolOutcome, ToolSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallContext:
    """Where a call happens. ``key`` is None for calls outside a checkpointed run."""

    key: CallKey | None = None
    run_id: str | None = None
    approved_by: str | None = None
    allowed_scopes: frozenset[str] | None = None
    tainted: bool = False


class ToolExecutor:
    def __init__(self, db: Database, policy: ToolPolicy) -> None:
        self.db = db
        self.policy = policy

    @property
    def registry(self):  # type: ignore[no-untyped-def]
        return self.policy.registry

    async def execute(
        self, call: ToolCall, principal: Principal, context: CallContext
    ) -> ToolOutcome:
        """Gate, record and run one call. Never raises for tool failures: the outcome
        carries the error for the caller to show the model or the user."""
        decision = self.policy.check(
            call, principal, allowed_scopes=context.allowed_scopes, tainted=context.tainted
        )
        if decision.verdict == "deny":
            assert decision.error is not None
            return ToolOutcome(call, ok=False, error=decision.error)
        if decision.verdict == "approve" and context.approved_by is None:
            return ToolOutcome(
                call,
                ok=False,
                error=ToolError("approval_required", f"{decision.reason}; ask a reviewer"),
            )
        assert decision.tool is not None and decision.args is not None
        tool, args = decision.tool, decision.args
        if not tool.side_effecting or context.key is None:
            return await self._run_unrecorded(call, tool, args, principal, context)
        if tool.transactional:
            return await self._run_transactional(call, tool, args, principal, context)
        return await self._run_at_least_once(call, tool, args, principal, context)

    async def execute_many(
        self, calls: Iterable[ToolCall], principal: Principal, context_for: dict[str, CallContext]
    ) -> list[ToolOutcome]:
        return [await self.execute(call, principal, context_for[call.id]) for call in calls]

    async def _invoke(self, tool: ToolSpec, ctx: ToolContext, args: BaseModel) -> dict:
        try:
            async with asyncio.timeout(tool.timeout_seconds):  # no extra task, unlike wait_for
                output = await tool.handler(ctx, args)
        except ToolError:
            raise
        except TimeoutError as exc:
            raise ToolError(
                "timeout", f"{tool.name} did not finish within {tool.timeout_seconds:g} s"
            ) from exc
        except Exception as exc:
            log.exception("tool %s failed", tool.name)
            raise ToolError("tool_failed", f"{tool.name} failed: {exc}") from exc
        return tool.output_model.model_validate(output).model_dump(mode="json")

    async def _run_unrecorded(
        self,
        call: ToolCall,
        tool: ToolSpec,
        args: BaseModel,
        principal: Principal,
        context: CallContext,
    ) -> ToolOutcome:
        try:
            opener = self.db.transaction() if tool.side_effecting else self.db.session()
            async with opener as session:
                ctx = self._context(principal, session, context)
                output = await self._invoke(tool, ctx, args)
        except ToolError as error:
            return ToolOutcome(call, ok=False, error=error)
        return ToolOutcome(call, ok=True, output=output)

    async def _run_transactional(
        self,
        call: ToolCall,
        tool: ToolSpec,
        args: BaseModel,
        principal: Principal,
        context: CallContext,
    ) -> ToolOutcome:
        """Effect and ledger row in one transaction: a replay finds the row and returns
        the recorded outcome without running the tool again. A failing tool's effects
        roll back with its transaction; the failure is then recorded on its own."""
        key = context.key
        assert key is not None
        record: dict[str, Any] = {
            "args": args.model_dump(mode="json"),
            "run_id": context.run_id,
            "approved_by": context.approved_by,
        }
        try:
            async with self.db.transaction() as session:
                recorded = await ledger.find(session, key)
                if recorded is not None:
                    return _replayed(call, principal, recorded)
                output = await self._invoke(tool, self._context(principal, session, context), args)
                row = ledger.new_row(key, call, principal, status="started", **record)
                ledger.complete(row, result=output)
                session.add(row)
        except ToolError as error:
            try:
                async with self.db.transaction() as session:
                    row = ledger.new_row(key, call, principal, status="started", **record)
                    ledger.complete(row, error=f"{error.code}: {error.message}")
                    session.add(row)
            except IntegrityError:  # recorded meanwhile by another attempt
                return await self._recorded(call, principal, key)
            return ToolOutcome(call, ok=False, error=error)
        except IntegrityError:
            return await self._recorded(call, principal, key)
        return ToolOutcome(call, ok=True, output=output)

    async def _recorded(self, call: ToolCall, principal: Principal, key: CallKey) -> ToolOutcome:
        async with self.db.session() as session:
            recorded = await ledger.find(session, key)
        assert recorded is not None, "the ledger key conflicted but no row exists"
        return _replayed(call, principal, recorded)

    async def _run_at_least_once(
        self,
        call: ToolCall,
        tool: ToolSpec,
        args: BaseModel,
        principal: Principal,
        context: CallContext,
    ) -> ToolOutcome:
        assert context.key is not None
        async with self.db.transaction() as session:
            recorded = await ledger.find(session, context.key)
            if recorded is not None:
                return _replayed(call, principal, recorded)
            session.add(
                ledger.new_row(
                    context.key,
                    call,
                    principal,
                    args=args.model_dump(mode="json"),
                    status="started",
                    run_id=context.run_id,
                    approved_by=context.approved_by,
                )
            )
        error: ToolError | None = None
        output = None
        try:
            async with self.db.session() as session:
                output = await self._invoke(tool, self._context(principal, session, context), args)
        except ToolError as exc:
            error = exc
        async with self.db.transaction() as session:
            row = await ledger.find(session, context.key)
            assert row is not None
            if error is None:
                ledger.complete(row, result=output)
            else:
                ledger.complete(row, error=f"{error.code}: {error.message}")
        if error is not None:
            return ToolOutcome(call, ok=False, error=error)
        return ToolOutcome(call, ok=True, output=output)

    @staticmethod
    def _context(principal: Principal, session, context: CallContext) -> ToolContext:  # type: ignore[no-untyped-def]
        return ToolContext(
            principal=principal,
            session=session,
            thread_id=context.key.thread_id if context.key else None,
            run_id=context.run_id,
        )


def _replayed(call: ToolCall, principal: Principal, row: ledger.LedgerRow) -> ToolOutcome:
    if (row.tool, row.tenant) != (call.name, principal.tenant):
        return ToolOutcome(
            call,
            ok=False,
            error=ToolError(
                "ledger_conflict",
                f"call id {call.id} was already used for another call; use a fresh call id",
            ),
        )
    if row.status == "succeeded":
        return ToolOutcome(call, ok=True, output=row.result, replayed=True)
    if row.status == "failed":
        code, _, message = (row.error or "tool_failed: unknown").partition(": ")
        return ToolOutcome(call, ok=False, error=ToolError(code, message), replayed=True)
    return ToolOutcome(
        call,
        ok=False,
        error=ToolError(
            "in_doubt",
            f"{call.name} was started before a crash and may have taken effect; "
            "it is not repeated automatically: check its effect, then ask again if needed",
        ),
        replayed=True,
    )
