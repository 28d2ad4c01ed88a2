"""``relaygraph export``, ``erase``, ``retention sweep`` and ``consent``, run in-process
against a real data directory (SQLite, checkpoints, embedded Chroma)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from identity import Principal
from relaygraph.cli import app
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import Memory, utcnow

EMAIL = "karen.holm@example.dk"
KAREN = Principal.with_roles("acme", "karen", ["user"])
runner = CliRunner()


def seed(data_dir: Path) -> None:
    async def work() -> None:
        async with open_system(Settings(data_dir=data_dir)) as system:
            await Runner(system).run(
                RunRequest(principal=KAREN, input_text=f"note write to {EMAIL}")
            )
            assert system.memory is not None
            memories = (await system.memory.get()).memories
            # The word-hash-free path: held content is never embedded, so no model loads.
            await memories.remember(KAREN, "Karen is pregnant and due in May.")
            async with system.db.transaction() as session:
                await session.execute(
                    update(Memory).values(expires_at=utcnow() - timedelta(days=1))
                )

    asyncio.run(work())


def test_export_then_erase_then_nothing_left(data_dir: Path, tmp_path: Path) -> None:
    seed(data_dir)
    out = tmp_path / "karen.json"
    result = runner.invoke(
        app, ["export", "--tenant", "acme", "--user", "karen", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    exported = json.loads(out.read_text())
    assert exported["subject"] == {"tenant": "acme", "user": "karen"}
    assert len(exported["threads"]) == 1 and len(exported["memories"]) == 1
    assert EMAIL in json.dumps(exported["threads"][0]["values"])

    listed = runner.invoke(
        app, ["consent", "list", "--tenant", "acme", "--user", "karen", "--json"]
    )
    assert listed.exit_code == 0, listed.output
    assert [h["sensitivity"] for h in json.loads(listed.stdout)["held"]] == ["special"]

    refused = runner.invoke(app, ["erase", "--tenant", "acme", "--user", "karen"])
    assert refused.exit_code == 2 and "--yes" in refused.output

    erased = runner.invoke(app, ["erase", "--tenant", "acme", "--user", "karen", "--yes", "--json"])
    assert erased.exit_code == 0, erased.output
    report = json.loads(erased.stdout)
    assert report["ok"] and report["verification"]["files_searched"] > 0
    assert report["deleted"]["threads"] == 1 and report["deleted"]["memories"] == 1
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert EMAIL.encode() not in path.read_bytes(), path


def test_retention_sweep_deletes_expired_memories(data_dir: Path) -> None:
    seed(data_dir)
    swept = runner.invoke(app, ["retention", "sweep", "--json"])
    assert swept.exit_code == 0, swept.output
    assert json.loads(swept.stdout)["deleted"]["memories"] == 1
    again = runner.invoke(app, ["retention", "sweep"])
    assert again.exit_code == 0 and "swept 0 expired items" in again.stdout


def test_consent_bad_input_is_a_clear_error(data_dir: Path) -> None:
    result = runner.invoke(
        app, ["consent", "grant", "--tenant", "acme", "--user", "karen", "--basis", "contract"]
    )
    assert result.exit_code == 2 and "needs a note" in result.output
    unknown = runner.invoke(
        app, ["consent", "withdraw", "--tenant", "acme", "--user", "karen", "lb_x"]
    )
    assert unknown.exit_code == 2 and "no legal basis" in unknown.output
    granted = runner.invoke(
        app, ["consent", "grant", "--tenant", "acme", "--user", "karen", "--json"]
    )
    assert granted.exit_code == 0, granted.output
    assert json.loads(granted.stdout)["released"] == 0
