"""``relaygraph usage``: model calls, tokens and cost from the usage table, grouped.

The CLI is the operator's door: it sees every tenant unless ``--tenant`` narrows it.
Exit codes: 0 done, 2 bad input (unknown grouping, bad configuration).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

usage_app = typer.Typer(
    name="usage",
    help="Show model usage and cost (by tenant, user, assistant, model or day).",
    invoke_without_command=True,
    add_completion=False,
)
_err = Console(stderr=True, highlight=False)
EXIT_BAD_INPUT = 2


@usage_app.callback()
def usage(
    group_by: Annotated[
        str,
        typer.Option("--by", help="Comma-separated: tenant, user, assistant, model, day, paid_by."),
    ] = "tenant,model",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this user.")] = None,
    days: Annotated[int | None, typer.Option(min=1, help="Only the last N days.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    from pydantic import ValidationError

    from providers.usage import GROUP_COLUMNS, summarize_usage
    from runtime.settings import Settings, configuration_error_message
    from store import Database, StoreError, migrate

    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUP_COLUMNS]
    if unknown or not groups:
        _err.print(f"--by takes {', '.join(GROUP_COLUMNS)}; not {unknown}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    since = datetime.now(UTC) - timedelta(days=days) if days else None

    async def main() -> list[dict[str, Any]]:
        settings = Settings()
        migrate(settings.store_url)
        db = Database(settings.store_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        try:
            rows = await summarize_usage(
                db,
                tenant=tenant,
                user=user,
                group_by=groups,  # type: ignore[arg-type]  # checked above
                since=since,
            )
        finally:
            await db.dispose()
        return [
            {**row.group, **{k: v for k, v in row.__dict__.items() if k != "group"}} for row in rows
        ]

    try:
        rows = asyncio.run(main())
    except (ValidationError, StoreError) as exc:
        message = configuration_error_message(exc) if isinstance(exc, ValidationError) else exc
        _err.print(f"relaygraph usage: {message}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table(
        *groups,
        "calls",
        "errors",
        "cache hits",
        "tokens in",
        "tokens out",
        "cost USD",
        "tenant key USD",
    )
    for row in rows:
        table.add_row(
            *(str(row[g]) for g in groups),
            str(row["calls"]),
            str(row["errors"]),
            str(row["cache_hits"]),
            str(row["input_tokens"]),
            str(row["output_tokens"]),
            f"{row['cost_usd']:.6f}",
            f"{row['tenant_key_cost_usd']:.6f}",
        )
    Console(highlight=False).print(table)
    total = sum(float(row["cost_usd"]) for row in rows)
    calls = sum(int(row["calls"]) for row in rows)
    own = sum(float(row["tenant_key_cost_usd"]) for row in rows)
    Console(highlight=False).print(
        f"total: ${total:.6f} over {calls} calls (${own:.6f} paid with tenants' own keys)"
    )
