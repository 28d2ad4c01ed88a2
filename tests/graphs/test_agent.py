"""The agent graph through the runner: tools, limits, interrupts and bad model output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from graphs.agent import turn_counts
from identity import local_principal
from runtime.runs import Runner, RunRequest, RunRequestError
from runtime.settings import Settings
from runtime.system import open_system
from tests.helpers import call, count_notes, write_script

PRINCIPAL = local_principal()


async def _state(system: Any, thread_id: str) -> dict[str, Any]:
    from graphs.agent import compile_agent

    snapshot = await compile_agent(system.checkpointer).aget_state(
        {"configurable": {"thread_id": thread_id}}
    )
    return snapshot.values


def _tool_messages(values: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in values["messages"] if isinstance(m, ToolMessage)]


@pytest.fixture
def scripted(tmp_path: Path, data_dir: Path):  # type: ignore[no-untyped-def]
    """Open a system whose default model plays ``turns``."""

    def opener(turns: list[dict[str, Any]], **overrides: Any):  # type: ignore[no-untyped-def]
        spec = write_script(tmp_path / "script.json", turns)
        return open_system(Settings(data_dir=data_dir, model=spec, **overrides))

    return opener


async def test_tool_loop_completes_and_records_the_note(scripted) -> None:  # type: ignore[no-untyped-def]
    turns = [
        {"content": "saving", "tool_calls": [call("notes_create", title="a", body="b")]},
        {"content": "saved it"},
    ]
    async with scripted(turns) as system:
        summary = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="note a"))
        assert (summary.status, summary.stop_reason) == ("success", "completed")
        assert summary.final_message == "saved it"
        assert await count_notes(system) == 1
        values = await _state(system, summary.thread_id)
        assert turn_counts(values) == (2, 1)  # model steps, tool calls of this turn


async def test_unknown_tool_and_invalid_args_are_fed_back_to_the_model(scripted) -> None:  # type: ignore[no-untyped-def]
    turns = [
        {"tool_calls": [call("no_such_tool", x=1), call("notes_create", title="")]},
        {"content": "I will stop guessing"},
    ]
    async with scripted(turns) as system:
        summary = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="go"))
        assert summary.stop_reason == "completed"
        errors = _tool_messages(await _state(system, summary.thread_id))
        assert [m.status for m in errors] == ["error", "error"]
        assert "unknown_tool" in errors[0].content and "no_such_tool" in errors[0].content
        assert "invalid_arguments" in errors[1].content and "title" in errors[1].content
        assert await count_notes(system) == 0


@pytest.mark.parametrize(
    ("limits", "turns", "reason", "raised"),
    [
        (
            {"max_steps": 2},
            [{"tool_calls": [call("notes_search", query="x")]}] * 3 + [{"content": "done"}],
            "step_limit",
            {"max_steps": 10},
        ),
        (
            {"max_tool_calls": 1},
            [{"tool_calls": [call("notes_search", query="x")]}] * 2 + [{"content": "done"}],
            "tool_budget",
            {"max_tool_calls": 5},
        ),
    ],
)
async def test_limit_stops_the_run_and_raising_it_continues(
    scripted,
    limits,
    turns,
    reason,
    raised,  # type: ignore[no-untyped-def]
) -> None:
    async with scripted(turns) as system:
        runner = Runner(system)
        first = await runner.run(RunRequest(principal=PRINCIPAL, input_text="go", limits=limits))
        assert (first.status, first.stop_reason, first.run_status) == ("limit", reason, "success")
        assert first.final_message and "raise" in first.final_message
        # Resuming with the same limit stops again at once; raising it continues.
        again = await runner.run(
            RunRequest(principal=PRINCIPAL, thread_id=first.thread_id, limits=limits)
        )
        assert again.stop_reason == reason
        done = await runner.run(
            RunRequest(principal=PRINCIPAL, thread_id=first.thread_id, limits=raised)
        )
        assert (done.status, done.stop_reason, done.final_message) == (
            "success",
            "completed",
            "done",
        )
        values = await _state(system, first.thread_id)
        assert len(_tool_messages(values)) == len(turns) - 1
        assert all(m.status == "success" for m in _tool_messages(values))


async def test_wall_time_limit_stops_with_timeout(scripted) -> None:  # type: ignore[no-untyped-def]
    turns = [{"tool_calls": [call("notes_search", query="x")]}] * 2 + [{"content": "done"}]
    async with scripted(turns) as system:
        runner = Runner(system)
        first = await runner.run(
            RunRequest(principal=PRINCIPAL, input_text="go", limits={"max_wall_seconds": 1e-9})
        )
        assert (first.status, first.stop_reason, first.run_status) == (
            "limit",
            "timeout",
            "timeout",
        )
        done = await runner.run(
            RunRequest(
                principal=PRINCIPAL, thread_id=first.thread_id, limits={"max_wall_seconds": 60}
            )
        )
        assert done.stop_reason == "completed"


async def test_new_input_after_a_limit_stop_answers_dangling_tool_calls(
    data_dir: Path, openai_stub
) -> None:  # type: ignore[no-untyped-def]
    """The provider sees every tool call answered right after it, even when a limit
    stopped the run before the call was made and the user then wrote something new."""
    openai_stub.reply(tool_calls=[{"name": "notes_search", "args": {"query": "x"}}])
    openai_stub.reply(tool_calls=[{"name": "notes_search", "args": {"query": "y"}}])
    openai_stub.reply(content="fresh start")
    settings = Settings(
        data_dir=data_dir,
        model=f"openai-compatible:stub@{openai_stub.base_url}",
        model_max_retries=0,
    )
    async with open_system(settings) as system:
        runner = Runner(system)
        first = await runner.run(
            RunRequest(principal=PRINCIPAL, input_text="go", limits={"max_tool_calls": 1})
        )
        assert first.stop_reason == "tool_budget"
        second = await runner.run(
            RunRequest(principal=PRINCIPAL, thread_id=first.thread_id, input_text="new topic")
        )
        assert second.final_message == "fresh start"
    roles = [(m["role"], m.get("content") or "") for m in openai_stub.requests[-1]["messages"]]
    assert [role for role, _ in roles] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "user",
    ]
    assert "not_executed" in roles[5][1]


DELETE_TURNS = [
    {
        "tool_calls": [
            call("notes_create", title="keep", body="1"),
            call("notes_create", title="bin", body="2"),
        ]
    },
    {"tool_calls": [call("notes_delete", note_id=2)]},
    {"content": "finished"},
]


@pytest.mark.parametrize(
    ("decision", "notes_left", "tool_status"),
    [
        ({"type": "approve"}, 1, "success"),
        ({"type": "reject", "message": "keep it"}, 2, "error"),
        (
            {"type": "edit", "edited_action": {"name": "notes_delete", "args": {"note_id": 1}}},
            1,
            "success",
        ),
    ],
)
async def test_destructive_call_waits_for_a_decision(
    scripted,
    decision,
    notes_left,
    tool_status,  # type: ignore[no-untyped-def]
) -> None:
    async with scripted(DELETE_TURNS) as system:
        runner = Runner(system)
        paused = await runner.run(RunRequest(principal=PRINCIPAL, input_text="tidy up"))
        assert (paused.status, paused.stop_reason, paused.run_status) == (
            "interrupted",
            "waiting_for_human",
            "success",
        )
        request = paused.interrupt["action_requests"][0]
        assert (request["name"], request["args"]) == ("notes_delete", {"note_id": 2})
        assert paused.interrupt["review_configs"][0]["allowed_decisions"] == [
            "approve",
            "edit",
            "reject",
        ]
        assert await count_notes(system) == 2

        done = await runner.run(
            RunRequest(
                principal=PRINCIPAL, thread_id=paused.thread_id, decisions={"decisions": [decision]}
            )
        )
        assert (done.status, done.final_message) == ("success", "finished")
        assert await count_notes(system) == notes_left
        last_tool = _tool_messages(await _state(system, paused.thread_id))[-1]
        assert last_tool.status == tool_status
        if decision["type"] == "reject":
            assert "keep it" in last_tool.content
        if decision["type"] == "edit":
            assert '"title": "keep"' in last_tool.content


async def test_edited_arguments_pass_the_gate_again(scripted, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    async with scripted(DELETE_TURNS) as system:
        runner = Runner(system)
        paused = await runner.run(RunRequest(principal=PRINCIPAL, input_text="tidy up"))
        bad_edit = {
            "type": "edit",
            "edited_action": {"name": "notes_delete", "args": {"note_id": "x"}},
        }
        resume = RunRequest(
            principal=PRINCIPAL, thread_id=paused.thread_id, decisions={"decisions": [bad_edit]}
        )
        answered = len(_tool_messages(await _state(system, paused.thread_id)))
        # Refused when submitted: the thread keeps waiting for a decision.
        with pytest.raises(RunRequestError, match=r"note_id.*still waits for a decision"):
            await runner.run(resume)
        assert await count_notes(system) == 2
        assert len(_tool_messages(await _state(system, paused.thread_id))) == answered
        # The gate checks edited arguments again all the same (an answer that reached it).
        monkeypatch.setattr(Runner, "_check_edit", lambda *args: None)
        done = await runner.run(resume)
        assert done.stop_reason == "completed"
        assert await count_notes(system) == 2
        assert (
            "invalid_arguments"
            in _tool_messages(await _state(system, paused.thread_id))[-1].content
        )


async def test_bad_requests_write_nothing(scripted) -> None:  # type: ignore[no-untyped-def]
    async with scripted(DELETE_TURNS) as system:
        runner = Runner(system)
        with pytest.raises(RunRequestError, match="no assistant 'nope'"):
            await runner.run(RunRequest(principal=PRINCIPAL, assistant_id="nope", input_text="x"))
        paused = await runner.run(RunRequest(principal=PRINCIPAL, input_text="tidy up"))
        with pytest.raises(RunRequestError, match="waiting for a decision"):
            await runner.run(
                RunRequest(principal=PRINCIPAL, thread_id=paused.thread_id, input_text="hi")
            )
        with pytest.raises(RunRequestError, match="1 action"):
            await runner.run(
                RunRequest(
                    principal=PRINCIPAL,
                    thread_id=paused.thread_id,
                    decisions={"decisions": [{"type": "approve"}, {"type": "approve"}]},
                )
            )
        with pytest.raises(RunRequestError, match="unknown type"):
            await runner.run(
                RunRequest(
                    principal=PRINCIPAL, thread_id=paused.thread_id, decisions=[{"type": "maybe"}]
                )
            )
        other_tenant = local_principal(tenant="other")
        with pytest.raises(RunRequestError, match="no thread"):
            await runner.run(
                RunRequest(
                    principal=other_tenant,
                    thread_id=paused.thread_id,
                    decisions=[{"type": "approve"}],
                )
            )
        # The interrupt is still there and answerable.
        done = await runner.run(
            RunRequest(
                principal=PRINCIPAL, thread_id=paused.thread_id, decisions=[{"type": "accept"}]
            )
        )
        assert done.stop_reason == "completed"
        with pytest.raises(RunRequestError, match="nothing to resume"):
            await runner.run(RunRequest(principal=PRINCIPAL, thread_id=paused.thread_id))


async def test_model_error_ends_the_run_in_error_and_keeps_the_thread(scripted) -> None:  # type: ignore[no-untyped-def]
    async with scripted([{"tool_calls": [call("notes_search", query="x")]}]) as system:
        summary = await Runner(system).run(RunRequest(principal=PRINCIPAL, input_text="go"))
        assert (summary.status, summary.stop_reason, summary.run_status) == (
            "error",
            "error",
            "error",
        )
        assert "script has 1 turns" in (summary.error or "")
        values = await _state(system, summary.thread_id)
        assert len(_tool_messages(values)) == 1
