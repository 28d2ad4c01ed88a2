"""relaygraph/credentials_cli.py: `relaygraph credentials set|list|delete` against a real
store; the key goes in through stdin or a hidden prompt and never comes out."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from relaygraph.credentials_cli import credentials_app

KEY = "sk-cli-tenant-key-0000004321"


def _run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(credentials_app, list(args), input=stdin, catch_exceptions=False)


def test_set_list_delete_without_ever_printing_the_key(data_dir: Path) -> None:
    stored = _run("set", "openai", "--tenant", "acme", "--key-stdin", stdin=KEY + "\n")
    assert stored.exit_code == 0, stored.output
    assert "…4321" in stored.stderr and KEY not in stored.output
    prompted = _run("set", "google", "--tenant", "acme", stdin="AIza-prompted-key-000009999\n")
    assert prompted.exit_code == 0 and "AIza-prompted" not in prompted.output

    listed = _run("list", "--json")
    assert listed.exit_code == 0 and KEY not in listed.output
    rows = json.loads(listed.stdout)
    assert [(r["tenant"], r["provider"], r["key_hint"]) for r in rows] == [
        ("acme", "google", "…9999"),
        ("acme", "openai", "…4321"),
    ]
    assert "acme  openai  …4321" in _run("list", "--tenant", "acme").stdout
    # the data dir's generated key file sealed it (0600)
    assert (data_dir / "relaygraph-secret.key").stat().st_mode & 0o077 == 0

    assert _run("delete", "openai", "--tenant", "acme").exit_code == 0
    again = _run("delete", "openai", "--tenant", "acme")
    assert again.exit_code == 2 and "has no openai key" in again.stderr
    assert [r["provider"] for r in json.loads(_run("list", "--json").stdout)] == ["google"]


def test_bad_input_exits_2_with_a_clear_message(data_dir: Path) -> None:
    unknown = _run("set", "anthropic", "--tenant", "acme", "--key-stdin", stdin="x" * 20)
    assert unknown.exit_code == 2 and "unknown provider 'anthropic'" in unknown.stderr
    empty = _run("set", "openai", "--tenant", "acme", "--key-stdin", stdin="\n")
    assert empty.exit_code == 2 and "without whitespace" in empty.stderr
