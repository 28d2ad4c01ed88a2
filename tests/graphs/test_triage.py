"""The triage workflow through the runner: classify → lookup → draft → approval → act."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from graphs.prompts import versions
from graphs.workflows.triage import PROMPTS, compile_triage
from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import OutboxEmail, ProviderUsage, Ticket

PRINCIPAL = local_principal()
MODELS = "scripted:tests.graphs.plan_models"
REQUEST = "The export button fails with an error since this morning."


def _settings(data_dir: Path, model: str = "triage", **overrides: Any) -> Settings:
    return Settings(data_dir=data_dir, model=f"{MODELS}:{model}", **overrides)


def _input(reply_to: str | None = "ann@example.org") -> dict[str, Any]:
    return {"messages": [{"type": "human", "content": REQUEST}], "reply_to": reply_to}


async def _rows(system: Any, model: type) -> list[Any]:
    async with system.db.session() as session:
        return list((await session.execute(select(model))).scalars())


async def _values(system: Any, thread_id: str) -> dict[str, Any]:
    snapshot = await compile_triage(system.checkpointer).aget_state(
        {"configurable": {"thread_id": thread_id}}
    )
    return snapshot.values


async def _seed_note(system: Any) -> None:
    outcome = await system.executor.call_external(
        PRINCIPAL, "notes_create", {"title": "export workaround", "body": "export via CSV"}
    )
    assert outcome.ok, outcome.content()


def test_every_prompt_of_the_family_exists_at_every_version() -> None:
    assert versions(PROMPTS[0]) == ["v1"]
    assert all(versions(name) == ["v1"] for name in PROMPTS)


async def test_triage_waits_for_approval_then_writes_the_ticket_and_the_email(
    data_dir: Path,
) -> None:
    async with open_system(_settings(data_dir)) as system:
        await _seed_note(system)
        runner = Runner(system)
        first = await runner.run(
            RunRequest(principal=PRINCIPAL, assistant_id="triage", input=_input())
        )
        assert (first.status, first.stop_reason) == ("interrupted", "waiting_for_human")
        actions = first.interrupt["action_requests"]
        assert [a["name"] for a in actions] == ["tickets_create", "email_send"]
        assert actions[0]["args"] == {
            "title": "Export button fails",
            "body": "Customer reports export failing (note 1)",
            "priority": "high",
        }
        assert actions[1]["args"]["to"] == ["ann@example.org"]
        assert actions[1]["args"]["body"] == "Thanks, we are on it (note 1)"
        waiting = await _values(system, first.thread_id)
        assert waiting["classification"]["category"] == "bug"
        assert [note["title"] for note in waiting["related"]["notes"]] == ["export workaround"]
        # memory_search ran through the executor (no memories yet), nothing was skipped
        assert waiting["related"]["memories"] == [] and waiting["related"]["skipped"] == {}
        # Nothing is written before the decision.
        assert await _rows(system, Ticket) == [] and await _rows(system, OutboxEmail) == []

        edited = {"title": "Export broken", "body": "see note 1", "priority": "urgent"}
        done = await runner.run(
            RunRequest(
                principal=PRINCIPAL,
                thread_id=first.thread_id,
                decisions=[
                    {"type": "edit", "edited_action": {"name": "tickets_create", "args": edited}},
                    {"type": "approve"},
                ],
            )
        )
        tickets = await _rows(system, Ticket)
        mails = await _rows(system, OutboxEmail)
        await system.router_services.recorder.flush()
        usage = await _rows(system, ProviderUsage)
    assert (done.status, done.stop_reason) == ("success", "completed")
    assert [(t.title, t.priority) for t in tickets] == [("Export broken", "urgent")]
    assert [(m.recipients, m.status) for m in mails] == [(["ann@example.org"], "queued")]
    assert done.final_message and "tickets_create: done" in done.final_message
    assert [(row.node, row.prompt_name, row.prompt_version) for row in usage] == [
        ("classify", "triage_classify", "v1"),
        ("draft", "triage_draft", "v1"),
    ]


async def test_rejecting_writes_and_sends_nothing(data_dir: Path) -> None:
    async with open_system(_settings(data_dir)) as system:
        runner = Runner(system)
        first = await runner.run(
            RunRequest(principal=PRINCIPAL, assistant_id="triage", input=_input())
        )
        done = await runner.run(
            RunRequest(
                principal=PRINCIPAL,
                thread_id=first.thread_id,
                decisions=[
                    {"type": "reject", "message": "duplicate"},
                    {"type": "reject", "message": "no reply needed"},
                ],
            )
        )
        values = await _values(system, first.thread_id)
        assert await _rows(system, Ticket) == [] and await _rows(system, OutboxEmail) == []
    assert done.stop_reason == "completed"
    assert done.final_message and "Nothing was written or sent." in done.final_message
    assert [(r["name"], r["decision"]) for r in values["results"]] == [
        ("tickets_create", "rejected"),
        ("email_send", "rejected"),
    ]


async def test_without_reply_to_only_a_ticket_is_proposed_and_lookup_respects_tools(
    data_dir: Path,
) -> None:
    assistants = {"tickets_only": {"graph_id": "triage", "tools": ["tickets_create"]}}
    async with open_system(_settings(data_dir, assistants=assistants)) as system:
        await _seed_note(system)
        first = await Runner(system).run(
            RunRequest(principal=PRINCIPAL, assistant_id="tickets_only", input=_input(None))
        )
        values = await _values(system, first.thread_id)
    assert [a["name"] for a in first.interrupt["action_requests"]] == ["tickets_create"]
    # notes_search is not among the assistant's tools: the lookup skips it, says why.
    assert values["related"]["notes"] == []
    assert "notes_search is not available" in values["related"]["skipped"]["notes"]
    assert "memory_search is not available" in values["related"]["skipped"]["memories"]


async def test_a_malformed_classification_is_repaired(data_dir: Path) -> None:
    async with open_system(_settings(data_dir, "triage_repaired")) as system:
        first = await Runner(system).run(
            RunRequest(principal=PRINCIPAL, assistant_id="triage", input=_input())
        )
        values = await _values(system, first.thread_id)
        await system.router_services.recorder.flush()
        usage = await _rows(system, ProviderUsage)
    assert first.status == "interrupted"
    assert values["classification"]["category"] == "bug"
    assert [row.node for row in usage] == ["classify", "classify", "draft"]


async def test_triage_graph_uses_no_model_chosen_control_flow() -> None:
    """The workflow's edges are fixed: only a stop (limit, budget) leaves the main path."""
    graph = compile_triage(None).get_graph()
    edges = {(edge.source, edge.target) for edge in graph.edges}
    assert {
        ("__start__", "classify"),
        ("classify", "lookup"),
        ("lookup", "draft"),
        ("draft", "approve"),
        ("approve", "act"),
        ("act", "__end__"),
    } <= edges
    assert edges - {
        ("__start__", "classify"),
        ("classify", "lookup"),
        ("lookup", "draft"),
        ("draft", "approve"),
        ("approve", "act"),
        ("act", "__end__"),
    } <= {("classify", "__end__"), ("draft", "__end__")}


async def test_a_limit_stops_triage_before_the_draft_and_raising_it_continues(
    data_dir: Path,
) -> None:
    async with open_system(_settings(data_dir)) as system:
        runner = Runner(system)
        first = await runner.run(
            RunRequest(
                principal=PRINCIPAL,
                assistant_id="triage",
                input=_input(),
                limits={"max_steps": 1},
            )
        )
        assert (first.status, first.stop_reason) == ("limit", "step_limit")
        assert (await _values(system, first.thread_id))["resume_at"] == "draft"
        again = await runner.run(
            RunRequest(principal=PRINCIPAL, thread_id=first.thread_id, limits={"max_steps": 5})
        )
        assert again.status == "interrupted"
        assert [a["name"] for a in again.interrupt["action_requests"]] == [
            "tickets_create",
            "email_send",
        ]
        assert await _rows(system, Ticket) == []
