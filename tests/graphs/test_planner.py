"""The planner graph through the runner: plan → execute (tool agent as a subgraph) →
replan → finish, with approvals inside steps, plan review, failures, limits and restarts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from graphs.planner import PROMPTS, compile_planner
from graphs.prompts import versions
from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import ProviderUsage, Thread
from tests.helpers import count_notes

PRINCIPAL = local_principal()
MODELS = "scripted:tests.graphs.plan_models"
REPO = Path(__file__).resolve().parents[2]
REVIEWED = {"reviewed": {"graph_id": "planner", "options": {"review_plan": True}}}


def _settings(data_dir: Path, model: str, **overrides: Any) -> Settings:
    return Settings(data_dir=data_dir, model=f"{MODELS}:{model}", **overrides)


async def _values(system: Any, thread_id: str) -> dict[str, Any]:
    snapshot = await compile_planner(system.checkpointer).aget_state(
        {"configurable": {"thread_id": thread_id}}
    )
    return snapshot.values


async def _usage(system: Any, run_ids: set[str]) -> list[ProviderUsage]:
    await system.router_services.recorder.flush()
    async with system.db.session() as session:
        rows = await session.execute(select(ProviderUsage).order_by(ProviderUsage.id))
        return [row for row in rows.scalars() if row.run_id in run_ids]


def _statuses(values: dict[str, Any]) -> list[tuple[int, str]]:
    return [(step["number"], step["status"]) for step in values["plan"]]


def test_every_prompt_of_the_family_exists_at_every_version() -> None:
    main = versions(PROMPTS[0])
    assert main == ["v1"]
    for name in PROMPTS[1:]:
        assert versions(name) == main, name


async def test_plan_runs_two_steps_with_tools_and_the_answer_cites_them(data_dir: Path) -> None:
    async with open_system(_settings(data_dir, "launch")) as system:
        summary = await Runner(system).run(
            RunRequest(principal=PRINCIPAL, assistant_id="planner", input_text="launch date?")
        )
        values = await _values(system, summary.thread_id)
        usage = await _usage(system, {summary.run_id})
        assert await count_notes(system) == 1
        async with system.db.session() as session:
            thread = await session.get(Thread, summary.thread_id)
    assert (summary.status, summary.stop_reason) == ("success", "completed")
    assert summary.final_message is not None
    assert summary.final_message.startswith("The launch is on Friday [step 1]")
    assert "[step 1] Find notes about the launch — done" in summary.final_message
    assert "[step 2] Save a summary note — done" in summary.final_message
    assert '"title": "launch summary"' in summary.final_message  # what step 2 found
    assert _statuses(values) == [(1, "done"), (2, "done")]
    assert values["phase"] == "done" and values["usage"]["tool_calls"] == 2
    # planner 1 + two steps x (tool call, report) + replanner after each step
    assert values["usage"]["model_calls"] == 7
    # Every model call records its prompt and version; the thread pinned the version.
    assert [(row.node, row.prompt_name) for row in usage] == [
        ("plan", "planner"),
        ("model", "plan_step"),
        ("model", "plan_step"),
        ("replan", "replanner"),
        ("model", "plan_step"),
        ("model", "plan_step"),
        ("replan", "replanner"),
    ]
    assert {row.prompt_version for row in usage} == {"v1"}
    assert {row.assistant_id for row in usage} == {"planner"}
    assert thread is not None and (thread.graph_id, thread.prompt_version) == ("planner", "v1")


async def test_a_malformed_plan_is_repaired_once(data_dir: Path) -> None:
    async with open_system(_settings(data_dir, "repaired")) as system:
        summary = await Runner(system).run(
            RunRequest(principal=PRINCIPAL, assistant_id="planner", input_text="launch date?")
        )
        usage = await _usage(system, {summary.run_id})
    assert summary.stop_reason == "completed"
    assert [row.node for row in usage][:2] == ["plan", "plan"]  # the answer and its repair


async def test_step_events_stream_under_the_executor_namespace(data_dir: Path) -> None:
    async with open_system(_settings(data_dir, "launch")) as system:
        events = [
            event
            async for event in Runner(system).stream(
                RunRequest(
                    principal=PRINCIPAL,
                    assistant_id="planner",
                    input_text="launch date?",
                    stream_mode=("values", "updates"),
                    stream_subgraphs=True,
                )
            )
        ]
    names = [event["event"] for event in events]
    step_updates = [name for name in names if name.startswith("updates|execute:")]
    assert len({name.split("|", 1)[1] for name in step_updates}) == 2  # one namespace per step
    nodes = {node for e in events if e["event"] in step_updates for node in e["data"]}
    assert {"model", "act", "finish"} <= nodes  # the agent's own nodes
    plans = [e["data"]["plan"] for e in events if e["event"] == "values" and e["data"].get("plan")]
    assert [step["status"] for step in plans[-1]] == ["done", "done"]
    assert any([step["status"] for step in p] == ["done", "pending"] for p in plans)
    # Without stream_subgraphs only the planner's own events are sent.
    async with open_system(_settings(data_dir, "launch")) as system:
        plain = [
            event["event"]
            async for event in Runner(system).stream(
                RunRequest(principal=PRINCIPAL, assistant_id="planner", input_text="again")
            )
        ]
    assert not [name for name in plain if "|" in name]


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_a_step_needing_approval_interrupts_the_run_and_resume_continues_it(
    data_dir: Path, decision: str
) -> None:
    async with open_system(_settings(data_dir, "delete_step")) as system:
        runner = Runner(system)
        first = await runner.run(
            RunRequest(principal=PRINCIPAL, assistant_id="planner", input_text="tidy up")
        )
        assert (first.status, first.stop_reason) == ("interrupted", "waiting_for_human")
        request = first.interrupt["action_requests"][0]
        assert (request["name"], request["args"]) == ("notes_delete", {"note_id": 1})
        assert first.interrupt["review_configs"][0]["allowed_decisions"] == [
            "approve",
            "edit",
            "reject",
        ]
        waiting = await _values(system, first.thread_id)
        assert waiting["current_step"] == 2 and _statuses(waiting) == [(1, "done"), (2, "pending")]
        assert await count_notes(system) == 1

        answer: dict[str, Any] = {"type": decision}
        if decision == "reject":
            answer["message"] = "keep it"
        done = await runner.run(
            RunRequest(principal=PRINCIPAL, thread_id=first.thread_id, decisions=[answer])
        )
        values = await _values(system, first.thread_id)
        notes = await count_notes(system)
    assert (done.status, done.stop_reason) == ("success", "completed")
    if decision == "approve":
        assert notes == 0 and _statuses(values) == [(1, "done"), (2, "done")]
        assert done.final_message and "deleted the scratch note" in done.final_message
    else:
        assert notes == 1 and _statuses(values) == [(1, "done"), (2, "failed")]
        assert (
            "rejected" in values["plan"][1]["result"] and "keep it" in values["plan"][1]["result"]
        )
        assert done.final_message and "reviewer rejected" in done.final_message


async def test_a_failed_step_is_replanned(data_dir: Path) -> None:
    async with open_system(_settings(data_dir, "recovering")) as system:
        summary = await Runner(system).run(
            RunRequest(principal=PRINCIPAL, assistant_id="planner", input_text="update note 99")
        )
        values = await _values(system, summary.thread_id)
        assert await count_notes(system) == 1
    assert summary.stop_reason == "completed"
    assert _statuses(values) == [(1, "failed"), (2, "done")]
    assert values["revision"] == 2
    assert "not_found" in values["plan"][0]["result"]
    assert values["plan"][1]["goal"] == "Create the note instead"
    assert summary.final_message and "[step 1] Update note 99 — failed" in summary.final_message


async def test_plan_review_approve_runs_the_plan(data_dir: Path) -> None:
    async with open_system(_settings(data_dir, "launch", assistants=REVIEWED)) as system:
        runner = Runner(system)
        first = await runner.run(
            RunRequest(principal=PRINCIPAL, assistant_id="reviewed", input_text="launch?")
        )
        assert first.status == "interrupted"
        request = first.interrupt["action_requests"][0]
        assert request["name"] == "execute_plan"
        assert [step["goal"] for step in request["args"]["steps"]] == [
            "Find notes about the launch",
            "Save a summary note",
        ]
        assert first.interrupt["review_configs"] == [
            {"action_name": "execute_plan", "allowed_decisions": ["approve", "edit", "reject"]}
        ]
        assert await count_notes(system) == 0  # nothing ran before the review
        done = await runner.run(
            RunRequest(
                principal=PRINCIPAL, thread_id=first.thread_id, decisions=[{"type": "approve"}]
            )
        )
        assert done.stop_reason == "completed" and await count_notes(system) == 1


async def test_plan_review_edit_is_validated_and_the_edited_plan_runs(data_dir: Path) -> None:
    async with open_system(_settings(data_dir, "launch", assistants=REVIEWED)) as system:
        runner = Runner(system)
        first = await runner.run(
            RunRequest(principal=PRINCIPAL, assistant_id="reviewed", input_text="launch?")
        )

        def edit(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
            action = {"name": "execute_plan", "args": {"steps": steps}}
            return [{"type": "edit", "edited_action": action}]

        invalid = await runner.run(
            RunRequest(
                principal=PRINCIPAL,
                thread_id=first.thread_id,
                decisions=edit([{"goal": "", "done_when": "x"}]),
            )
        )
        assert invalid.status == "interrupted"  # asked again, saying what was wrong
        description = invalid.interrupt["action_requests"][0]["description"]
        assert "invalid" in description and "steps.0.goal" in description
        only_search = [{"goal": "Find notes about the launch", "done_when": "found"}]
        done = await runner.run(
            RunRequest(principal=PRINCIPAL, thread_id=first.thread_id, decisions=edit(only_search))
        )
        values = await _values(system, first.thread_id)
        # The edited plan (one search step) ran; the replanner then added the save step.
        assert done.stop_reason == "completed"
        assert values["plan"][0]["done_when"] == "found"
        assert _statuses(values) == [(1, "done"), (2, "done")]


async def test_plan_review_reject_replans_with_the_message_or_stops_without(
    data_dir: Path,
) -> None:
    async with open_system(_settings(data_dir, "launch", assistants=REVIEWED)) as system:
        runner = Runner(system)
        first = await runner.run(
            RunRequest(principal=PRINCIPAL, assistant_id="reviewed", input_text="launch?")
        )
        again = await runner.run(
            RunRequest(
                principal=PRINCIPAL,
                thread_id=first.thread_id,
                decisions=[{"type": "reject", "message": "search first, then save"}],
            )
        )
        assert again.status == "interrupted"  # a new plan, reviewed again
        assert again.interrupt["action_requests"][0]["name"] == "execute_plan"
        replanned = await _values(system, first.thread_id)
        assert replanned["revision"] == 2
        usage = await _usage(system, {first.run_id, again.run_id})
        assert [row.node for row in usage] == ["plan", "plan"]

        stopped = await runner.run(
            RunRequest(
                principal=PRINCIPAL, thread_id=first.thread_id, decisions=[{"type": "reject"}]
            )
        )
        values = await _values(system, first.thread_id)
        assert (stopped.status, stopped.stop_reason) == ("success", "completed")
        assert stopped.final_message and "rejected the plan" in stopped.final_message
        assert _statuses(values) == [(1, "pending"), (2, "pending")]
        assert await count_notes(system) == 0


@pytest.mark.parametrize(
    ("limits", "reason", "statuses"),
    [
        # planner + step 1 (2 calls) use 3 model calls: the replanner may not run
        ({"max_steps": 3}, "step_limit", [(1, "done"), (2, "pending")]),
        # step 1 uses the only tool call: step 2 stops inside the agent, before its call
        ({"max_tool_calls": 1}, "tool_budget", [(1, "done"), (2, "pending")]),
    ],
)
async def test_a_limit_stops_the_plan_and_raising_it_continues(
    data_dir: Path, limits: dict[str, int], reason: str, statuses: list[tuple[int, str]]
) -> None:
    async with open_system(_settings(data_dir, "launch")) as system:
        runner = Runner(system)
        first = await runner.run(
            RunRequest(
                principal=PRINCIPAL, assistant_id="planner", input_text="launch?", limits=limits
            )
        )
        assert (first.status, first.stop_reason) == ("limit", reason)
        assert first.final_message and "raise" in first.final_message
        values = await _values(system, first.thread_id)
        assert _statuses(values) == statuses
        assert values["resume_at"] == "resume"
        same = await runner.run(
            RunRequest(principal=PRINCIPAL, thread_id=first.thread_id, limits=limits)
        )
        assert same.stop_reason == reason, same.error  # the same limit stops again at once
        done = await runner.run(
            RunRequest(
                principal=PRINCIPAL,
                thread_id=first.thread_id,
                limits={"max_steps": 50, "max_tool_calls": 50},
            )
        )
        values = await _values(system, first.thread_id)
        assert done.stop_reason == "completed"
        assert _statuses(values) == [(1, "done"), (2, "done")]
        assert await count_notes(system) == 1  # step 2's note, saved once


async def test_an_interrupted_plan_resumes_in_a_new_system(data_dir: Path) -> None:
    """The plan, the step's agent state and the pending approval survive a restart."""
    async with open_system(_settings(data_dir, "delete_step")) as system:
        first = await Runner(system).run(
            RunRequest(principal=PRINCIPAL, assistant_id="planner", input_text="tidy up")
        )
    assert first.status == "interrupted"
    async with open_system(_settings(data_dir, "delete_step")) as system:
        done = await Runner(system).run(
            RunRequest(
                principal=PRINCIPAL, thread_id=first.thread_id, decisions=[{"type": "approve"}]
            )
        )
        assert done.stop_reason == "completed"
        assert await count_notes(system) == 0


