"""A decision taken at a graph interrupt is carried out only while the call's dry run
still shows what the reviewer saw; otherwise the run asks again with the fresh dry run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from sqlalchemy import select, update

from identity import local_principal
from runtime.runs import Runner, RunRequest, RunSummary
from runtime.settings import Settings
from runtime.system import open_system
from store.models import Approval as ApprovalRow
from store.models import Note
from tests.helpers import DELETE_TURNS, count_notes, json_lines, run_relaygraph, write_script
from tools.approvals import INTERRUPT_VIA, ApprovalError

PRINCIPAL = local_principal()


def _settings(tmp_path: Path, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, model=write_script(tmp_path / "script.json", DELETE_TURNS))


async def _retitle(system: Any, note_id: int, title: str) -> None:
    async with system.db.transaction() as session:
        await session.execute(update(Note).where(Note.id == note_id).values(title=title))


async def _titles(system: Any) -> list[str]:
    async with system.db.session() as session:
        return sorted((await session.scalars(select(Note.title))).all())


async def _stale_entries(system: Any) -> list[dict[str, Any]]:
    entries = await system.executor.audit.entries(
        tenant=PRINCIPAL.tenant, limit=200, with_payloads=True
    )
    return [e for e in entries if e["event"] == "approval_decision" and e["decision"] == "stale"]


async def _tool_messages(system: Any, thread_id: str) -> list[ToolMessage]:
    from graphs.agent import compile_agent

    snapshot = await compile_agent(system.checkpointer).aget_state(
        {"configurable": {"thread_id": thread_id}}
    )
    return [m for m in snapshot.values["messages"] if isinstance(m, ToolMessage)]


async def _decide(system: Any, thread_id: str, decision: dict[str, Any]) -> RunSummary:
    return await Runner(system).run(
        RunRequest(principal=PRINCIPAL, thread_id=thread_id, decisions=[decision])
    )


def _description(summary: RunSummary) -> str:
    assert summary.interrupt is not None
    return str(summary.interrupt["action_requests"][0]["description"])


async def test_unchanged_target_is_executed_as_before(tmp_path: Path, data_dir: Path) -> None:
    async with open_system(_settings(tmp_path, data_dir)) as system:
        paused = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="tidy up"))
        assert paused.status == "interrupted"
        assert "delete note 2 ('bin')" in _description(paused)
        done = await _decide(system, paused.thread_id, {"type": "approve"})
        assert (done.status, done.final_message) == ("success", "finished")
        assert await _titles(system) == ["keep"]
        assert await _stale_entries(system) == []
        approvals = await system.executor.audit.entries(tenant=PRINCIPAL.tenant, limit=200)
        assert [e["decision"] for e in approvals if e["event"] == "approval_decision"] == [
            "approved"
        ]


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize(
    "decision",
    [
        {"type": "approve"},
        {"type": "edit", "edited_action": {"name": "notes_delete", "args": {"note_id": 2}}},
    ],
    ids=["approve", "edit"],
)
async def test_a_decision_on_a_changed_target_is_not_carried_out_and_asked_again(
    tmp_path: Path, data_dir: Path, decision: dict[str, Any]
) -> None:
    async with open_system(_settings(tmp_path, data_dir)) as system:
        paused = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="tidy up"))
        await _retitle(system, 2, "signed contract")

        again = await _decide(system, paused.thread_id, decision)
        assert (again.status, again.stop_reason) == ("interrupted", "waiting_for_human")
        assert await _titles(system) == ["keep", "signed contract"]  # nothing deleted
        description = _description(again)
        assert "changed after the last decision" in description
        assert "it was: delete note 2 ('bin')" in description
        assert "delete note 2 ('signed contract')" in description
        # The model saw no answer for the call: it is still waiting for the reviewer.
        assert [m.name for m in await _tool_messages(system, paused.thread_id)] == [
            "notes_create",
            "notes_create",
        ]
        (stale,) = await _stale_entries(system)
        assert (stale["error_code"], stale["tool"], stale["approver"]) == (
            "approval_stale",
            "notes_delete",
            PRINCIPAL.user,
        )
        assert stale["result"] == {
            "decided": "approved" if decision["type"] == "approve" else "edited",
            "shown": "delete note 2 ('bin') for good",
            "now": "delete note 2 ('signed contract') for good",
        }

        done = await _decide(system, paused.thread_id, {"type": "approve"})
        assert (done.status, done.final_message) == ("success", "finished")
        assert await _titles(system) == ["keep"]
        assert len(await _stale_entries(system)) == 1
        assert (await system.executor.audit.verify()).ok


async def test_a_rejection_needs_no_fresh_look(tmp_path: Path, data_dir: Path) -> None:
    async with open_system(_settings(tmp_path, data_dir)) as system:
        paused = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="tidy up"))
        await _retitle(system, 2, "signed contract")
        done = await _decide(system, paused.thread_id, {"type": "reject", "message": "no"})
        assert (done.status, done.final_message) == ("success", "finished")
        assert await _titles(system) == ["keep", "signed contract"]
        assert await _stale_entries(system) == []


async def test_a_target_gone_meanwhile_asks_again_saying_it_would_fail(
    tmp_path: Path, data_dir: Path
) -> None:
    async with open_system(_settings(tmp_path, data_dir)) as system:
        paused = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="tidy up"))
        async with system.db.transaction() as session:
            await session.delete(await session.get(Note, 2))
        again = await _decide(system, paused.thread_id, {"type": "approve"})
        assert again.status == "interrupted"
        assert "it would now fail (" in _description(again)


async def test_each_change_asks_again_until_the_decision_matches(
    tmp_path: Path, data_dir: Path
) -> None:
    async with open_system(_settings(tmp_path, data_dir)) as system:
        paused = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="tidy up"))
        await _retitle(system, 2, "draft 2")
        second = await _decide(system, paused.thread_id, {"type": "approve"})
        assert "delete note 2 ('draft 2')" in _description(second)
        await _retitle(system, 2, "bin")  # back to what the first round showed
        third = await _decide(system, paused.thread_id, {"type": "approve"})
        # The second round showed 'draft 2': that is what this approval was about.
        assert third.status == "interrupted"
        assert "it was: delete note 2 ('draft 2')" in _description(third)
        assert "delete note 2 ('bin')" in _description(third)
        done = await _decide(system, paused.thread_id, {"type": "approve"})
        assert done.final_message == "finished"
        assert await _titles(system) == ["keep"]
        assert len(await _stale_entries(system)) == 2


@pytest.mark.usefixtures("backend")
async def test_a_changed_target_is_caught_after_a_restart(tmp_path: Path, data_dir: Path) -> None:
    """What the reviewer saw is durable: a new system (new checkpointer connection, fresh
    process state) still compares against it."""
    settings = _settings(tmp_path, data_dir)
    async with open_system(settings) as system:
        paused = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="tidy up"))
        assert paused.status == "interrupted"
    async with open_system(settings) as system:
        await _retitle(system, 2, "signed contract")
    async with open_system(settings) as system:
        again = await _decide(system, paused.thread_id, {"type": "approve"})
        assert again.status == "interrupted"
        assert await count_notes(system) == 2
        assert "it was: delete note 2 ('bin')" in _description(again)
    async with open_system(settings) as system:
        done = await _decide(system, paused.thread_id, {"type": "approve"})
        assert done.final_message == "finished"
        assert await _titles(system) == ["keep"]


async def test_a_plan_step_asks_again_when_its_target_changed(data_dir: Path) -> None:
    """The planner runs each step through the agent as a subgraph: the same check holds
    for an approval inside a plan step (its own checkpoint namespace)."""
    settings = Settings(data_dir=data_dir, model="scripted:tests.graphs.plan_models:delete_step")
    async with open_system(settings) as system:
        paused = await Runner(system).run(
            RunRequest(principal=PRINCIPAL, assistant_id="planner", input_text="tidy up")
        )
        assert "delete note 1 ('scratch')" in _description(paused)
        await _retitle(system, 1, "not scratch any more")
        again = await _decide(system, paused.thread_id, {"type": "approve"})
        assert again.status == "interrupted"
        assert "delete note 1 ('not scratch any more')" in _description(again)
        assert await count_notes(system) == 1
        done = await _decide(system, paused.thread_id, {"type": "approve"})
        assert done.stop_reason == "completed"
        assert await count_notes(system) == 0


async def test_interrupt_records_are_no_approvals(tmp_path: Path, data_dir: Path) -> None:
    """What an interrupt showed is kept in the approvals table, but it is never listed,
    decided or usable through the external (MCP/API/CLI) approval door."""
    async with open_system(_settings(tmp_path, data_dir)) as system:
        await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="tidy up"))
        async with system.db.session() as session:
            (row,) = (
                await session.scalars(select(ApprovalRow).where(ApprovalRow.via == INTERRUPT_VIA))
            ).all()
        assert (row.tool, row.status, row.preview["would"]) == (
            "notes_delete",
            "shown",
            "delete note 2 ('bin') for good",
        )
        approvals = system.executor.approvals
        assert await approvals.list_approvals(principal=PRINCIPAL, status=None) == []
        reviewer = local_principal()
        for attempt in (
            approvals.get(row.approval_id, principal=PRINCIPAL),
            approvals.approve(row.approval_id, approver=reviewer),
            approvals.consume(
                row.approval_id, principal=PRINCIPAL, tool=row.tool, args_hash=row.args_hash
            ),
        ):
            with pytest.raises(ApprovalError) as refused:
                await attempt
            assert refused.value.code == "approval_not_found"


@pytest.mark.slow
def test_a_changed_target_is_caught_when_resumed_from_new_processes(
    tmp_path: Path, data_dir: Path
) -> None:
    import sqlite3

    from tests.helpers import run_until_interrupted

    env, summary = run_until_interrupted(tmp_path, data_dir)
    with sqlite3.connect(data_dir / "relaygraph.db") as connection:
        connection.execute("update notes set body = 'the only copy' where id = 2")
    second = run_relaygraph(["resume", summary["thread_id"], "--json", "--approve"], env)
    assert second.returncode == 3, second.stderr
    final = json_lines(second.stdout)[-1]
    assert final["status"] == "interrupted"
    assert (
        "changed after the last decision"
        in (final["interrupt"]["action_requests"][0]["description"])
    )
    with sqlite3.connect(data_dir / "relaygraph.db") as connection:
        assert connection.execute("select count(*) from notes").fetchone() == (2,)

    third = run_relaygraph(["resume", summary["thread_id"], "--json", "--approve"], env)
    assert third.returncode == 0, third.stderr
    assert json_lines(third.stdout)[-1]["final_message"] == "finished"
    with sqlite3.connect(data_dir / "relaygraph.db") as connection:
        assert connection.execute("select title from notes").fetchall() == [("keep",)]
