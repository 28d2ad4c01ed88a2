"""tools/executor.py: gate → ledger → run, exactly once for SQL tools, in doubt otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from identity import local_principal
from store import Database
from store.models import Note
from store.models import ToolCall as LedgerRow
from tools import (
    BUILTIN_TOOLS,
    CallContext,
    CallKey,
    ToolCall,
    ToolContext,
    ToolError,
    ToolExecutor,
    ToolPolicy,
    ToolRegistry,
    ToolSpec,
    ledger,
)

PRINCIPAL = local_principal()
KEY = CallKey(thread_id="thread-1", task_id="task-1", tool_call_id="call_0_0")


class EmptyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CountOutput(BaseModel):
    calls: int


@dataclass
class Calls:
    """How often each test tool's handler ran."""

    counts: dict[str, int] = field(default_factory=dict)

    def seen(self, name: str) -> int:
        self.counts[name] = self.counts.get(name, 0) + 1
        return self.counts[name]


def _test_tools(calls: Calls, never: asyncio.Event) -> list[ToolSpec]:
    async def write_then_fail(ctx: ToolContext, args: EmptyInput) -> CountOutput:
        calls.seen("write_then_fail")
        ctx.session.add(Note(tenant=ctx.principal.tenant, owner="x", title="half", body=""))
        await ctx.session.flush()
        raise ToolError("quota_exceeded", "the workspace is full: delete a note first")

    async def hang(ctx: ToolContext, args: EmptyInput) -> CountOutput:
        calls.seen("hang")
        await never.wait()
        return CountOutput(calls=0)

    async def send_webhook(ctx: ToolContext, args: EmptyInput) -> CountOutput:
        return CountOutput(calls=calls.seen("send_webhook"))

    def spec(name: str, handler: Any, **options: Any) -> ToolSpec:
        return ToolSpec(
            name=name,
            description=name,
            input_model=EmptyInput,
            output_model=CountOutput,
            handler=handler,
            risk="write",
            scope="notes:write",
            **options,
        )

    return [
        spec("write_then_fail", write_then_fail),
        spec("hang", hang, timeout_seconds=0.05),
        spec("send_webhook", send_webhook, transactional=False),
    ]


@dataclass
class Harness:
    executor: ToolExecutor
    db: Database
    calls: Calls

    async def run(self, name: str, args: dict[str, Any], **context: Any) -> Any:
        call = ToolCall(name, args, context.get("key", KEY).tool_call_id)
        return await self.executor.execute(call, PRINCIPAL, CallContext(**context))


@pytest.fixture
async def harness(system) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    calls = Calls()
    never = asyncio.Event()
    registry = ToolRegistry([*BUILTIN_TOOLS, *_test_tools(calls, never)])
    yield Harness(ToolExecutor(system.db, ToolPolicy(registry)), system.db, calls)
    never.set()


async def _notes(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Note))).scalar_one())


async def _ledger(db: Database) -> list[LedgerRow]:
    async with db.session() as session:
        return list((await session.execute(select(LedgerRow).order_by(LedgerRow.id))).scalars())


async def test_transactional_write_commits_the_note_and_a_succeeded_row(system) -> None:  # type: ignore[no-untyped-def]
    call = ToolCall("notes_create", {"title": "launch", "body": "Friday"}, KEY.tool_call_id)

    outcome = await system.executor.execute(call, PRINCIPAL, CallContext(key=KEY, run_id="r1"))

    assert outcome.ok and not outcome.replayed
    assert outcome.output["title"] == "launch" and isinstance(outcome.output["id"], int)
    assert await _notes(system.db) == 1
    [row] = await _ledger(system.db)
    assert (row.thread_id, row.task_id, row.tool_call_id) == (
        KEY.thread_id,
        KEY.task_id,
        KEY.tool_call_id,
    )
    assert (row.status, row.tool, row.run_id) == ("succeeded", "notes_create", "r1")
    assert (row.tenant, row.principal) == (PRINCIPAL.tenant, PRINCIPAL.user)
    assert row.args == {"title": "launch", "body": "Friday"}
    assert row.result == outcome.output
    assert row.error is None and row.completed_at is not None


async def test_replaying_a_call_key_returns_the_recorded_result(system) -> None:  # type: ignore[no-untyped-def]
    call = ToolCall("notes_create", {"title": "launch", "body": "Friday"}, KEY.tool_call_id)
    first = await system.executor.execute(call, PRINCIPAL, CallContext(key=KEY))

    replay = await system.executor.execute(call, PRINCIPAL, CallContext(key=KEY))

    assert replay.ok and replay.replayed
    assert replay.output == first.output
    assert await _notes(system.db) == 1
    assert len(await _ledger(system.db)) == 1


async def test_a_reused_key_for_another_tool_or_tenant_is_refused(system) -> None:  # type: ignore[no-untyped-def]
    call = ToolCall("notes_create", {"title": "launch", "body": "Friday"}, KEY.tool_call_id)
    await system.executor.execute(call, PRINCIPAL, CallContext(key=KEY))
    other_tool = ToolCall("notes_search", {"query": "launch"}, KEY.tool_call_id)
    other_tenant = local_principal(tenant="other")

    mismatched = [
        await system.executor.execute(
            ToolCall("notes_create", {"title": "x", "body": "y"}, KEY.tool_call_id),
            other_tenant,
            CallContext(key=KEY),
        ),
    ]
    search = await system.executor.execute(other_tool, PRINCIPAL, CallContext(key=KEY))

    assert [outcome.error.code for outcome in mismatched if outcome.error] == ["ledger_conflict"]
    assert search.ok and not search.replayed  # read tools are not recorded, so not replayed
    assert await _notes(system.db) == 1


