"""The user simulator: scripted (offline) on a hand-made tau2-format task, and LLM-backed
against the local OpenAI-compatible stub (never a real API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evals.adapters.tau2_mock import load_tau2_mock
from evals.models import MALFORMED, ORACLE
from evals.runner import EvalConfig, SuiteRunner
from evals.user_sim import STOP, LLMUser, ScriptedUser, converse
from tests.stubs.openai_stub import OpenAIStub

DB = {
    "tasks": {"task_1": {"task_id": "task_1", "title": "Old", "description": None,
                         "status": "pending"}},
    "users": {"user_1": {"user_id": "user_1", "name": "Ann", "tasks": ["task_1"]}},
}  # fmt: skip
USER_DB = {"notifications": {}}
TASK = {
    "id": "hand_made_user_tools",
    "user_scenario": {
        "instructions": "You got a notification. First, use the check_notifications tool to "
        "see it. Tell the agent you have completed this task and ask them to update the "
        "status to completed. After the agent confirms, use dismiss_notification to dismiss "
        "the notification 'n_9'."
    },
    "initial_state": {
        "initialization_actions": [
            {"env_type": "user", "func_name": "add_notification",
             "arguments": {"notification_id": "n_9", "message": "Assigned", "task_id": "task_1"}}
        ]
    },
    "evaluation_criteria": {
        "actions": [{"action_id": "a", "name": "update_task_status",
                     "arguments": {"task_id": "task_1", "status": "completed"}}],
        "env_assertions": [{"env_type": "user", "func_name": "assert_notification_status",
                            "arguments": {"notification_id": "n_9", "expected_status": "read"}}],
        "reward_basis": ["DB", "ACTION", "ENV_ASSERTION"],
    },
}  # fmt: skip
HISTORY_TASK = {
    "id": "hand_made_history",
    "user_scenario": {"instructions": "Continue. Now you want to mark the task as completed."},
    "initial_state": {
        "message_history": [
            {"role": "user", "content": "Create a task 'Review' for user_1."},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "name": "create_task",
                 "arguments": {"user_id": "user_1", "title": "Review"}}]},
            {"role": "tool", "id": "c1", "content": "{}"},
            {"role": "assistant", "content": "Created task_2."},
        ]
    },
    "evaluation_criteria": {
        "env_assertions": [{"env_type": "assistant", "func_name": "assert_task_status",
                            "arguments": {"task_id": "task_2", "expected_status": "completed"}}],
        "reward_basis": ["DB", "ENV_ASSERTION"],
    },
}  # fmt: skip


def _dataset(root: Path) -> Path:
    (root / "db.json").write_text(json.dumps(DB))
    (root / "user_db.json").write_text(json.dumps(USER_DB))
    (root / "policy_solo.md").write_text("Help the user with their tasks.")
    (root / "tasks.json").write_text(json.dumps([TASK, HISTORY_TASK]))
    return root


def test_scripted_user_reveals_the_task_and_acts_after_the_agent(tmp_path: Path) -> None:
    suite = load_tau2_mock(_dataset(tmp_path))
    case = next(c for c in suite.cases if c.id == "hand_made_user_tools")
    [turn] = case.turns
    assert "I have completed task task_1" in turn.input  # learnt from check_notifications
    assert [(s.tool, s.args) for s in turn.user_actions] == [
        ("dismiss_notification", {"notification_id": "n_9"})
    ]
    history = next(c for c in suite.cases if c.id == "hand_made_history")
    assert [t.input.splitlines()[-1] for t in history.turns] == [
        "Create a task 'Review' for user_1.",
        "Now I want to mark the task as completed.",
    ]
    # the asserted status update is the reference call of the last turn
    assert history.turns[1].gold[0].args == {"task_id": "task_2", "status": "completed"}


def test_scripted_user_is_deterministic_and_skips_non_requests() -> None:
    user = ScriptedUser("You are a member. Request that task_3 be marked as completed.")
    assert [t.text for t in user.turns()] == ["Please make sure task_3 be marked as completed."]
    assert [t.text for t in user.turns()] == [t.text for t in user.turns()]


async def test_simulated_conversations_pass_with_oracle_and_fail_malformed(  # type: ignore[no-untyped-def]
    settings, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    suite = load_tau2_mock(_dataset(tmp_path / "data"))
    good = await SuiteRunner(EvalConfig(model=ORACLE, workdir=tmp_path), settings).run([suite])
    assert all(r.passed for r in good), [(r.case_id, r.scores, r.error) for r in good]
    bad = await SuiteRunner(EvalConfig(model=MALFORMED, workdir=tmp_path), settings).run([suite])
    assert not any(r.passed for r in bad)
    # without the user's dismissal the notification stays unread: the env check fails
    case = next(c for c in suite.cases if c.id == "hand_made_user_tools")
    case.turns[0].user_actions = []
    alone = await SuiteRunner(EvalConfig(model=ORACLE, workdir=tmp_path), settings).run(
        [suite.model_copy(update={"cases": [case]})]
    )
    assert not alone[0].passed
    assert any(s.name.startswith("environment") and not s.passed for s in alone[0].scores)


async def test_llm_user_talks_until_stop_against_the_stub() -> None:
    from langchain_openai import ChatOpenAI

    with OpenAIStub() as stub:
        stub.reply("Please mark task_1 as completed.")
        stub.reply("Thanks, that is all.")
        stub.reply(STOP)
        stub.reply("never asked for")
        model = ChatOpenAI(model="gpt-4o-mini", base_url=stub.base_url, api_key="stub-key")
        user = LLMUser(model, "Ask for task_1 to be completed.", persona="terse")
        heard: list[str] = []

        async def agent(text: str) -> str:
            heard.append(text)
            return "Done: task_1 is completed."

        transcript = await converse(user, agent, max_turns=5)
        assert heard == ["Please mark task_1 as completed.", "Thanks, that is all."]
        assert [role for role, _ in transcript] == ["user", "agent", "user", "agent"]
        assert len(stub.requests) == 3
        first: dict[str, Any] = stub.requests[0]
        assert "Ask for task_1 to be completed." in first["messages"][0]["content"]
        assert STOP in first["messages"][0]["content"]
        # the user's own earlier words come back as its (assistant) turns
        assert stub.requests[2]["messages"][-2]["role"] == "assistant"


async def test_llm_user_stops_after_max_turns() -> None:
    from langchain_openai import ChatOpenAI

    with OpenAIStub() as stub:
        for _ in range(3):
            stub.reply("still here")
        model = ChatOpenAI(model="gpt-4o-mini", base_url=stub.base_url, api_key="stub-key")

        async def agent(text: str) -> str:
            return "ok"

        transcript = await converse(LLMUser(model, "chat"), agent, max_turns=2)
        assert len(transcript) == 4 and len(stub.requests) == 2


async def test_user_model_plays_the_user_after_the_history(
    settings, openai_stub, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    (tmp_path / "data").mkdir()
    suite = load_tau2_mock(_dataset(tmp_path / "data"))
    case = next(c for c in suite.cases if c.id == "hand_made_history")
    assert case.user is not None and case.user.from_turn == 1
    openai_stub.reply("Now I want to mark the task as completed.")  # the oracle knows this turn
    openai_stub.reply(STOP)
    configured = settings.model_copy(
        update={"openai_api_key": SecretStr("sk-test"), "openai_base_url": openai_stub.base_url}
    )
    config = EvalConfig(model=ORACLE, workdir=tmp_path, user_model="openai:gpt-4o-mini")
    [result] = await SuiteRunner(config, configured).run(
        [suite.model_copy(update={"cases": [case]})]
    )
    assert result.passed, (result.scores, result.error)
    assert [c["tool"] for c in result.calls] == ["create_task", "update_task_status"]
    assert len(openai_stub.requests) == 2
    assert "Now you want to mark the task" in openai_stub.requests[0]["messages"][0]["content"]
