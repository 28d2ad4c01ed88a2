"""``relaygraph feedback export``: feedback on runs as a regression suite for
``relaygraph eval`` (YAML, or JSONL with one case per line)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from relaygraph.store_cli import with_store

if TYPE_CHECKING:
    from runtime.feedback import FeedbackCases
    from store import Database

feedback_app = typer.Typer(
    help="Feedback that users and reviewers gave on runs.", no_args_is_help=True
)
SuiteFormat = Literal["yaml", "jsonl"]


@feedback_app.callback()
def feedback() -> None:
    """Feedback that users and reviewers gave on runs."""


@feedback_app.command("export")
def export(
    tenant: Annotated[str, typer.Option("--tenant", help="Whose feedback (only theirs).")],
    key: Annotated[str | None, typer.Option("--key", help="Only this feedback key.")] = None,
    max_score: Annotated[
        float | None, typer.Option("--max-score", help="Only scores at or below (failures).")
    ] = None,
    good_score: Annotated[
        float,
        typer.Option(
            "--good-score",
            help="Scores at or above judge the answer good (a reference); below, bad (a "
            "judge rubric). Use 4 for 1-5 stars.",
        ),
    ] = 0.5,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    fmt: Annotated[
        SuiteFormat | None,
        typer.Option(
            "--format", help="yaml or jsonl. Default: jsonl for an --out ending in .jsonl."
        ),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help="Suite name (YAML; JSONL suites take the file's).")
    ] = "feedback",
) -> None:
    """Write a suite of regression cases, one per feedback: the thread's user messages up to
    the judged run, its assistant, and what the feedback expects (a bad score or a comment:
    an LLM-judge rubric, scored by `relaygraph eval --judge MODEL`; a good score: the answer
    as reference). Run it with `relaygraph eval PATH`. Personal data and credentials in the
    exported text are redacted."""
    from runtime.feedback import FeedbackService

    chosen: SuiteFormat = fmt or ("jsonl" if out is not None and out.suffix == ".jsonl" else "yaml")

    async def work(db: Database) -> FeedbackCases:
        return await FeedbackService(db).export_cases(
            tenant, key=key, max_score=max_score, good_score=good_score
        )

    exported = with_store(work)
    cases = _valid_cases(exported.cases, exported.skipped)
    for reason in exported.skipped:
        typer.echo(f"skipped {reason}", err=True)
    text = _render(cases, chosen, name, tenant)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(cases)} cases to {out} (relaygraph eval {out})", err=True)


def _valid_cases(cases: list[dict[str, Any]], skipped: list[str]) -> list[dict[str, Any]]:
    """The cases the eval loader accepts; any other is skipped with the loader's reason."""
    from pydantic import ValidationError

    from evals.cases import Case

    valid = []
    for case in cases:
        try:
            Case.model_validate(case)
        except ValidationError as exc:
            skipped.append(f"{case.get('id')}: not a valid eval case: {exc}")
        else:
            valid.append(case)
    return valid


def _render(cases: list[dict[str, Any]], fmt: SuiteFormat, name: str, tenant: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
    import yaml

    suite = {
        "name": name,
        "description": f"Regression cases from feedback of tenant {tenant} "
        "(relaygraph feedback export).",
        "kind": "task",
        "cases": cases,
    }
    return yaml.safe_dump(suite, sort_keys=False, allow_unicode=True, width=100)
