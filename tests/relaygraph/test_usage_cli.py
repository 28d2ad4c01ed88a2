"""relaygraph/usage_cli.py: `relaygraph usage` over a real store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from relaygraph.usage_cli import usage_app
from runtime.settings import Settings
from store import Database, migrate
from store.models import ProviderUsage


async def _insert() -> None:
    settings = Settings()
    migrate(settings.store_url)
    db = Database(settings.store_url)
    try:
        async with db.transaction() as session:
            for tenant, user, cost, paid_by in (
                ("a", "ann", 0.25, "deployment"),
                ("a", "ann", 0.5, "tenant"),
                ("b", "bo", 1.0, "deployment"),
            ):
                session.add(
                    ProviderUsage(
                        tenant=tenant,
                        user=user,
                        alias="fast",
                        deployment="openai:gpt-4o-mini",
                        input_tokens=10,
                        output_tokens=2,
                        cost_usd=cost,
                        paid_by=paid_by,
                    )
                )
    finally:
        await db.dispose()


def test_usage_groups_and_filters(data_dir: Path) -> None:
    asyncio.run(_insert())
    runner = CliRunner()

    result = runner.invoke(usage_app, ["--by", "tenant", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["tenant"], r["calls"], r["cost_usd"]) for r in rows] == [
        ("a", 2, 0.75),
        ("b", 1, 1.0),
    ]

    table = runner.invoke(usage_app, ["--tenant", "a", "--by", "user,model"])
    assert table.exit_code == 0 and "ann" in table.stdout and "total: $0.750000" in table.stdout
    assert "$0.500000 paid with tenants' own keys" in table.stdout

    paid = runner.invoke(usage_app, ["--by", "paid_by", "--json"], catch_exceptions=False)
    assert [
        (r["paid_by"], r["calls"], r["tenant_key_cost_usd"]) for r in json.loads(paid.stdout)
    ] == [
        ("deployment", 2, 0.0),
        ("tenant", 1, 0.5),
    ]

    bad = runner.invoke(usage_app, ["--by", "colour"])
    assert bad.exit_code == 2
