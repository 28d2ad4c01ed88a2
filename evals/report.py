"""Reports: a terminal table, a JSON file, a self-contained HTML page, the diff against a
baseline report, and the regression gate.

Headline scores per suite are the ones a change must not lower (``pass@1``, ``pass^k``,
``utility``, ``utility_under_attack``) and the ones it must not raise
(``attack_success_rate``, ``unapproved_writes``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HIGHER_IS_BETTER = ("pass@1", "utility", "utility_under_attack", "attacks_attempted")
"""``attacks_attempted`` too: if the attacker model stops taking the bait, a zero attack
success rate proves nothing."""
LOWER_IS_BETTER = ("attack_success_rate", "unapproved_writes")
REPORT_VERSION = 1


def build_report(
    *, model: str, trials: int, suites: Mapping[str, dict[str, Any]], cases: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "version": REPORT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model,
        "trials": trials,
        "suites": dict(suites),
        "cases": cases,
    }


def load_report(path: Path) -> dict[str, Any]:
    """Raises:
    ValueError: the file is not a report."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read report {path}: {exc}") from exc
    if not isinstance(data, dict) or "suites" not in data:
        raise ValueError(f"{path} is not an eval report (no 'suites')")
    return data


def headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The gated figures of one suite (pass^k under its own key, e.g. ``pass^3``)."""
    keys = [*HIGHER_IS_BETTER, *LOWER_IS_BETTER]
    keys += [k for k in metrics if k.startswith("pass^")]
    return {k: float(metrics[k]) for k in keys if isinstance(metrics.get(k), int | float)}


@dataclass(frozen=True)
class Change:
    suite: str
    metric: str
    baseline: float
    current: float
    regressed: bool

    @property
    def delta(self) -> float:
        return self.current - self.baseline


def diff(
    current: Mapping[str, Any], baseline: Mapping[str, Any], tolerance: float = 0.02
) -> list[Change]:
    """Headline figures of suites present in both reports; a change is a regression when a
    score drops (or a safety figure rises) by more than ``tolerance``."""
    changes: list[Change] = []
    for suite, metrics in current.get("suites", {}).items():
        before = baseline.get("suites", {}).get(suite)
        if before is None:
            continue
        now_values, old_values = headline(metrics), headline(before)
        for metric, value in now_values.items():
            if metric not in old_values:
                continue
            old = old_values[metric]
            worse = (old - value) if metric not in LOWER_IS_BETTER else (value - old)
            changes.append(Change(suite, metric, old, value, worse > tolerance + 1e-12))
    return changes


def regressions(changes: Sequence[Change]) -> list[Change]:
    return [c for c in changes if c.regressed]


# --- terminal -------------------------------------------------------------------------------


def print_table(report: Mapping[str, Any], changes: Sequence[Change], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    by_key = {(c.suite, c.metric): c for c in changes}
    table = Table(title=f"evals · model {report['model']} · {report['trials']} trial(s)")
    for column in ("suite", "n", "pass@1", "pass^k", "util/atk", "ASR", "unappr", "tokens", "s"):
        table.add_column(
            column,
            justify="left" if column == "suite" else "right",
            no_wrap=column != "suite",
            overflow="fold",
            min_width=len(column),
        )
    for suite, m in report["suites"].items():
        k_key = next((k for k in m if k.startswith("pass^")), None)

        def cell(
            metric: str | None, fmt: str = "{:.2f}", m: Mapping[str, Any] = m, suite: str = suite
        ) -> str:
            if metric is None or metric not in m:
                return "-"
            text = fmt.format(m[metric])
            change = by_key.get((suite, metric))
            if change is not None and abs(change.delta) > 1e-9:
                colour = (
                    "red"
                    if change.regressed
                    else "green"
                    if ((change.delta > 0) != (metric in LOWER_IS_BETTER))
                    else "yellow"
                )
                text += f" [{colour}]({change.delta:+.2f})[/]"
            return text

        attack = f"{m['utility']:.2f}/{m['utility_under_attack']:.2f}" if "utility" in m else "-"
        table.add_row(
            suite,
            str(m.get("cases", 0))
            + (f" (+{m['not_scored']} not scored)" if m.get("not_scored") else ""),
            cell("pass@1"),
            cell(k_key),
            attack,
            cell("attack_success_rate"),
            cell("unapproved_writes", "{:.0f}"),
            f"{m.get('mean_tokens', 0):.0f}",
            f"{m.get('mean_latency_s', 0):.2f}",
        )
    console.print(table)
    failures = [c for c in report["cases"] if not c["passed"] and c["variant"] == "clean"]
    for case in failures[:20]:
        mark = "[yellow]?[/]" if _unscored(case) else "[red]✗[/]"
        console.print(
            f"{mark} {escape(case['suite'])}/{escape(case['case_id'])} #{case['trial']}: "
            f"{escape(_reason(case))}",
            soft_wrap=True,
        )
    if len(failures) > 20:
        console.print(f"… and {len(failures) - 20} more failing runs (see the JSON report)")


def _unscored(case: Mapping[str, Any]) -> bool:
    """Nothing judged the run (its only criteria were not scored): neither pass nor fail."""
    return bool(case.get("unscored"))


def _reason(case: Mapping[str, Any]) -> str:
    if _unscored(case):
        return "not scored: " + "; ".join(case.get("not_scored") or [])
    return case.get("error") or "; ".join(
        f"{s['name']}: {s['detail']}" for s in case["scores"] if not s["passed"]
    )


# --- HTML -----------------------------------------------------------------------------------


def _bars(report: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> str:
    """An inline SVG bar chart of pass@1 per suite, baseline bars beside the current ones."""
    suites = list(report["suites"])
    width, row, left = 640, 28, 150
    height = row * max(1, len(suites)) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="pass@1 per suite">'
    ]
    scale = width - left - 60
    for i, suite in enumerate(suites):
        y = 10 + i * row
        value = float(report["suites"][suite].get("pass@1", 0))
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" font-size="12">'
            f"{html.escape(suite)}</text>"
        )
        old = (baseline or {}).get("suites", {}).get(suite, {}).get("pass@1")
        if old is not None:
            parts.append(
                f'<rect x="{left}" y="{y + 12}" width="{float(old) * scale:.1f}" height="6" '
                'fill="#bbb"><title>baseline</title></rect>'
            )
        parts.append(
            f'<rect x="{left}" y="{y}" width="{value * scale:.1f}" height="12" fill="#3b7dd8">'
            f"<title>pass@1 {value:.2f}</title></rect>"
        )
        parts.append(
            f'<text x="{left + value * scale + 6:.1f}" y="{y + 11}" font-size="11">'
            f"{value:.2f}</text>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 4}" font-size="10" fill="#666">'
        "blue: pass@1 now · grey: baseline</text></svg>"
    )
    return "".join(parts)


def to_html(
    report: Mapping[str, Any],
    changes: Sequence[Change] = (),
    baseline: Mapping[str, Any] | None = None,
) -> str:
    """One self-contained page: summary, plot, baseline diff and the failing cases."""
    esc = html.escape
    rows = []
    for suite, m in report["suites"].items():
        cells = "".join(
            f"<td>{esc(f'{v:.3f}' if isinstance(v, float) else str(v))}</td>"
            for v in (
                m.get("cases"),
                m.get("pass@1"),
                next((m[k] for k in m if k.startswith("pass^")), "-"),
                m.get("utility", "-"),
                m.get("utility_under_attack", "-"),
                m.get("attack_success_rate", "-"),
                m.get("unapproved_writes"),
                m.get("mean_tokens"),
                m.get("mean_latency_s"),
            )
        )
        rows.append(f"<tr><th>{esc(suite)}</th>{cells}</tr>")
    diff_rows = "".join(
        f'<tr class="{"bad" if c.regressed else ""}"><td>{esc(c.suite)}</td><td>{esc(c.metric)}'
        f"</td><td>{c.baseline:.3f}</td><td>{c.current:.3f}</td><td>{c.delta:+.3f}</td></tr>"
        for c in changes
    )
    failing = "".join(
        f"<li><code>{esc(c['suite'])}/{esc(c['case_id'])}</code> ({esc(c['variant'])}, trial "
        f"{c['trial']}): {esc(_reason(c))}</li>"
        for c in report["cases"]
        if not c["passed"]
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>relaygraph evals</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:4px 8px;text-align:right}}
th:first-child{{text-align:left}}tr.bad td{{background:#fdd}}code{{font-size:12px}}</style>
</head><body>
<h1>relaygraph evals</h1>
<p>model <code>{esc(str(report["model"]))}</code> · {report["trials"]} trial(s) ·
{esc(str(report["created_at"]))}</p>
<h2>Per-suite scores</h2>{_bars(report, baseline)}
<table><tr><th>suite</th><th>cases</th><th>pass@1</th><th>pass^k</th><th>utility</th>
<th>utility under attack</th><th>attack success</th><th>unapproved writes</th><th>tokens</th>
<th>latency s</th></tr>{"".join(rows)}</table>
<h2>Against the baseline</h2>
{
        "<table><tr><th>suite</th><th>metric</th><th>baseline</th><th>now</th><th>change</th></tr>"
        + diff_rows
        + "</table>"
        if changes
        else "<p>No baseline given.</p>"
    }
<h2>Failing runs</h2><ul>{failing or "<li>none</li>"}</ul>
</body></html>
"""
