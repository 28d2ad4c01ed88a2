"""The agent's model node with the router: usage rows per call, and runs stopped by the
token budget and by spend budgets (stop reasons ``token_budget`` and ``spend_budget``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from sqlalchemy import select

from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import ProviderUsage
from tests.helpers import call, write_script

PRINCIPAL = local_principal()
TURNS = [
    {"content": "searching", "tool_calls": [call("notes_search", query="x")]},
    {"content": "nothing found"},
]


async def _usage(system: Any) -> list[ProviderUsage]:
    recorder = system.router_services.recorder
    await recorder.flush()
    async with system.db.session() as session:
        rows = await session.execute(select(ProviderUsage).order_by(ProviderUsage.id))
        return list(rows.scalars())


async def test_every_model_call_writes_a_usage_row(tmp_path: Path, data_dir: Path) -> None:
    spec = write_script(tmp_path / "s.json", TURNS)
    async with open_system(Settings(data_dir=data_dir, model=spec)) as system:
        summary = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="find x"))
        rows = await _usage(system)
    assert summary.stop_reason == "completed"
    assert [(r.run_id, r.node, r.alias, r.deployment) for r in rows] == [
        (summary.run_id, "model", spec, spec)
    ] * 2
    first = rows[0]
    assert (first.tenant, first.user) == (PRINCIPAL.tenant, PRINCIPAL.user)
    assert first.assistant_id == "agent" and first.prompt_name == "agent" and first.prompt_version
    assert first.tokens_estimated and first.input_tokens > 0 and first.cost_usd == 0


async def test_token_budget_stops_the_run_mid_way(tmp_path: Path, data_dir: Path) -> None:
    spec = write_script(tmp_path / "s.json", TURNS)
    async with open_system(Settings(data_dir=data_dir, model=spec)) as system:
        runner = Runner(system)
        free = await runner.run(RunRequest(principal=PRINCIPAL, input_text="find x"))
        first_call = (await _usage(system))[0]
        budget = first_call.input_tokens + first_call.output_tokens + 1

        summary = await runner.run(
            RunRequest(principal=PRINCIPAL, input_text="find x", limits={"max_run_tokens": budget})
        )
    assert free.stop_reason == "completed"
    assert (summary.status, summary.stop_reason) == ("limit", "token_budget")
    assert summary.final_message is not None
    assert "token budget" in summary.final_message and "max_run_tokens" in summary.final_message


async def test_spend_budget_stops_the_run_after_an_expensive_call(
    openai_stub: Any, data_dir: Path
) -> None:
    openai_stub.reply(
        "searching",
        tool_calls=[{"name": "notes_search", "args": {"query": "x"}}],
        usage={"prompt_tokens": 100_000, "completion_tokens": 10},
    )
    settings = Settings(
        data_dir=data_dir,
        model="cheap",
        models={"cheap": ["openai:gpt-4o-mini"]},
        openai_api_key="sk-test",
        openai_base_url=openai_stub.base_url,
        spend_user_daily_usd=0.01,
    )
    async with open_system(settings) as system:
        summary = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="find x"))
        rows = await _usage(system)
    assert (summary.status, summary.stop_reason) == ("limit", "spend_budget")
    assert summary.final_message is not None
    assert f"daily spend budget of the user {PRINCIPAL.user!r}" in summary.final_message
    (row,) = rows  # the second call was refused before it was made
    assert (row.alias, row.deployment) == ("cheap", "openai:gpt-4o-mini")
    assert row.cost_usd == round((100_000 * 0.15 + 10 * 0.60) / 1e6, 8)
    assert len(openai_stub.requests) == 1


async def test_alias_reply_carries_the_answering_deployment(tmp_path: Path, data_dir: Path) -> None:
    spec = write_script(tmp_path / "s.json", [{"content": "hi"}])
    settings = Settings(data_dir=data_dir, model="fast", models='{"fast": ["' + spec + '"]}')
    async with open_system(settings) as system:
        reply = await system.model(None).ainvoke("hello")
    assert isinstance(reply, AIMessage)
    assert reply.response_metadata["relaygraph"]["alias"] == "fast"
