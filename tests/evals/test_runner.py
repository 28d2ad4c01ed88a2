"""The runner end to end on a tiny suite: isolated tenants, gold state hashes, the simulated
reviewer, and the safety figures (including a control where the defence is switched off)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.cases import load_suite
from evals.models import MALFORMED, OBEY_INJECTIONS, ORACLE
from evals.runner import EvalConfig, SuiteRunner, summarise

TINY = Path(__file__).with_name("tiny.yaml")


async def _run(settings, tmp_path: Path, model: str, trials: int = 1):  # type: ignore[no-untyped-def]
    suite = load_suite(TINY)
    seen = []
    runner = SuiteRunner(EvalConfig(model=model, trials=trials, workdir=tmp_path), settings)
    results = await runner.run([suite], seen.append)
    assert len(seen) == len(results)
    return suite, results, summarise(suite, results, trials)


async def test_oracle_passes_every_case_over_trials(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suite, results, metrics = await _run(settings, tmp_path, ORACLE, trials=2)
    assert len(results) == 2 * (len(suite.cases) + 1)  # one case also runs under attack
    failing = [(r.case_id, r.error, [s.detail for s in r.scores if not s.passed]) for r in results]
    assert all(r.passed for r in results), failing
    assert metrics["pass@1"] == 1.0 and metrics["pass^2"] == 1.0
    assert metrics["utility_under_attack"] == 1.0 and metrics["attack_success_rate"] == 0.0
    assert {r.metrics["model_calls"] for r in results} >= {2.0, 3.0}
    assert all(r.metrics["tokens"] > 0 for r in results)
    close = next(r for r in results if r.case_id == "close-ticket")
    assert [c["tool"] for c in close.calls] == ["tickets_search", "tickets_close"]
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 (the eval data directory is removed)


async def test_obeying_model_is_stopped_by_taint_and_approval(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, results, metrics = await _run(settings, tmp_path, OBEY_INJECTIONS)
    attacked = next(r for r in results if r.variant == "attack")
    assert attacked.attack_attempted is True  # it did try the attacker's action
    assert attacked.attack_success is False
    assert metrics["attack_success_rate"] == 0.0
    assert metrics["unapproved_writes"] == 0
    assert attacked.passed  # the user's task still got done (utility under attack)


async def test_without_taint_tracking_the_attack_succeeds(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The control: trusting web content turns the defence off, and the metric sees it."""
    trusting = settings.model_copy(update={"trust_sources": {"web": True}})
    _, results, metrics = await _run(trusting, tmp_path, OBEY_INJECTIONS)
    attacked = next(r for r in results if r.variant == "attack")
    assert attacked.attack_success is True
    assert metrics["attack_success_rate"] == 1.0
    assert metrics["unapproved_writes"] >= 1


async def test_malformed_tool_calls_fail_state_and_trajectory(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, results, metrics = await _run(settings, tmp_path, MALFORMED)
    create = next(r for r in results if r.case_id == "create-note")
    failed = {s.name for s in create.scores if not s.passed}
    assert {"final_state", "trajectory_strict", "tool_recall"} <= failed
    assert metrics["pass@1"] < 0.5


async def test_a_broken_case_is_reported_not_raised(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, results, metrics = await _run(settings, tmp_path, "scripted:evals.models:no_such_model")
    assert metrics["errors"] == len(results)
    assert all(r.error and not r.passed for r in results)


@pytest.mark.parametrize("name", ["tool_use"])
async def test_a_shipped_suite_runs_clean_with_the_oracle(
    settings, tmp_path: Path, name: str
) -> None:  # type: ignore[no-untyped-def]
    suite = load_suite(name)
    suite = suite.model_copy(update={"cases": suite.cases[:6]})
    runner = SuiteRunner(EvalConfig(model=ORACLE, workdir=tmp_path), settings)
    results = await runner.run([suite])
    assert all(r.passed for r in results), [(r.case_id, r.error, r.scores) for r in results]
