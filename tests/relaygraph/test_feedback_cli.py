"""``relaygraph feedback export`` end to end: runs with feedback in two tenants, exported as
a suite that ``relaygraph eval`` loads and runs unchanged; rubrics are reported as not
scored without a judge, and scored by a real (local, OpenAI-compatible) judge with one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from typer.testing import CliRunner

from evals.cases import Suite, load_suite
from evals.models import ORACLE
from evals.runner import EvalConfig, SuiteRunner, summarise
from identity import Principal
from relaygraph.cli import app
from runtime.feedback import FeedbackInput, FeedbackService
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import Run

ALICE = Principal.with_roles("a", "alice", ["user"])
RITA = Principal.with_roles("a", "rita", ["reviewer"])
BOB = Principal.with_roles("b", "bob", ["user"])
CAPITAL = "What is the capital of Denmark?"
HOW_MANY = "And how many people live there? Reply to alice@example.com"
POLICY = "Summarise the refund policy"
POLICY_ANSWER = "Refunds are possible within 30 days when the item is unused; store credit after."
SOURCE_RUBRIC = "The answer must not give a population figure without naming its source."
B_QUESTION = "What is our launch date?"


REPLIES = {
    CAPITAL: "Copenhagen.",
    HOW_MANY: "Two thirds of a million live in the city itself.",
    POLICY: POLICY_ANSWER,
    B_QUESTION: "The third of March.",
}
MODEL = """
from langchain_core.messages import HumanMessage

REPLIES = {replies!r}


def answer(messages):
    asked = next(m for m in reversed(messages) if isinstance(m, HumanMessage))
    return {{"content": REPLIES[asked.content]}}
