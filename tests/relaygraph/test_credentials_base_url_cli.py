"""`relaygraph credentials ... --base-url`: openai-compatible keys are stored per server
(the option is required there and refused for openai/google, exit 2 before any key is
read); listings show the URL, and a key stored before base URLs as unscoped, unused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner, Result

from relaygraph.credentials_cli import credentials_app
from runtime.settings import Settings
from store import Database, migrate

KEY = "sk-cli-compatible-key-00005678"


def _run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(credentials_app, list(args), input=stdin, catch_exceptions=False)


def test_compatible_keys_need_a_base_url_and_list_with_it(data_dir: Path) -> None:
    missing = _run("set", "openai-compatible", "--tenant", "acme", "--key-stdin", stdin=KEY)
    assert missing.exit_code == 2 and "give its base URL" in missing.stderr
    refused = _run(
        "set", "openai", "--tenant", "acme", "--base-url", "http://x.test/v1", stdin=KEY + "\n"
    )
    assert refused.exit_code == 2 and "openai keys take no base URL" in refused.stderr
    assert KEY not in refused.output  # refused before the key was asked for
    malformed = _run(
        "set", "openai-compatible", "--tenant", "acme", "--base-url", "x.test/v1", "--key-stdin"
    )
    assert malformed.exit_code == 2 and "http:// or https://" in malformed.stderr
    assert json.loads(_run("list", "--json").stdout) == []

    stored = _run(
        "set",
        "openai-compatible",
        "--tenant",
        "acme",
        "--base-url",
        "HTTP://Models.Test:8000/v1/",
        "--key-stdin",
        stdin=KEY + "\n",
    )
    assert stored.exit_code == 0, stored.output
    assert "for http://models.test:8000/v1 (…5678)" in stored.stderr and KEY not in stored.output
    [row] = json.loads(_run("list", "--json").stdout)
    assert (row["provider"], row["base_url"], row["status"], row["key_hint"]) == (
        "openai-compatible",
        "http://models.test:8000/v1",
        "active",
        "…5678",
    )
    assert "acme  openai-compatible  http://models.test:8000/v1  …5678" in _run("list").stdout

    wrong = _run("delete", "openai-compatible", "--tenant", "acme", "--base-url", "http://b/v1")
    assert wrong.exit_code == 2 and "no openai-compatible key for http://b/v1" in wrong.stderr
    gone = _run(
        "delete",
        "openai-compatible",
        "--tenant",
        "acme",
        "--base-url",
        "http://models.test:8000/v1",
    )
    assert gone.exit_code == 0 and json.loads(_run("list", "--json").stdout) == []


def test_a_key_stored_before_base_urls_is_listed_unused_and_deletable(data_dir: Path) -> None:
    url = Settings().store_url
    migrate(url)

    async def legacy_row() -> None:  # as migration 0013 leaves a pre-existing one
        db = Database(url)
        try:
            async with db.session() as session, session.begin():
                await session.execute(
                    text(
                        "INSERT INTO provider_credentials (tenant, provider, base_url, "
                        "ciphertext, key_hint, created_by, created_at, updated_at) VALUES "
                        "('acme', 'openai-compatible', '', 'v1:x', '…0003', 'ann', "
                        "'2026-11-30 10:00:00', '2026-11-30 10:00:00')"
                    )
                )
        finally:
            await db.dispose()

    asyncio.run(legacy_row())
    listed = _run("list")
    assert "acme  openai-compatible  (unscoped, unused: set it again with --base-url)" in (
        listed.stdout
    )
    [row] = json.loads(_run("list", "--json").stdout)
    assert (row["base_url"], row["status"]) == (None, "unscoped, unused")
    deleted = _run("delete", "openai-compatible", "--tenant", "acme")
    assert deleted.exit_code == 0 and json.loads(_run("list", "--json").stdout) == []
