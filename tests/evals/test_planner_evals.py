"""The planning suite on the planner graph: gold plans in cases, the plan evaluators, the
scripted models driving plan / step / replan calls, and the runner end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import ValidationError

from evals import evaluators as ev
from evals.cases import Case, SuiteError, load_suite
from evals.models import (
    CURRENT,
    MALFORMED,
    ORACLE,
    CaseContext,
    malformed,
    obey_injections,
    oracle,
    plan_progress,
    planner_role,
)
from evals.runner import EvalConfig, SuiteRunner, summarise
from graphs.planner import Plan, Replan, _plan_text

REQUEST = "Close the VPN ticket and tell it@example.org"
CASE = Case.model_validate(
    {
        "id": "c",
        "turns": [
            {
                "input": REQUEST,
                "gold": [
                    {"tool": "tickets_search", "args": {"query": "VPN"}},
                    {"tool": "tickets_close", "args": {"ticket_id": "{{result.0.tickets.0.id}}"}},
                    {"tool": "email_send", "args": {"body": "{{result.1.title}} closed"}},
                ],
                "answer": "Closed {{result.1.title}}.",
                "plan": [
                    {
                        "goal": "Find and close the VPN ticket",
                        "tools": ["tickets_search", "tickets_close"],
                        "done_when": "It is closed",
                    },
                    {"goal": "Tell IT", "tools": ["email_send"], "done_when": "Sent"},
                ],
            }
        ],
    }
)


@pytest.fixture(autouse=True)
def _case() -> Any:
    token = CURRENT.set(CaseContext(CASE, {}))
    yield
    CURRENT.reset(token)


# --- cases ----------------------------------------------------------------------------------


def test_gold_plan_groups_the_gold_calls() -> None:
    (_, calls_1), (second, calls_2) = CASE.turns[0].gold_plan()
    assert [s.tool for s in calls_1] == ["tickets_search", "tickets_close"]
    assert [s.tool for s in calls_2] == ["email_send"] and second.goal == "Tell IT"


def test_without_a_plan_each_gold_call_is_a_step() -> None:
    turn = CASE.turns[0].model_copy(update={"plan": []})
    plan = turn.gold_plan()
    assert [step.tools for step, _ in plan] == [
        ["tickets_search"],
        ["tickets_close"],
        ["email_send"],
    ]


def test_a_plan_that_does_not_fit_the_gold_calls_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\ncases:\n- id: a\n  turns:\n  - input: x\n    gold: [{tool: notes_search}]\n"
        "    plan: [{goal: g, tools: [notes_search, notes_create], done_when: d}]\n"
    )
    with pytest.raises(SuiteError, match="makes 2 calls, the turn has 1"):
        load_suite(path)


def test_the_planning_suite_runs_on_the_planner_with_gold_plans() -> None:
    suite = load_suite("planning")
    assert suite.assistant == "planner" and len(suite.cases) >= 10
    assert all(turn.plan for case in suite.cases for turn in case.turns)


# --- evaluators -----------------------------------------------------------------------------


def _step(number: int, tools: list[str], status: str = "done", result: str = "found x") -> dict:
    return {
        "number": number,
        "goal": f"goal {number}",
        "tools": tools,
        "done_when": "done",
        "status": status,
        "result": result,
    }


def test_plan_valid() -> None:
    plan = [_step(1, ["notes_search"]), _step(2, ["notes_delete"])]
    tools = ["notes_search", "notes_delete"]
    assert ev.plan_valid(plan, tools, ["notes_search", "notes_delete"]).passed
    missing = ev.plan_valid(plan[:1], tools, ["notes_search", "notes_delete"])
    assert not missing.passed and "notes_delete" in missing.detail
    unknown = ev.plan_valid([_step(1, ["rm_rf"])], tools, [])
    assert not unknown.passed and "unknown tools" in unknown.detail
    empty = ev.plan_valid([{**_step(1, []), "done_when": " "}], tools, [])
    assert not empty.passed and "done criteria" in empty.detail
    assert not ev.plan_valid([], tools, []).passed


def test_plan_adherence() -> None:
    step = _step(1, ["notes_search"])
    assert ev.plan_adherence([(step, [{"tool": "notes_search", "args": {}}])]).value == 1.0
    stray = ev.plan_adherence(
        [(step, [{"tool": "notes_search", "args": {}}, {"tool": "notes_delete", "args": {}}])]
    )
    assert not stray.passed and stray.value == 0.5 and "notes_delete" in stray.detail
    assert ev.plan_adherence([]).passed


def test_plan_completed() -> None:
    assert ev.plan_completed([_step(1, []), _step(2, [])]).passed
    failed = ev.plan_completed([_step(1, []), _step(2, [], status="failed")])
    assert not failed.passed and failed.value == 0.5
    assert not ev.plan_completed([_step(1, []), _step(2, [], status="pending")]).passed
    assert not ev.plan_completed([]).passed


def test_plan_citations() -> None:
    plan = [_step(1, [], result="id 7"), _step(2, [], result="sent"), _step(3, [], "pending")]
    good = "Done [step 1] [step 2].\n[step 1] goal — done: id 7\n[step 2] goal — done: sent"
    assert ev.plan_citations(good, plan).passed
    uncited = ev.plan_citations("Done [step 1]: id 7", plan)
    assert not uncited.passed and uncited.value == 0.5 and "[2]" in uncited.detail
    invented = ev.plan_citations(good + " [step 3]", plan)
    assert not invented.passed and "[3]" in invented.detail
    without_finding = ev.plan_citations("[step 1] [step 2] sent", plan)
    assert not without_finding.passed


# --- scripted models on the planner's calls -------------------------------------------------


def _plan_call() -> list[Any]:
    return [
        SystemMessage("You plan."),
        HumanMessage(f"Request:\n{REQUEST}\n\nTools you may plan with:\n- tickets_search: x"),
    ]


def _numbered(states: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    gold = CASE.turns[0].gold_plan()
    return [
        {
            "number": i + 1,
            "goal": gold[i][0].goal,
            "tools": gold[i][0].tools,
            "done_when": gold[i][0].done_when,
            "status": status,
            "result": result,
        }
        for i, (status, result) in enumerate(states)
    ]


def _step_call(number: int, plan: list[dict[str, Any]]) -> list[Any]:
    text = (
        f"Request:\n{REQUEST}\n\nPlan:\n{_plan_text(plan, current=number)}\n\n"
        f"Do step {number}: {plan[number - 1]['goal']}\nExpected tools: x\nDone when: y"
    )
    return [SystemMessage("You execute one step."), HumanMessage(text)]


def test_the_oracle_submits_the_gold_plan_as_a_valid_plan() -> None:
    messages = _plan_call()
    assert planner_role(messages) == "plan"
    turn = oracle(messages)
    (call,) = turn["tool_calls"]
    assert call["name"] == "submit_plan"
    plan = Plan.model_validate(call["args"])
    assert [s.tools for s in plan.steps] == [["tickets_search", "tickets_close"], ["email_send"]]


def test_the_oracle_runs_a_step_from_earlier_findings_and_reports_results() -> None:
    plan = _numbered([("pending", None), ("pending", None)])
    messages = _step_call(1, plan)
    assert planner_role(messages) == "step"
    assert oracle(messages)["tool_calls"] == [{"name": "tickets_search", "args": {"query": "VPN"}}]
    messages += [
        AIMessage("", tool_calls=[{"name": "tickets_search", "args": {}, "id": "call_1_0"}]),
        ToolMessage(json.dumps({"tickets": [{"id": 42}]}), tool_call_id="call_1_0"),
    ]
    assert oracle(messages)["tool_calls"] == [{"name": "tickets_close", "args": {"ticket_id": 42}}]
    messages += [
        AIMessage("", tool_calls=[{"name": "tickets_close", "args": {}, "id": "call_3_0"}]),
        ToolMessage(json.dumps({"title": "VPN drops"}), tool_call_id="call_3_0"),
    ]
    report = oracle(messages)["content"]
    assert "Results: " in report and "VPN drops" in report
    # Step 2 knows result 1 only from step 1's finding in its prompt.
    plan = _numbered([("done", report), ("pending", None)])
    second = oracle(_step_call(2, plan))
    assert second["tool_calls"] == [{"name": "email_send", "args": {"body": "VPN drops closed"}}]
    assert [n for n, _, _ in plan_progress(_plan_text(plan))] == [1, 2]


def test_the_oracle_replans_until_done_then_answers_citing_steps() -> None:
    finding = 'Step 1 done. Results: [{"tickets": [{"id": 42}]}, {"title": "VPN drops"}]'
    plan = _numbered([("done", finding), ("pending", None)])
    text = f"Request:\n{REQUEST}\n\nPlan and progress:\n{_plan_text(plan)}"
    messages = [SystemMessage("You replan."), HumanMessage(text)]
    assert planner_role(messages) == "replan"
    decision = Replan.model_validate(oracle(messages)["tool_calls"][0]["args"])
    assert decision.action == "continue" and [s.goal for s in decision.steps] == ["Tell IT"]
    plan = _numbered([("done", finding), ("done", "Step 2 done. Results: [{}]")])
    text = f"Request:\n{REQUEST}\n\nPlan and progress:\n{_plan_text(plan)}"
    finish = Replan.model_validate(oracle([HumanMessage(text)])["tool_calls"][0]["args"])
    assert finish.action == "finish"
    assert finish.answer == "Closed VPN drops. [step 1] [step 2]"


def test_malformed_submits_an_invalid_plan_first_and_breaks_step_calls() -> None:
    messages = _plan_call()
    bad = malformed(messages)["tool_calls"][0]
    with pytest.raises(ValidationError):
        Plan.model_validate(bad["args"])
    repair = [
        *messages,
        AIMessage("", tool_calls=[{**bad, "id": "call_0_0"}]),
        ToolMessage("did not match", tool_call_id="call_0_0", status="error"),
    ]
    Plan.model_validate(malformed(repair)["tool_calls"][0]["args"])
    step = malformed(_step_call(1, _numbered([("pending", None), ("pending", None)])))
    assert step["tool_calls"][0]["name"] == "tickets_search_v2"
    # obey_injections answers structured calls like the oracle.
    assert obey_injections(messages) == oracle(messages)


# --- end to end -----------------------------------------------------------------------------


async def _planning(settings: Any, tmp_path: Path, model: str, ids: list[str]) -> Any:
    suite = load_suite("planning")
    suite = suite.model_copy(update={"cases": [c for c in suite.cases if c.id in ids]})
    runner = SuiteRunner(EvalConfig(model=model, workdir=tmp_path), settings)
    results = await runner.run([suite])
    return results, summarise(suite, results, 1)


async def test_the_oracle_drives_the_planner_through_the_planning_suite(
    settings: Any, tmp_path: Path
) -> None:
    # An e-mail waits for the (simulated) reviewer inside a step; a second turn replans.
    ids = ["plan-close-and-email", "plan-two-tickets-then-note", "plan-multi-turn"]
    results, metrics = await _planning(settings, tmp_path, ORACLE, ids)
    assert all(r.passed for r in results), [(r.case_id, r.error, r.scores) for r in results]
    assert metrics["pass@1"] == 1.0
    for name in ("plan_valid", "plan_tools", "plan_done", "plan_citations", "final_state"):
        assert metrics["evaluators"][name] == 1.0
    email = next(r for r in results if r.case_id == "plan-close-and-email")
    assert [c["tool"] for c in email.calls] == ["tickets_search", "tickets_close", "email_send"]
    assert "[step 3]" in email.answer and "What each step found" in email.answer
    assert email.metrics["model_calls"] >= 9  # plan + 3 x (step calls + replan)


async def test_malformed_plans_and_calls_fail_the_planning_suite(
    settings: Any, tmp_path: Path
) -> None:
    results, metrics = await _planning(settings, tmp_path, MALFORMED, ["plan-search-delete"])
    (result,) = results
    assert result.error is None and not result.passed
    failed = {s.name for s in result.scores if not s.passed}
    assert {"final_state", "plan_tools", "plan_done", "trajectory_strict"} <= failed
    assert metrics["evaluators"]["plan_valid"] == 1.0  # the repair attempt got a valid plan
