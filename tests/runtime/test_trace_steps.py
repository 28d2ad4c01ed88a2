"""Per-step trace rows (runtime/tracing.py): one per executed node, written with the event
group commit, shown by the console and deleted by retention."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import Command
from sqlalchemy import func, select

from identity import local_principal
from runtime.memory_services import open_memory_services
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from runtime.tracing import retrieved_ids, tool_outcomes
from store.models import Run, TraceStep, utcnow
from tests.helpers import call, write_script
from tests.memory.memory_helpers import WordHashEmbedder

ALICE = local_principal(tenant="acme", user="alice")
TURNS: list[dict[str, Any]] = [
    {"content": "saving", "tool_calls": [call("notes_create", title="a", body="1")]},
    {"content": "deleting", "tool_calls": [call("notes_delete", note_id=1)]},
    {"content": "finished"},
]


async def _steps(system: Any, run_id: str) -> list[TraceStep]:
    async with system.db.session() as session:
        return list(
            (
                await session.execute(
                    select(TraceStep).where(TraceStep.run_id == run_id).order_by(TraceStep.seq)
                )
            ).scalars()
        )


async def test_each_node_gets_one_row_with_model_tools_and_outcome(
    tmp_path: Path, data_dir: Path
) -> None:
    spec = write_script(tmp_path / "s.json", TURNS)
    async with open_system(Settings(data_dir=data_dir, model=spec)) as system:
        runner = Runner(system)
        first = await runner.run(RunRequest(principal=ALICE, input_text="tidy"))
        assert first.status == "interrupted"
        steps = await _steps(system, first.run_id)
        assert [(s.node, s.status) for s in steps] == [
            ("model", "ok"),
            ("act", "ok"),
            ("model", "ok"),
            ("gate", "interrupted"),
        ]
        model = steps[0]
        assert (model.alias, model.deployment) == (spec, spec)
        assert (model.prompt_name, model.prompt_version) == ("agent", "v1")
        assert model.input_tokens > 0 and model.output_tokens > 0
        assert model.cost_usd == 0.0 and len(model.model_calls) == 1
        assert model.model_calls[0]["paid_by"] == "deployment"
        assert model.tool_calls == [
            {"tool": "notes_create", "tool_call_id": "call_0_0", "outcome": "proposed"}
        ]
        assert steps[1].tool_calls == [
            {"tool": "notes_create", "tool_call_id": "call_0_0", "outcome": "success"}
        ]
        assert steps[1].alias is None and steps[1].input_tokens == 0
        assert all(s.tenant == "acme" and s.thread_id == first.thread_id for s in steps)
        assert all(s.latency_ms >= 0 and s.started_at <= s.created_at for s in steps)

        second = await runner.run(
            RunRequest(
                principal=ALICE,
                thread_id=first.thread_id,
                decisions={"decisions": [{"type": "reject", "message": "keep it"}]},
            )
        )
        assert second.status == "success"
        resumed = await _steps(system, second.run_id)
        assert [s.node for s in resumed] == ["gate", "model", "finish"]
        assert resumed[0].tool_calls == [
            {"tool": "notes_delete", "tool_call_id": "call_1_0", "outcome": "error"}
        ]


async def test_retention_deletes_old_trace_rows_and_keeps_runs(
    tmp_path: Path, data_dir: Path
) -> None:
    spec = write_script(tmp_path / "s.json", [{"content": "hello"}])
    settings = Settings(data_dir=data_dir, model=spec, trace_ttl_days=7)
    async with open_system(settings) as system:
        runner = Runner(system)
        old = await runner.run(RunRequest(principal=ALICE, input_text="one"))
        new = await runner.run(RunRequest(principal=ALICE, input_text="two"))
        async with system.db.transaction() as session:
            rows = (
                await session.execute(select(TraceStep).where(TraceStep.run_id == old.run_id))
            ).scalars()
            for row in rows:
                row.created_at = utcnow() - timedelta(days=8)
        async with open_memory_services(system, embedder=WordHashEmbedder()) as services:
            report = await services.sweeper().sweep()
        assert report.deleted["trace_steps"] == 2  # model, finish
        assert await _steps(system, old.run_id) == []
        assert [s.node for s in await _steps(system, new.run_id)] == ["model", "finish"]
        async with system.db.session() as session:
            runs = (await session.execute(select(func.count()).select_from(Run))).scalar_one()
        assert runs == 2


def test_tool_outcomes_and_retrieved_ids_never_carry_text() -> None:
    update = {
        "messages": [
            AIMessage("", tool_calls=[{"name": "memory_search", "args": {}, "id": "c1"}]),
            ToolMessage(
                '{"memories": [{"memory_id": "m1", "text": "secret", "score": 0.91234567}]}',
                tool_call_id="c1",
                name="memory_search",
                status="success",
            ),
        ],
        "recalled_memories": [{"memory_id": "m2", "text": "also secret", "score": 0.5}],
    }
    assert tool_outcomes(update) == [
        {"tool": "memory_search", "tool_call_id": "c1", "outcome": "proposed"},
        {"tool": "memory_search", "tool_call_id": "c1", "outcome": "success"},
    ]
    found = retrieved_ids(Command(update=update))
    assert sorted(found, key=lambda hit: hit["id"]) == [
        {"kind": "memory", "id": "m1", "score": 0.912346},
        {"kind": "memory", "id": "m2", "score": 0.5},
    ]
    assert "secret" not in repr(found)
    assert retrieved_ids(None) == [] and tool_outcomes("model") == []