"""


async def _seed(data_dir: Path, tmp_path: Path) -> dict[str, str]:
    """Four runs with feedback: three in tenant a (one bad with a comment), one in b."""
    model = tmp_path / "model.py"
    model.write_text(MODEL.format(replies=REPLIES), encoding="utf-8")
    spec = f"scripted:{model}:answer"
    runs: dict[str, str] = {}
    async with open_system(Settings(data_dir=data_dir, model=spec)) as system:
        runner, feedback = Runner(system), FeedbackService(system.db)

        async def run(
            name: str, who: Principal, text: str, thread: str | None, given: FeedbackInput
        ) -> str:
            summary = await runner.run(RunRequest(principal=who, input_text=text, thread_id=thread))
            async with system.db.session() as session:
                row = await session.get(Run, summary.run_id)
            assert row is not None
            await feedback.give(RITA if name == "population" else who, row, given)
            runs[name] = summary.run_id
            return summary.thread_id

        thread = await run("capital", ALICE, CAPITAL, None, FeedbackInput(score=1))
        await run(
            "population",
            ALICE,
            HOW_MANY,
            thread,
            FeedbackInput(key="correctness", score=0, comment=SOURCE_RUBRIC),
        )
        await run("policy", ALICE, POLICY, None, FeedbackInput(score=1, comment="spot on"))
        await run("launch", BOB, B_QUESTION, None, FeedbackInput(score=0, comment="Cite the plan."))
    return runs


def _export(*args: str) -> Any:
    result = CliRunner().invoke(app, ["feedback", "export", *args])
    assert result.exit_code == 0, result.output
    return result


def _by_run(suite: Suite) -> dict[str, Any]:
    return {case.source["run_id"]: case for case in suite.cases}


def test_feedback_exports_as_a_suite_that_eval_runs(data_dir: Path, tmp_path: Path) -> None:
    runs = asyncio.run(_seed(data_dir, tmp_path))
    path = tmp_path / "feedback.yaml"
    _export("--tenant", "a", "--out", str(path))

    suite = load_suite(path)
    assert suite.name == "feedback" and len(suite.cases) == 3
    cases = _by_run(suite)
    assert set(cases) == {runs["capital"], runs["population"], runs["policy"]}
    capital, population, policy = (cases[runs[n]] for n in ("capital", "population", "policy"))
    assert [t.input for t in capital.turns] == [CAPITAL]
    assert capital.expect.answer_contains == ["Copenhagen"] and capital.expect.judge is None
    # The bad answer's thread is replayed from its start; the rubric is the comment verbatim.
    assert [(t.input, t.answer) for t in population.turns] == [
        (CAPITAL, "Copenhagen."),
        ("And how many people live there? Reply to <EMAIL>", ""),
    ]
    assert population.expect.judge == SOURCE_RUBRIC and not population.expect.answer_contains
    assert population.tags == ["feedback", "bad", "key:correctness"]
    assert POLICY_ANSWER in (policy.expect.judge or "")
    assert {c.assistant for c in suite.cases} == {"agent"}
    assert all(not c.expect.state and c.expect.trajectory is None for c in suite.cases)
    assert "alice@example.com" not in path.read_text()

    # The same cases as JSONL (one per line), which the loader names after the file.
    lines = tmp_path / "regressions.jsonl"
    _export("--tenant", "a", "--out", str(lines))
    assert len(lines.read_text().splitlines()) == 3
    as_jsonl = load_suite(lines)
    assert as_jsonl.name == "regressions"
    assert [c.model_dump() for c in as_jsonl.cases] == [c.model_dump() for c in suite.cases]

    # Only the exporter's tenant: b sees its own feedback and nothing of a's, and vice versa.
    other = _export("--tenant", "b", "--format", "jsonl").stdout
    assert [json.loads(line)["source"]["run_id"] for line in other.splitlines()] == [runs["launch"]]
    assert CAPITAL not in other and B_QUESTION not in path.read_text()

    # `relaygraph eval` runs the file unchanged. Without --judge, rubrics are not scored:
    # reported as such and left out of the pass rate, never counted as passed.
    report = tmp_path / "report.json"
    evaluated = CliRunner().invoke(
        app, ["eval", str(path), "--model", "oracle", "--out", str(report)]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert f"feedback/{population.id}" in evaluated.output
    assert "not scored: llm_judge" in evaluated.output and "(+2 not scored)" in evaluated.output
    written = json.loads(report.read_text())
    results = {c["case_id"]: c for c in written["cases"]}
    assert results[capital.id]["passed"] and not results[capital.id]["unscored"]
    assert "answer_contains" in {s["name"] for s in results[capital.id]["scores"]}
    for unjudged in (population.id, policy.id):
        assert results[unjudged]["unscored"] and not results[unjudged]["passed"]
        assert results[unjudged]["not_scored"] == [
            "llm_judge: the rubric needs --judge MODEL (a real provider)"
        ]
    metrics = written["suites"]["feedback"]
    assert metrics["not_scored"] == 2 and metrics["cases"] == 1 and metrics["pass@1"] == 1.0


async def test_a_real_judge_scores_the_exported_rubric(
    data_dir: Path, tmp_path: Path, openai_stub: Any
) -> None:
    runs = await _seed(data_dir, tmp_path)
    path = tmp_path / "feedback.yaml"
    await asyncio.to_thread(_export, "--tenant", "a", "--key", "correctness", "--out", str(path))
    suite = load_suite(path)
    [case] = suite.cases
    assert case.source["run_id"] == runs["population"]

    openai_stub.reply("FAIL: gives a figure and names no source")
    settings = Settings(data_dir=data_dir, compatible_api_key=SecretStr("sk-test"))
    config = EvalConfig(
        model=ORACLE,
        judge_model=f"openai-compatible:judge@{openai_stub.base_url}",
        workdir=tmp_path,
    )
    results = await SuiteRunner(config, settings).run([suite])
    [result] = results
    assert result.error is None and not result.unscored and not result.passed
    judged = next(s for s in result.scores if s.name == "llm_judge")
    assert not judged.passed and "names no source" in judged.detail
    prompt = json.dumps(openai_stub.requests[-1])
    assert SOURCE_RUBRIC in prompt and "Reply to <EMAIL>" in prompt
    assert summarise(suite, results, 1)["pass@1"] == 0.0
