"""tools/executor.py: oversized outputs are cut with a note, timeouts and cancellation are
enforced and audited, progress reaches the caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from identity import local_principal
from store.models import AuditEntry
from tools import ToolContext, ToolExecutor, ToolPolicy, ToolRegistry, ToolSpec

PRINCIPAL = local_principal()


class SizeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=0, description="Characters to return.")


class Blob(BaseModel):
    title: str
    text: str
    items: list[str]


def _tools(started: asyncio.Event, progress_seen: list[Any]) -> list[ToolSpec]:
    async def blob(ctx: ToolContext, args: SizeInput) -> Blob:
        return Blob(title="t", text="x" * args.size, items=["y" * 50] * (args.size // 100))

    async def wait(ctx: ToolContext, args: SizeInput) -> Blob:
        await ctx.report_progress(1, 3, "started")
        started.set()
        await asyncio.sleep(args.size)
        return Blob(title="", text="", items=[])

    common: dict[str, Any] = {"input_model": SizeInput, "output_model": Blob, "scope": "notes:read"}
    return [
        ToolSpec(
            name="blob",
            description="big output",
            handler=blob,
            risk="read",
            max_output_chars=5_000,
            **common,
        ),
        ToolSpec(
            name="wait",
            description="sleeps",
            handler=wait,
            risk="read",
            timeout_seconds=0.2,
            **common,
        ),
    ]


@pytest.fixture
def harness(system):  # type: ignore[no-untyped-def]
    started = asyncio.Event()
    seen: list[Any] = []
    registry = ToolRegistry(_tools(started, seen))
    return ToolExecutor(system.db, ToolPolicy(registry)), started


async def _last_entry(executor: ToolExecutor) -> AuditEntry:
    async with executor.db.session() as session:
        return (
            await session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
        ).one()


async def test_oversized_output_is_cut_with_a_note_and_keeps_its_shape(harness) -> None:  # type: ignore[no-untyped-def]
    executor, _ = harness

    outcome = await executor.call_external(PRINCIPAL, "blob", {"size": 50_000})

    assert outcome.ok and outcome.truncated
    assert len(outcome.content()) <= 5_000
    assert "[truncated: " in outcome.output["text"]
    Blob.model_validate(outcome.output)
    small = await executor.call_external(PRINCIPAL, "blob", {"size": 10})
    assert not small.truncated and small.output["text"] == "x" * 10


async def test_timeouts_are_enforced_and_audited(harness) -> None:  # type: ignore[no-untyped-def]
    executor, _ = harness

    outcome = await asyncio.wait_for(executor.call_external(PRINCIPAL, "wait", {"size": 30}), 10)

    assert outcome.status == "failed" and outcome.error.code == "timeout"
    entry = await _last_entry(executor)
    assert (entry.tool, entry.status, entry.error_code) == ("wait", "timeout", "timeout")


async def test_cancellation_propagates_and_is_audited(harness) -> None:  # type: ignore[no-untyped-def]
    executor, started = harness
    reports: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        reports.append((done, total, message))

    spec = executor.registry.get("wait")
    assert spec is not None
    object.__setattr__(spec, "timeout_seconds", 30.0)
    task = asyncio.create_task(
        executor.call_external(PRINCIPAL, "wait", {"size": 30}, progress=progress)
    )
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert reports == [(1, 3, "started")]
    entry = await _last_entry(executor)
    assert (entry.tool, entry.status) == ("wait", "cancelled")
