"""What a new user following the README trips over on the CLI: an approval id that an
80-column terminal cut short, an approval looked up in the wrong tenant, and an MCP key that
is not found because it lives in another data directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from identity import Principal
from relaygraph import approvals_cli
from relaygraph.approvals_cli import approvals_app
from runtime.settings import Settings
from store import Database, migrate

MAIL = {"to": ["bob@example.org"], "subject": "hi", "body": "hello"}
ANN = Principal.with_roles("acme", "ann", ["user"])


def _cli(app, *args: str) -> Result:  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _pending_approval() -> str:
    async def main() -> str:
        from tools import BUILTIN_TOOLS, ToolExecutor, ToolPolicy, ToolRegistry

        settings = Settings()
        migrate(settings.store_url)
        db = Database(settings.store_url)
        try:
            executor = ToolExecutor(db, ToolPolicy(ToolRegistry(BUILTIN_TOOLS)))
            result = await executor.call_external(ANN, "email_send", MAIL)
            assert result.approval is not None
            return result.approval.approval_id
        finally:
            await db.dispose()

    return asyncio.run(main())


def test_an_80_column_listing_shows_the_whole_approval_id(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    approval_id = _pending_approval()
    monkeypatch.setattr(approvals_cli, "_out", Console(width=80, highlight=False))

    listed = _cli(approvals_app, "list", "--tenant", "acme")

    assert listed.exit_code == 0
    assert approval_id in listed.stdout
    assert "email_send" in listed.stdout
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80


def test_an_approval_looked_up_in_the_default_tenant_names_the_tenant_and_the_fix(
    data_dir: Path,
) -> None:
    approval_id = _pending_approval()

    wrong = _cli(approvals_app, "approve", approval_id)
    right = _cli(approvals_app, "approve", approval_id, "--tenant", "acme", "--as", "rita")

    assert wrong.exit_code == 2
    message = " ".join(wrong.output.split())
    assert f"there is no approval '{approval_id}' in tenant 'default'" in message
    assert "--tenant" in message
    assert right.exit_code == 0 and f"{approval_id}: approved by rita" in right.stdout


def test_an_mcp_key_from_another_data_dir_names_the_directory_it_was_looked_up_in(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaygraph.cli import app

    # Well-formed, but created in another data directory (or not at all).
    monkeypatch.setenv("RELAYGRAPH_API_KEY", "rg_" + "0" * 16 + "_" + "A" * 43)

    refused = CliRunner().invoke(app, ["mcp"], input="")

    assert refused.exit_code == 2
    message = " ".join(refused.output.split())
    assert "is not recognised" in message
    assert f"looked up in the data directory {data_dir}" in message
    assert "RELAYGRAPH_DATA_DIR in the client's env block" in message


def test_serve_reports_a_bad_setting_found_at_start_up_as_one_line(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaygraph.cli import app

    # Only the app's start-up reads the rate limits: uvicorn used to log the traceback
    # and exit 3. Start-up fails before binding; the address (TEST-NET-3, never local)
    # makes a server that did start fail at once instead of serving forever.
    monkeypatch.setenv("RELAYGRAPH_RATE_LIMIT_PER_KEY", "lots")

    refused = CliRunner().invoke(app, ["serve", "--host", "203.0.113.7", "--port", "18999"])

    assert refused.exit_code == 2
    message = " ".join(refused.output.split())
    assert "error: RELAYGRAPH_RATE_LIMIT_PER_KEY 'lots' is not a rate limit" in message
    assert "Traceback" not in refused.output


def test_tools_lists_whole_names_in_an_80_column_terminal(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaygraph import cli
    from tools import BUILTIN_TOOLS, ToolRegistry

    monkeypatch.setattr(cli, "out", Console(width=80, highlight=False))

    listed = _cli(cli.app, "tools")

    assert listed.exit_code == 0
    names = [tool.name for tool in ToolRegistry(BUILTIN_TOOLS)]
    assert "tickets_create" in names
    for name in names:
        assert f" {name} " in listed.stdout, name
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80
