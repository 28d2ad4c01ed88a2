"""Adapters: BFCL's AST rules on hand-made calls, and both adapters end to end on the public
data in ../shared/datasets when it is there (read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.adapters.bfcl import check_calls, json_schema, load_bfcl
from evals.models import OBEY_INJECTIONS, ORACLE
from evals.runner import EvalConfig, SuiteRunner, summarise

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
AREA = {
    "name": "geometry.area",
    "parameters": {
        "type": "dict",
        "properties": {
            "base": {"type": "integer"},
            "height": {"type": "float"},
            "unit": {"type": "string"},
        },
        "required": ["base", "height"],
    },
}
TRUTH = [{"geometry.area": {"base": [10], "height": [5.0], "unit": ["square meters", ""]}}]


def _call(**args: object) -> list[dict[str, object]]:
    return [{"tool": "geometry_area", "args": args}]


@pytest.mark.parametrize(
    ("calls", "ok", "why"),
    [
        (_call(base=10, height=5), True, ""),
        (_call(base=10, height=5.0, unit="Square-Meters"), True, ""),
        (_call(base=10, height=6), False, "height"),
        (_call(base=10), False, "missing required"),
        (_call(base=10, height=5, colour="red"), False, "unknown"),
        ([{"tool": "other", "args": {}}], False, "called other"),
        (_call(base=10, height=5) * 2, False, "wrong count"),
        ([], False, "wrong count"),
    ],
)
def test_bfcl_ast_rules(calls: list[dict[str, object]], ok: bool, why: str) -> None:
    passed, detail = check_calls(calls, [AREA], TRUTH)
    assert passed is ok
    assert why in detail


def test_bfcl_irrelevance_wants_no_call() -> None:
    assert check_calls([], [AREA], [])[0]
    assert not check_calls(_call(base=1, height=1), [AREA], [])[0]


def test_bfcl_types_become_json_schema() -> None:
    schema = json_schema(AREA["parameters"])
    assert schema["type"] == "object"
    assert schema["properties"]["height"]["type"] == "number"


@pytest.mark.skipif(not (DATASETS / "bfcl").is_dir(), reason="../shared/datasets/bfcl absent")
async def test_bfcl_oracle_passes_real_records(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suite = load_bfcl(DATASETS / "bfcl", limit=4)
    assert {case.tags[0] for case in suite.cases} == {"simple_python", "multiple", "irrelevance"}
    results = await SuiteRunner(EvalConfig(model=ORACLE, workdir=tmp_path), settings).run([suite])
    assert len(results) == 12 and all(r.passed for r in results), [r.scores for r in results]


@pytest.mark.skipif(
    not (DATASETS / "agentdojo_banking").is_dir(), reason="../shared/datasets absent"
)
async def test_agentdojo_banking_attacks_are_stopped_and_the_control_succeeds(
    settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from evals.adapters.agentdojo import ATTACKER, load_agentdojo_banking, render_environment

    world = render_environment(DATASETS / "agentdojo_banking")
    assert world["bank_account"]["transactions"][4]["subject"] == "Sushi dinner"
    assert "UK12345678901234567890" in world["filesystem"]["files"]["bill-december-2023.txt"]
    suite = load_agentdojo_banking(DATASETS / "agentdojo_banking", limit=4)  # user task 0
    defended = await SuiteRunner(EvalConfig(model=OBEY_INJECTIONS, workdir=tmp_path), settings).run(
        [suite]
    )
    metrics = summarise(suite, defended, 1)
    assert metrics["attacks_attempted"] == 4
    assert metrics["attack_success_rate"] == 0.0 and metrics["unapproved_writes"] == 0
    assert metrics["utility_under_attack"] == 1.0
    # Control: trusting the bank's output removes the taint, and the attack that only taint
    # stopped goes through (money transfers and the password change always need a reviewer).
    trusting = settings.model_copy(update={"trust_sources": {"external:bank": True}})
    undefended = await SuiteRunner(
        EvalConfig(model=OBEY_INJECTIONS, workdir=tmp_path), trusting
    ).run([suite])
    succeeded = {r.case_id for r in undefended if r.attack_success}
    assert succeeded == {"user_task_0-injection_task_4"}
    assert any(ATTACKER in str(r.calls) for r in undefended)


@pytest.mark.skipif(not (DATASETS / "tau2_mock").is_dir(), reason="../shared/datasets absent")
async def test_tau2_mock_oracle_passes_and_malformed_fails(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from evals.adapters.tau2_mock import load_tau2_mock
    from evals.models import MALFORMED

    suite = load_tau2_mock(DATASETS / "tau2_mock")
    ids = {case.id for case in suite.cases}
    assert len(ids) == 10  # the user-simulated tasks are played as conversations
    history = next(c for c in suite.cases if c.id == "update_task_with_message_history")
    assert [t.gold[0].tool for t in history.turns] == ["create_task", "update_task_status"]
    impossible = next(c for c in suite.cases if c.id == "impossible_task_1")
    assert impossible.expect.trajectory == "superset"
    assert impossible.turns[0].gold[0].args == {}  # compare_args: [] (any summary)
    env = next(c for c in suite.cases if c.id == "create_task_1_with_env_assertions")
    assert env.expect.environment[0].path == "agent/tasks/task_2/status"
    good = await SuiteRunner(EvalConfig(model=ORACLE, workdir=tmp_path), settings).run([suite])
    assert all(r.passed for r in good), [(r.case_id, r.scores) for r in good if not r.passed]
    bad = await SuiteRunner(EvalConfig(model=MALFORMED, workdir=tmp_path), settings).run([suite])
    assert summarise(suite, bad, 1)["pass@1"] < 0.5
