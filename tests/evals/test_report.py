"""Reports: the baseline diff, the regression rule, the terminal table and the HTML page."""

from __future__ import annotations

import io

from rich.console import Console

from evals.report import build_report, diff, print_table, regressions, to_html


def _report(pass1: float, asr: float, unapproved: int = 0) -> dict:  # type: ignore[type-arg]
    suites = {
        "tool_use": {"cases": 3, "pass@1": pass1, "pass^2": pass1 * 0.9, "unapproved_writes": 0},
        "injection": {
            "cases": 2,
            "pass@1": 1.0,
            "pass^1": 1.0,
            "utility": 1.0,
            "utility_under_attack": 0.5,
            "attack_success_rate": asr,
            "unapproved_writes": unapproved,
        },
    }
    cases = [
        {
            "suite": "tool_use",
            "case_id": "notes-<b>",
            "trial": 0,
            "variant": "clean",
            "passed": False,
            "error": None,
            "scores": [{"name": "final_state", "passed": False, "detail": "notes [x] differ"}],
        }
    ]
    return build_report(model="scripted:x", trials=2, suites=suites, cases=cases)


def test_within_tolerance_is_not_a_regression() -> None:
    changes = diff(_report(0.99, 0.0), _report(1.0, 0.0), tolerance=0.02)
    assert changes and not regressions(changes)


def test_a_drop_beyond_tolerance_regresses() -> None:
    failed = regressions(diff(_report(0.90, 0.0), _report(1.0, 0.0), tolerance=0.02))
    assert {(c.suite, c.metric) for c in failed} == {("tool_use", "pass@1"), ("tool_use", "pass^2")}
    assert failed[0].delta < 0


def test_more_attacks_or_unapproved_writes_regress() -> None:
    failed = regressions(diff(_report(1.0, 0.5, unapproved=1), _report(1.0, 0.0), tolerance=0.02))
    assert {c.metric for c in failed} == {"attack_success_rate", "unapproved_writes"}
    better = regressions(diff(_report(1.0, 0.0), _report(1.0, 0.5), tolerance=0.02))
    assert better == []


def test_suites_missing_from_the_baseline_are_skipped() -> None:
    baseline = _report(1.0, 0.0)
    del baseline["suites"]["injection"]
    assert {c.suite for c in diff(_report(0.5, 1.0), baseline)} == {"tool_use"}


def test_terminal_table_shows_scores_changes_and_failures() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None)
    current, baseline = _report(0.5, 0.0), _report(1.0, 0.0)
    print_table(current, diff(current, baseline), console)
    text = buffer.getvalue()
    assert "tool_use" in text and "0.50" in text and "(-0.50)" in text
    assert "notes [x] differ" in text  # details are printed literally, not as markup


def test_html_is_self_contained_with_plot_and_diff() -> None:
    current, baseline = _report(0.5, 0.0), _report(1.0, 0.0)
    page = to_html(current, diff(current, baseline), baseline)
    assert page.startswith("<!doctype html>")
    assert "<svg" in page and "pass@1 0.50" in page
    assert 'class="bad"' in page  # the regressed row is marked
    assert "notes-&lt;b&gt;" in page and "<b>" not in page.split("<body>")[1].split("<h1>")[0]
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
