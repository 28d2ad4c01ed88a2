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
            for tenant, user, cost in (("a", "ann", 0.25), ("a", "ann", 0.5), ("b", "bo", 1.0)):
                session.add(
                    ProviderUsage(
                        tenant=tenant,
                        user=user,
                        alias="fast",
                        deployment="openai:gpt-4o-mini",
                        input_tokens=10,
                        output_tokens=2,
                        cost_usd=cost,
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

    bad = runner.invoke(usage_app, ["--by", "colour"])
    assert bad.exit_code == 2