async def test_another_call_key_runs_again(system) -> None:  # type: ignore[no-untyped-def]
    call = ToolCall("notes_create", {"title": "launch", "body": "Friday"}, KEY.tool_call_id)
    other = CallKey(KEY.thread_id, "task-2", KEY.tool_call_id)

    first = await system.executor.execute(call, PRINCIPAL, CallContext(key=KEY))
    second = await system.executor.execute(call, PRINCIPAL, CallContext(key=other))

    assert not second.replayed and second.output["id"] != first.output["id"]
    assert await _notes(system.db) == 2


async def test_failing_tool_leaves_no_writes_but_a_failed_row(harness: Harness) -> None:
    outcome = await harness.run("write_then_fail", {}, key=KEY)

    assert not outcome.ok
    assert outcome.error.code == "quota_exceeded"
    assert outcome.content() == "Error (quota_exceeded): the workspace is full: delete a note first"
    assert await _notes(harness.db) == 0
    [row] = await _ledger(harness.db)
    assert row.status == "failed"
    assert row.error == "quota_exceeded: the workspace is full: delete a note first"

    replay = await harness.run("write_then_fail", {}, key=KEY)

    assert replay.replayed and not replay.ok
    assert (replay.error.code, replay.error.message) == (outcome.error.code, outcome.error.message)
    assert harness.calls.counts["write_then_fail"] == 1
    assert await _notes(harness.db) == 0


async def test_handler_over_its_timeout_fails_with_timeout(harness: Harness) -> None:
    outcome = await asyncio.wait_for(harness.run("hang", {}, key=KEY), timeout=10)

    assert not outcome.ok
    assert outcome.error.code == "timeout"
    assert "0.05 s" in outcome.error.message
    assert harness.calls.counts["hang"] == 1
    [row] = await _ledger(harness.db)
    assert row.status == "failed"
    assert row.error is not None and row.error.startswith("timeout: ")


async def test_destructive_call_needs_an_approver(system) -> None:  # type: ignore[no-untyped-def]
    create = ToolCall("notes_create", {"title": "old", "body": ""}, "c1")
    created = await system.executor.execute(create, PRINCIPAL, CallContext())
    delete = ToolCall("notes_delete", {"note_id": created.output["id"]}, KEY.tool_call_id)

    refused = await system.executor.execute(delete, PRINCIPAL, CallContext(key=KEY))

    assert not refused.ok and refused.error.code == "approval_required"
    assert "ask a reviewer" in refused.error.message
    assert await _notes(system.db) == 1
    assert await _ledger(system.db) == []

    approved = await system.executor.execute(
        delete, PRINCIPAL, CallContext(key=KEY, approved_by="rita")
    )

    assert approved.ok and approved.output["deleted"] is True
    assert await _notes(system.db) == 0
    [row] = await _ledger(system.db)
    assert (row.status, row.approved_by) == ("succeeded", "rita")


async def test_denied_call_is_not_recorded(system) -> None:  # type: ignore[no-untyped-def]
    call = ToolCall("notes_create", {"title": "t", "body": "b"}, KEY.tool_call_id)

    outcome = await system.executor.execute(
        call, PRINCIPAL, CallContext(key=KEY, allowed_scopes=frozenset({"notes:read"}))
    )

    assert outcome.error.code == "permission_denied"
    assert await _ledger(system.db) == []
    assert await _notes(system.db) == 0


async def test_call_without_a_key_runs_unrecorded(system) -> None:  # type: ignore[no-untyped-def]
    call = ToolCall("notes_create", {"title": "t", "body": "b"}, "c1")

    outcome = await system.executor.execute(call, PRINCIPAL, CallContext())

    assert outcome.ok and not outcome.replayed
    assert await _notes(system.db) == 1
    assert await _ledger(system.db) == []


async def test_non_transactional_call_is_recorded_and_not_repeated(harness: Harness) -> None:
    first = await harness.run("send_webhook", {}, key=KEY)
    replay = await harness.run("send_webhook", {}, key=KEY)

    assert first.ok and first.output == {"calls": 1}
    assert replay.replayed and replay.output == {"calls": 1}
    assert harness.calls.counts["send_webhook"] == 1
    [row] = await _ledger(harness.db)
    assert row.status == "succeeded"


async def test_non_transactional_call_left_started_replays_in_doubt(harness: Harness) -> None:
    # What a crash between "started" and the result leaves behind.
    async with harness.db.transaction() as session:
        session.add(
            ledger.new_row(
                KEY,
                ToolCall("send_webhook", {}, KEY.tool_call_id),
                PRINCIPAL,
                args={},
                status="started",
                run_id="r1",
                approved_by=None,
            )
        )

    outcome = await harness.run("send_webhook", {}, key=KEY)

    assert not outcome.ok and outcome.replayed
    assert outcome.error.code == "in_doubt"
    assert "send_webhook" in outcome.error.message
    assert harness.calls.counts.get("send_webhook", 0) == 0
    [row] = await _ledger(harness.db)
    assert row.status == "started"
