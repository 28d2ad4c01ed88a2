"""``relaygraph eval``: run eval suites against an assistant configuration and gate on a
baseline report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from evals.cases import Suite
    from runtime.settings import Settings

EXIT_REGRESSION = 1


def eval_command(
    suites: Annotated[
        list[str] | None,
        typer.Argument(help="Suite names (see --list), suite files, or 'all'.", show_default=False),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model alias or spec (scripted:… too); oracle, obey-injections and malformed "
            "name the offline scripted models. Default: the configured model, else oracle.",
        ),
    ] = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Runs per case (pass^k).")] = 1,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Report to diff against and gate on.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON report here.")] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")
    ] = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0.0, help="Allowed drop before the gate fails.")
    ] = 0.02,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 4,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Public benchmark data for an adapter suite (bfcl, agentdojo)."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Run only the first N cases per suite.")
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option("--judge", help="Real model for LLM-as-judge rubrics (never a scripted one)."),
    ] = None,
    user_model: Annotated[
        str | None,
        typer.Option(
            "--user-model",
            help="Real model playing the simulated user of conversation cases (tau2_mock); "
            "default: their scripted user turns.",
        ),
    ] = None,
    save_baseline: Annotated[
        Path | None,
        typer.Option("--save-baseline", help="Write the per-suite figures only (a baseline)."),
    ] = None,
    list_suites: Annotated[bool, typer.Option("--list", help="List the shipped suites.")] = False,
) -> None:
    """Run eval SUITES and report pass@1, pass^k, safety figures and costs.

    Exit codes: 0 done (and no regression against --baseline), 1 a score regressed by more
    than --tolerance, 2 bad input.
    """
    from relaygraph.cli import CliError, _guarded, _settings, err
    from relaygraph.cli import out as console

    def body() -> int:
        from evals.cases import SuiteError, load_suite, shipped_suite_paths

        if list_suites:
            for path in shipped_suite_paths():
                suite = load_suite(path)
                console.print(
                    f"[bold]{suite.name}[/] ({len(suite.cases)} cases, {suite.kind}) "
                    f"{suite.description}",
                    soft_wrap=True,
                )
            console.print(
                "[bold]bfcl[/] (through the agent and gate), [bold]bfcl_model[/] (one bound "
                "model call), [bold]agentdojo_banking[/], [bold]tau2_mock[/]: public data "
                "adapters, need --data PATH (e.g. ../shared/datasets/bfcl)"
            )
            return 0
        if not suites:
            raise CliError("name a suite (relaygraph eval --list shows them) or 'all'")
        settings = _settings()
        chosen = _model(model, settings)
        try:
            loaded = _load(suites, data, limit)
        except SuiteError as exc:
            raise CliError(str(exc)) from exc
        if judge and judge.startswith("scripted:"):
            raise CliError("--judge needs a real provider: a scripted model cannot judge")
        baseline_report = None
        if baseline is not None:
            from evals.report import load_report

            baseline_report = load_report(baseline)
        report = asyncio.run(_run(loaded, chosen, trials, concurrency, judge, settings, user_model))
        if save_baseline is not None:
            summary = {key: value for key, value in report.items() if key != "cases"}
            save_baseline.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        return _finish(report, baseline_report, baseline, tolerance, out, html_out, console, err)

    _guarded(body)


def _model(model: str | None, settings: Settings) -> str:
    from evals.models import ORACLE, SCRIPTED_MODELS

    if model:
        return SCRIPTED_MODELS.get(model, model)
    if settings.model:
        return settings.model
    if settings.openai_api_key is not None:
        return str(settings.default_model)
    return ORACLE


def _load(names: list[str], data: Path | None, limit: int | None) -> list[Suite]:
    from evals.adapters import ADAPTERS
    from evals.cases import SuiteError, load_suite, shipped_suite_paths

    if names == ["all"]:
        names = [p.stem for p in shipped_suite_paths()]
    loaded = []
    for name in names:
        if name in ADAPTERS:
            if data is None:
                raise SuiteError(f"suite {name!r} reads public data: give --data PATH")
            suite = ADAPTERS[name](data, limit=limit)
        else:
            suite = load_suite(name)
            if limit is not None:
                suite = suite.model_copy(update={"cases": suite.cases[:limit]})
        loaded.append(suite)
    return loaded


async def _run(
    suites: list[Suite],
    model: str,
    trials: int,
    concurrency: int,
    judge: str | None,
    settings: Settings,
    user_model: str | None = None,
) -> dict[str, object]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from evals.report import build_report
    from evals.runner import EvalConfig, SuiteRunner, count_jobs, summarise
    from relaygraph.cli import err

    runner = SuiteRunner(
        EvalConfig(
            model=model,
            trials=trials,
            concurrency=concurrency,
            judge_model=judge,
            user_model=user_model,
        ),
        settings,
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("evaluating", total=count_jobs(suites, trials))
        results = await runner.run(suites, lambda _: progress.advance(task))
    by_suite = {
        suite.name: summarise(suite, [r for r in results if r.suite == suite.name], trials)
        for suite in suites
    }
    return build_report(
        model=model, trials=trials, suites=by_suite, cases=[r.to_dict() for r in results]
    )


def _finish(
    report: dict[str, object],
    baseline_report: dict[str, object] | None,
    baseline_path: Path | None,
    tolerance: float,
    out: Path | None,
    html_out: Path | None,
    console: object,
    err: object,
) -> int:
    from evals.report import diff, print_table, regressions, to_html

    changes = diff(report, baseline_report, tolerance) if baseline_report else []
    print_table(report, changes, console)
    if out is not None:
        out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if html_out is not None:
        html_out.write_text(to_html(report, changes, baseline_report), encoding="utf-8")
    failed = regressions(changes)
    for change in failed:
        err.print(  # type: ignore[attr-defined]
            f"[bold red]regression:[/] {change.suite} {change.metric} {change.baseline:.3f} → "
            f"{change.current:.3f} (tolerance {tolerance:g}, baseline {baseline_path})"
        )
    return EXIT_REGRESSION if failed else 0
