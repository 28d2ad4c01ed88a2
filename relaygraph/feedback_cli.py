"""``relaygraph feedback export``: feedback on runs as eval cases (JSON lines)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from relaygraph.store_cli import with_store

if TYPE_CHECKING:
    from store import Database

feedback_app = typer.Typer(
    help="Feedback that users and reviewers gave on runs.", no_args_is_help=True
)


@feedback_app.callback()
def feedback() -> None:
    """Feedback that users and reviewers gave on runs."""


@feedback_app.command("export")
def export(
    tenant: Annotated[str, typer.Option("--tenant", help="Whose feedback.")],
    key: Annotated[str | None, typer.Option("--key", help="Only this feedback key.")] = None,
    max_score: Annotated[
        float | None, typer.Option("--max-score", help="Only scores at or below (failures).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
) -> None:
    """One eval case per line: input, judged output, the feedback and where it came from."""
    from runtime.feedback import FeedbackService

    async def work(db: Database) -> list[str]:
        service = FeedbackService(db)
        return [
            json.dumps(case, ensure_ascii=False, default=str)
            async for case in service.export(tenant, key=key, max_score=max_score)
        ]

    lines = with_store(work)
    text = "".join(line + "\n" for line in lines)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(lines)} cases to {out}", err=True)
