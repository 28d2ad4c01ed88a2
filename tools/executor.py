"""Every tool call, from graphs and MCP clients: gate → (approval) → ledger → run → audit.

Transactional (SQL) tools run inside the transaction that writes their ledger
row, so an effect and its record commit together: exactly once. Other
side-effecting tools record ``started`` first; a replay that finds a call
started but never finished reports it as in doubt instead of repeating it.
Within a run, the transaction that commits an effect (or records it started) first
checks that the run is still held by this execution's lease (``tools.fencing``): a
stale execution gets ``LeaseLostError`` and writes nothing.
Every attempt, refused ones included (a stale execution's fenced call too), appends one
entry to the audit chain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from identity import Principal
from store import Database
from tools import ledger
from tools.approvals import ApprovalError, ApprovalPolicy, ApprovalService, approve_command
from tools.audit import AuditLog, AuditRecord, audited_tool_name
from tools.fencing import LeaseLostError, current_lease, verify_lease
from tools.metrics import record_attempt
from tools.policy import PolicyDecision, ToolPolicy
from tools.registry import ToolRegistry
from tools.trust import TrustConfig
from tools.types import (
    ApprovalTicket,
    CallKey,
    ProgressCallback,
    ToolCall,
    ToolContext,
    ToolError,
    ToolOutcome,
    ToolSpec,
    args_hash,
)

log = logging.getLogger(__name__)
TRUNCATION_NOTE = "[truncated: {omitted} characters omitted; ask for less]"


@dataclass(frozen=True)
class CallContext:
    """Where a call happens. ``key`` is None for calls outside a checkpointed run."""

    key: CallKey | None = None
    run_id: str | None = None
    approved_by: str | None = None
    allowed_scopes: frozenset[str] | None = None
    tainted: bool = False
    via: str = "graph"
    approval_id: str | None = None
    progress: ProgressCallback | None = None


class ToolExecutor:
    def __init__(
        self,
        db: Database,
        policy: ToolPolicy,
        *,
        audit: AuditLog | None = None,
        approvals: ApprovalService | None = None,
        approval_policy: ApprovalPolicy | None = None,
        trust: TrustConfig | None = None,
        defer_read_audit: bool = False,
    ) -> None:
        """``defer_read_audit``: a successful read returns before its audit row commits
        (the row follows within moments, in order; the owner must ``audit.flush()``
        before exit, as ``runtime.system`` does). Off: every row is durable first."""
        self.db = db
        self.defer_read_audit = defer_read_audit
        self.policy = policy
        self.audit = audit or AuditLog(db)
        self.approvals = approvals or ApprovalService(db, self.audit, approval_policy)
        self.trust = trust or TrustConfig()

    @property
    def registry(self) -> ToolRegistry:
        return self.policy.registry

    def is_trusted(self, tool: ToolSpec) -> bool:
        """Whether output of ``tool`` is trusted in this deployment."""
        return self.trust.is_trusted(tool.source)

    def tools_for(
        self, principal: Principal, *, allowed_scopes: Iterable[str] | None = None
    ) -> list[ToolSpec]:
        """The tools ``principal`` may use (principal scopes ∩ ``allowed_scopes``)."""
        return self.policy.visible_tools(principal, allowed_scopes=allowed_scopes)

    async def execute(
        self, call: ToolCall, principal: Principal, context: CallContext
    ) -> ToolOutcome:
        """Gate, record, run and audit one call. Never raises for tool failures: the
        outcome carries the error for the caller to show the model or the user."""
        started = time.perf_counter()
        decision = self.policy.check(
            call, principal, allowed_scopes=context.allowed_scopes, tainted=context.tainted
        )
        if decision.verdict == "deny":
            return await self._refused(call, principal, context, decision, started)
        if decision.verdict == "approve" and context.approved_by is None:
            error = ToolError("approval_required", f"{decision.reason}; ask a reviewer")
            outcome = ToolOutcome(call, ok=False, error=error, status="approval_required")
            await self._audit(
                call, principal, context, outcome, started, decision="approval_required"
            )
            return outcome
        return await self._run(call, principal, context, decision, started)

    async def execute_many(
        self, calls: Iterable[ToolCall], principal: Principal, context_for: dict[str, CallContext]
    ) -> list[ToolOutcome]:
        return [await self.execute(call, principal, context_for[call.id]) for call in calls]

    async def call_external(
        self,
        principal: Principal,
        name: str,
        args: dict[str, Any],
        *,
        approval_id: str | None = None,
        allowed_scopes: Iterable[str] | None = None,
        tainted: bool = False,
        via: str = "mcp",
        idempotency_key: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """One call by a caller outside a graph (an MCP client, the API, the CLI).

        A call that needs approval comes back ``approval_required`` with a pending
        approval (id and dry-run preview); repeating it with ``approval_id`` once a
        reviewer approved runs it, once. ``idempotency_key`` makes a repeat by the same
        principal return the recorded result of a side-effecting call.
        """
        started = time.perf_counter()
        call = ToolCall(name, args, idempotency_key or f"ext_{secrets.token_hex(8)}")
        scopes = frozenset(allowed_scopes) if allowed_scopes is not None else None
        key = (
            CallKey(f"ext:{principal.tenant}:{principal.user}", "external", idempotency_key)
            if idempotency_key
            else None
        )
        context = CallContext(
            key=key,
            allowed_scopes=scopes,
            tainted=tainted,
            via=via,
            approval_id=approval_id,
            progress=progress,
        )
        decision = self.policy.check(call, principal, allowed_scopes=scopes, tainted=tainted)
        if decision.verdict == "deny":
            return await self._refused(call, principal, context, decision, started)
        if decision.verdict == "approve":
            assert decision.tool is not None and decision.args is not None
            digest = args_hash(decision.tool.name, decision.args)
            if approval_id is None:
                return await self._ask_approval(call, principal, context, decision, digest, started)
            try:
                await self._check_still_as_previewed(
                    approval_id, decision.tool, decision.args, digest, principal
                )
                approval = await self.approvals.consume(
                    approval_id, principal=principal, tool=decision.tool.name, args_hash=digest
                )
            except ApprovalError as error:
                outcome = ToolOutcome(call, ok=False, error=error, status="denied")
                await self._audit(call, principal, context, outcome, started, decision="deny")
                return outcome
            context = CallContext(
                key=key or CallKey(f"approval:{approval_id}", "external", approval_id),
                allowed_scopes=scopes,
                tainted=tainted,
                via=via,
                approval_id=approval_id,
                approved_by=approval.decided_by,
                progress=progress,
            )
        return await self._run(call, principal, context, decision, started)

    async def record_decision(
        self,
        call: ToolCall,
        principal: Principal,
        *,
        decided_by: str,
        decision: str,
        run_id: str | None = None,
        thread_id: str | None = None,
        note: str | None = None,
        error_code: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        """Audit a reviewer's decision on a graph interrupt (approvals run the call)."""
        await self.audit.append(
            AuditRecord(
                event="approval_decision",
                tenant=principal.tenant,
                actor=decided_by,
                via="graph",
                tool=call.name,
                decision=decision,
                status=decision,
                approver=decided_by,
                error_code=error_code,
                run_id=run_id,
                thread_id=thread_id,
                args=call.args,
                result=result if result is not None else ({"note": note} if note else None),
            )
        )

    async def record_stale_decision(
        self,
        call: ToolCall,
        principal: Principal,
        *,
        decided_by: str,
        decision: str,
        shown: dict[str, Any],
        current: dict[str, Any],
        run_id: str | None = None,
        thread_id: str | None = None,
    ) -> None:
        """Audit a graph interrupt's decision that was not carried out because the
        call's dry run changed after the reviewer saw it (the graph asks again): the
        interrupt's counterpart of an external approval refused as ``approval_stale``."""
        await self.record_decision(
            call,
            principal,
            decided_by=decided_by,
            decision="stale",
            run_id=run_id,
            thread_id=thread_id,
            error_code="approval_stale",
            result={
                "decided": decision,
                "shown": what_it_would(shown),
                "now": what_it_would(current),
            },
        )

    async def _check_still_as_previewed(
        self,
        approval_id: str,
        tool: ToolSpec,
        args: BaseModel,
        digest: str,
        principal: Principal,
    ) -> None:
        """The reviewer approved what the dry run showed (``delete note 4 ('Launch')``); if
        the target changed since (the note edited, the file replaced), the approval no
        longer covers what the call would do.

        Raises:
            ApprovalError: ``approval_stale`` when the dry run now shows something else.
        """
        if tool.dry_run is None:
            return
        try:
            approval = await self.approvals.get(approval_id, principal=principal)
        except ApprovalError:
            return  # consume() says what is wrong with it
        if approval.args_hash != digest or approval.tool != tool.name:
            return  # another call: consume() refuses it as such
        if approval.status != "approved":
            return  # pending, used, expired…: consume() says which
        if "preview_error" in approval.preview:
            return
        current = plain_preview(await self.preview(tool, args, principal))
        if not preview_changed(approval.preview, current):
            return
        raise ApprovalError(
            "approval_stale",
            f"approval {approval_id} was given for: {what_it_would(approval.preview)}; "
            f"the call would now: {what_it_would(current)}. "
            "Ask for a new approval (repeat the call without approval_id)",
        )

    async def preview(
        self, tool: ToolSpec, args: BaseModel, principal: Principal
    ) -> dict[str, Any]:
        """What a call would do, touching nothing: the tool's dry run in a session that
        is rolled back, or a plain description when the tool has none."""
        base = {"tool": tool.name, "risk": tool.risk, "args": args.model_dump(mode="json")}
        if tool.dry_run is None:
            return {**base, "would": tool.description}
        try:
            async with self.db.session() as session:
                ctx = ToolContext(principal=principal, session=session)
                async with asyncio.timeout(tool.timeout_seconds):
                    detail = await tool.dry_run(ctx, args)
                await session.rollback()
        except ToolError as error:
            return {**base, "would_fail": error.to_dict()}
        except Exception as exc:  # a preview must never block the approval itself
            log.warning("dry run of %s failed: %s", tool.name, exc)
            return {**base, "would": tool.description, "preview_error": str(exc)}
        return {**base, **detail}

    async def _ask_approval(
        self,
        call: ToolCall,
        principal: Principal,
        context: CallContext,
        decision: PolicyDecision,
        digest: str,
        started: float,
    ) -> ToolOutcome:
        tool, args = decision.tool, decision.args
        assert tool is not None and args is not None
        preview = await self.preview(tool, args, principal)
        approval = await self.approvals.request(
            principal=principal,
            tool=tool,
            args=args.model_dump(mode="json"),
            args_hash=digest,
            reason=decision.reason,
            preview=preview,
            via=context.via,
        )
        ticket = ApprovalTicket(
            approval_id=approval.approval_id,
            tool=tool.name,
            risk=tool.risk,
            reason=decision.reason,
            args=approval.args,
            args_hash=digest,
            expires_at=approval.expires_at,
            preview=preview,
        )
        error = ToolError(
            "approval_required",
            f"{decision.reason}. A reviewer must approve {approval.approval_id} "
            f"(`{approve_command(approval.approval_id, principal.tenant)}`); then repeat this call "
            f"with the same arguments and approval_id={approval.approval_id!r}. "
            f"It expires at {approval.expires_at:%Y-%m-%d %H:%M} UTC.",
        )
        outcome = ToolOutcome(
            call, ok=False, error=error, status="approval_required", approval=ticket
        )
        context = CallContext(
            allowed_scopes=context.allowed_scopes, via=context.via, approval_id=approval.approval_id
        )
        await self._audit(call, principal, context, outcome, started, decision="approval_required")
        return outcome

    async def _refused(
        self,
        call: ToolCall,
        principal: Principal,
        context: CallContext,
        decision: PolicyDecision,
        started: float,
    ) -> ToolOutcome:
        assert decision.error is not None
        outcome = ToolOutcome(call, ok=False, error=decision.error, status="denied")
        await self._audit(call, principal, context, outcome, started, decision="deny")
        return outcome

    async def _run(
        self,
        call: ToolCall,
        principal: Principal,
        context: CallContext,
        decision: PolicyDecision,
        started: float,
    ) -> ToolOutcome:
        assert decision.tool is not None and decision.args is not None
        tool, args = decision.tool, decision.args
        verdict = "approved" if context.approved_by else "allow"
        try:
            if not tool.side_effecting or context.key is None:
                outcome = await self._run_unrecorded(call, tool, args, principal, context)
            elif tool.transactional:
                outcome = await self._run_transactional(call, tool, args, principal, context)
            else:
                outcome = await self._run_at_least_once(call, tool, args, principal, context)
        except asyncio.CancelledError:
            cancelled = ToolOutcome(
                call, ok=False, error=ToolError("cancelled", "the caller cancelled the call")
            )
            await asyncio.shield(
                self._audit(call, principal, context, cancelled, started, decision=verdict)
            )
            raise
        except LeaseLostError as lost:
            # The effect's transaction rolled back; the refusal commits on its own, with the
            # stale lease, before the stale execution stops.
            fenced = ToolOutcome(call, ok=False, error=ToolError("lease_lost", str(lost)))
            lease = {"lease_owner": lost.lease.owner, "attempt": lost.lease.attempt}
            try:
                await asyncio.shield(
                    self._audit(
                        call, principal, context, fenced, started, decision="fenced", detail=lease
                    )
                )
            except Exception:  # the stale execution must still stop as fenced
                log.exception("audit: the fenced call of %s could not be recorded", call.name)
            raise
        if not self.is_trusted(tool):
            outcome.trusted = False
        if outcome.ok and outcome.output is not None:
            _truncate_output(outcome, tool.max_output_chars)
        await self._audit(call, principal, context, outcome, started, decision=verdict)
        return outcome

    async def _audit(
        self,
        call: ToolCall,
        principal: Principal,
        context: CallContext,
        outcome: ToolOutcome,
        started: float,
        *,
        decision: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append the attempt's row; ``detail`` is stored as the result of a failed one."""
        status: str = outcome.status or "failed"
        if outcome.ok and outcome.replayed:
            status = "replayed"
        elif (
            not outcome.ok
            and outcome.error is not None
            and outcome.error.code
            in (
                "timeout",
                "cancelled",
                "in_doubt",
                "lease_lost",
            )
        ):
            status = outcome.error.code
        tool = self.registry.get(call.name)
        record_attempt(
            # Names of unknown tools come from models and clients: keep them out of labels.
            tool=call.name if tool is not None else "(unknown)",
            decision=decision,
            status=status,
            via=context.via,
            started=started,
            error=outcome.error.code if outcome.error else None,
        )
        await self.audit.append(
            AuditRecord(
                event="tool_call",
                tenant=principal.tenant,
                actor=principal.user,
                via=context.via,
                tool=audited_tool_name(call.name),
                decision=decision,
                status=status,
                approver=context.approved_by,
                error_code=outcome.error.code if outcome.error else None,
                latency_ms=(time.perf_counter() - started) * 1000,
                run_id=context.run_id,
                thread_id=context.key.thread_id if context.key else None,
                approval_id=context.approval_id,
                args=call.args,
                result=outcome.output if outcome.ok else detail,
            ),
            # A read that was allowed and succeeded returns without waiting for its row's
            # commit (it follows within moments, in call order); every other attempt, and
            # each call with an effect, is durable in the log before its result returns.
            wait=not (
                self.defer_read_audit
                and decision == "allow"
                and outcome.ok
                and tool is not None
                and not tool.side_effecting
            ),
        )

    async def _invoke(self, tool: ToolSpec, ctx: ToolContext, args: BaseModel) -> dict[str, Any]:
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
        ctx: ToolContext | None = None
        try:
            if tool.side_effecting:
                async with self.db.transaction() as session:
                    await verify_lease(session, current_lease(context.run_id))
                    ctx = self._context(principal, session, context)
                    output = await self._invoke(tool, ctx, args)
            else:
                reads = _ReadSession(self.db)
                try:
                    ctx = self._context(principal, cast(AsyncSession, reads), context)
                    output = await self._invoke(tool, ctx, args)
                finally:
                    await reads.release()
        except ToolError as error:
            return ToolOutcome(call, ok=False, error=error)
        return _with_flags(ToolOutcome(call, ok=True, output=output), ctx)

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
        ctx: ToolContext | None = None
        try:
            async with self.db.transaction() as session:
                recorded = await ledger.find(session, key)
                if recorded is not None:
                    return _replayed(call, principal, recorded)
                await verify_lease(session, current_lease(context.run_id))
                ctx = self._context(principal, session, context)
                output = await self._invoke(tool, ctx, args)
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
        return _with_flags(ToolOutcome(call, ok=True, output=output), ctx)

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
            await verify_lease(session, current_lease(context.run_id))
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
        ctx: ToolContext | None = None
        try:
            async with self.db.session() as session:
                ctx = self._context(principal, session, context)
                output = await self._invoke(tool, ctx, args)
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
        return _with_flags(ToolOutcome(call, ok=True, output=output), ctx)

    @staticmethod
    def _context(principal: Principal, session: Any, context: CallContext) -> ToolContext:
        return ToolContext(
            principal=principal,
            session=session,
            thread_id=context.key.thread_id if context.key else None,
            run_id=context.run_id,
            tainted=context.tainted,
            progress=context.progress,
            idempotency_key=context.key.idempotency_key() if context.key else None,
        )


def plain_preview(preview: dict[str, Any]) -> dict[str, Any]:
    """A dry run's result as it reads back from JSON storage, so that it compares equal
    to a stored one when nothing changed."""
    return cast(dict[str, Any], json.loads(json.dumps(preview, default=str)))


def preview_changed(shown: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether the dry run a reviewer was shown no longer describes what the call would
    do. A dry run that crashed (``preview_error``, either time) tells nothing, so it never
    counts as a change; one that now fails (the target is gone) does."""
    if "preview_error" in shown or "preview_error" in current:
        return False
    return plain_preview(shown) != plain_preview(current)


def what_it_would(preview: dict[str, Any]) -> str:
    """The dry run in a few words: what the call would do, or why it would fail."""
    if preview.get("would_fail"):
        failure = preview["would_fail"]
        message = failure.get("message") if isinstance(failure, dict) else failure
        return f"fail ({message})"
    return str(preview.get("would") or "?")


class _ReadSession:
    """A read session (as ``Database.session`` gives) opened on first use: creating and
    closing one costs more than a trivial read tool itself, and many read tools (fetches,
    attached servers' tools) never touch the store."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._session: AsyncSession | None = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = self._db.unopened_session()
        return getattr(self._session, name)

    async def release(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _with_flags(outcome: ToolOutcome, ctx: ToolContext | None) -> ToolOutcome:
    if ctx is not None and ctx.flags.get("untrusted"):
        outcome.trusted = False
    return outcome


def _truncate_output(outcome: ToolOutcome, limit: int) -> None:
    """Cut the longest strings (then the longest lists) of an oversized output until it
    fits ``limit`` characters of JSON, leaving a note where text was cut. The shape
    stays the same, so the output still matches the tool's schema."""
    output = outcome.output
    assert output is not None
    size = len(json.dumps(output, ensure_ascii=False, default=str))
    if size <= limit:
        return
    omitted = 0
    for _ in range(200):
        if size <= limit:
            break
        path, longest = _longest(output, str)
        if path is not None and isinstance(longest, str) and len(longest) > 200:
            keep = max(100, len(longest) - (size - limit) - 100, len(longest) // 4)
            cut = len(longest) - keep
            omitted += cut
            _set(output, path, longest[:keep] + " " + TRUNCATION_NOTE.format(omitted=cut))
        else:
            path, items = _longest(output, list)
            if path is None or not isinstance(items, list) or len(items) <= 1:
                break
            _set(output, path, items[: len(items) // 2])
            omitted += 1
        size = len(json.dumps(output, ensure_ascii=False, default=str))
    outcome.truncated = True
    outcome.extra["truncated"] = f"output cut to about {limit} characters"


def _longest(node: Any, kind: type) -> tuple[list[Any] | None, Any]:
    best: tuple[list[Any] | None, Any, int] = (None, None, -1)

    def walk(value: Any, path: list[Any]) -> None:
        nonlocal best
        if isinstance(value, kind):
            length = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
            if length > best[2]:
                best = (path, value, length)
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, [*path, key])
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, [*path, index])

    walk(node, [])
    return best[0] if best[0] else None, best[1]


def _set(node: Any, path: list[Any], value: Any) -> None:
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


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