@pytest.mark.slow
def test_a_plan_killed_mid_step_resumes_from_a_new_process(tmp_path: Path, data_dir: Path) -> None:
    """SIGKILL while step 2's tool holds its transaction; a new process continues the
    thread: no finished model call runs again and every note is written once."""
    env = {**os.environ, "RELAYGRAPH_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "tests.graphs.plan_crash_worker"]
    (tmp_path / "block").write_text("")
    worker = subprocess.Popen(
        [*command, "run", "plan-crash", str(tmp_path)],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "blocked").exists():
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "step 2 never reached its tool"
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)

    (tmp_path / "block").unlink()
    resumed = subprocess.run(
        [*command, "resume", "plan-crash", str(tmp_path)],
        cwd=REPO,
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["stop_reason"]) == ("success", "completed")
    assert "[step 2] Save the second note — done" in summary["final_message"]
    calls = [line.split()[0] for line in (tmp_path / "model_calls.log").read_text().splitlines()]
    # plan, step 1 (call, report), replan, step 2's call | killed | step 2's report, replan
    assert calls == ["planner", "step", "step", "replanner", "step", "step", "replanner"]
    with sqlite3.connect(data_dir / "relaygraph.db") as db:
        titles = sorted(row[0] for row in db.execute("select title from notes"))
    assert titles == ["first", "second"]


async def test_unknown_planner_options_are_refused_at_start_up(data_dir: Path) -> None:
    # Checked when the assistant is configured (issue 7), not at its first run.
    assistants = {"odd": {"graph_id": "planner", "options": {"review_plans": True}}}
    with pytest.raises(ValueError, match=r"assistant 'odd'.*review_plans.*review_plan \(bool\)"):
        async with open_system(_settings(data_dir, "launch", assistants=assistants)):
            pass
