"""Fencing: a worker that stalled past its run's lease, while another worker claimed and
resumed the run, must not commit a side effect for it. Its tool call is refused inside
the effect's transaction (``LeaseLostError``), it writes nothing but the refusal's audit
row, and the new owner executes the call once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import Run, RunEvent
from store.models import ToolCall as LedgerRow
from tests.reliability.conftest import (
    crash_system,
    job_request,
    note_titles,
    phase_steps,
    take_over,
)
from tools import (
    CallContext,
    CallKey,
    ToolCall,
    ToolContext,
    ToolExecutor,
    ToolPolicy,
    ToolRegistry,
    ToolSpec,
)
from tools.audit import AuditLog
from tools.fencing import LeaseLostError, RunLease, bind_lease

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("backend")]


async def fenced_rows(audit: AuditLog, tenant: str) -> list[dict[str, Any]]:
    """The audit rows of fenced calls, oldest first, after checking the whole chain."""
    report = await audit.verify()
    assert report.ok, report.problems
    rows = await audit.entries(tenant=tenant, limit=1000, with_payloads=True)
    return [row for row in reversed(rows) if row["decision"] == "fenced"]


async def test_a_stale_owner_commits_no_effect_and_the_new_owner_runs_it_once(
    data_dir: Path, phases: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with crash_system(data_dir) as system:
        runner = Runner(system)
        run = await runner.submit(job_request("fence"), claim_for="worker-a", must_claim=True)
        # Hold worker A just before its third call (fence/c, after fence/a and fence/b
        # committed and were checkpointed): there it "stalls" while B takes the run over.
        paused, resume = asyncio.Event(), asyncio.Event()
        original = system.executor._run_transactional
        seen = 0

        async def stalling(*args: Any, **kwargs: Any) -> Any:
            nonlocal seen
            seen += 1
            if seen == 3:
                paused.set()
                await resume.wait()
            return await original(*args, **kwargs)

        monkeypatch.setattr(system.executor, "_run_transactional", stalling)
        stale = asyncio.create_task(runner.execute(run.run_id, "worker-a"))
        async with asyncio.timeout(60):
            await paused.wait()
        await take_over(runner, run.run_id, "worker-b")
        resume.set()
        with pytest.raises(LeaseLostError):
            async with asyncio.timeout(60):
                await stale
        async with system.db.session() as session:
            row = await session.get(Run, run.run_id)
            assert row is not None
            assert (row.status, row.lease_owner, row.attempt) == ("running", "worker-b", 2)
        # The stale execution wrote no note, no ledger row and no ending; its refused
        # call is in the audit log, naming the stale lease.
        assert await note_titles(system.db) == ["fence/a", "fence/b"]
        fenced = await fenced_rows(system.executor.audit, local_principal().tenant)
        assert [(r["tool"], r["status"], r["error_code"], r["run_id"]) for r in fenced] == [
            ("slow_note", "lease_lost", "lease_lost", run.run_id)
        ]
        assert fenced[0]["result"] == {"lease_owner": "worker-a", "attempt": 1}
        assert fenced[0]["args"]["title"] == "fence/c"

        async with asyncio.timeout(60):
            summary = await runner.execute(run.run_id, "worker-b")
        titles = await note_titles(system.db)
        async with system.db.session() as session:
            ledger = list((await session.execute(select(LedgerRow))).scalars())
            events = list(
                (
                    await session.execute(
                        select(RunEvent.event).where(RunEvent.run_id == run.run_id)
                    )
                ).scalars()
            )
            row = await session.get(Run, run.run_id)
    assert (summary.run_status, summary.stop_reason) == ("success", "completed")
    assert row is not None and (row.status, row.lease_owner) == ("success", None)
    assert titles == ["fence/a", "fence/b", "fence/c"]
    assert sorted(r.args["title"] for r in ledger) == titles
    assert {r.status for r in ledger} == {"succeeded"}
    assert events.count("end") == 1 and "error" not in events
    steps = phase_steps(phases)
    tool_starts = {step: n for step, n in steps.items() if step.startswith("tool-start ")}
    assert tool_starts == {f"tool-start fence/{x}": 1 for x in "abc"}


class _Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Sent(BaseModel):
    sent: int


async def test_a_stale_owner_records_no_started_call_outside_the_database(
    data_dir: Path,
) -> None:
    """A side effect outside the database records ``started`` first: a stale owner is
    refused in that transaction, before the effect, and leaves no ledger row."""
    sent: list[str] = []

    async def send(ctx: ToolContext, args: _Empty) -> _Sent:
        sent.append(ctx.principal.user)
        return _Sent(sent=len(sent))

    webhook = ToolSpec(
        name="send_webhook",
        description="send a webhook",
        input_model=_Empty,
        output_model=_Sent,
        handler=send,
        risk="write",
        scope="notes:write",
        transactional=False,
    )
    async with open_system(Settings(data_dir=data_dir)) as system:
        runner = Runner(system)
        principal = local_principal()
        run = await runner.submit(
            RunRequest(principal=principal, input={"messages": []}),
            claim_for="worker-a",
            must_claim=True,
        )
        await take_over(runner, run.run_id, "worker-b")
        executor = ToolExecutor(system.db, ToolPolicy(ToolRegistry([webhook])))
        call = ToolCall("send_webhook", {}, "call_0_0")

        def context(task_id: str) -> CallContext:
            key = CallKey(run.thread_id, task_id, call.id)
            return CallContext(key=key, run_id=run.run_id)

        with bind_lease(RunLease(run.run_id, "worker-a", 1)), pytest.raises(LeaseLostError):
            await executor.execute(call, principal, context("task-stale"))
        async with system.db.session() as session:
            assert list((await session.execute(select(LedgerRow))).scalars()) == []
        assert sent == []
        # Rolled back with the effect's transaction, yet audited on its own.
        fenced = await fenced_rows(executor.audit, principal.tenant)
        assert [(r["tool"], r["status"], r["actor"], r["run_id"]) for r in fenced] == [
            ("send_webhook", "lease_lost", principal.user, run.run_id)
        ]
        assert fenced[0]["result"] == {"lease_owner": "worker-a", "attempt": 1}

        with bind_lease(RunLease(run.run_id, "worker-b", 2)):
            outcome = await executor.execute(call, principal, context("task-new"))
        async with system.db.session() as session:
            ledger = list((await session.execute(select(LedgerRow))).scalars())
    assert outcome.ok and outcome.output == {"sent": 1}
    assert sent == [principal.user]
    assert [(r.task_id, r.status) for r in ledger] == [("task-new", "succeeded")]
