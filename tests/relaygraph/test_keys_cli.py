"""relaygraph/keys_cli.py: `relaygraph keys create|list|revoke` against a real store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from identity.apikeys import ApiKeyError, verify_api_key
from identity.types import Principal
from relaygraph.keys_cli import keys_app
from runtime.settings import Settings
from store import Database


def _keys(*args: str) -> Result:
    return CliRunner().invoke(keys_app, list(args), catch_exceptions=False)


def _verify(key: str) -> Principal:
    async def check() -> Principal:
        db = Database(Settings().store_url)
        try:
            return await verify_api_key(db=db, key=key)
        finally:
            await db.dispose()

    return asyncio.run(check())


def _create_json(*args: str) -> dict[str, Any]:
    result = _keys("create", *args, "--json")
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def test_create_json_prints_the_key_once_and_it_works(data_dir: Path) -> None:
    result = _keys(
        "create", "--tenant", "acme", "--user", "ana", "--roles", "user,reviewer", "--json"
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"key", "key_id", "tenant", "user", "roles"}
    assert (payload["tenant"], payload["user"], payload["roles"]) == (
        "acme",
        "ana",
        ["reviewer", "user"],
    )
    principal = _verify(payload["key"])
    assert (principal.tenant, principal.user) == ("acme", "ana")


def test_create_prints_the_key_alone_on_the_last_line(data_dir: Path) -> None:
    result = _keys("create", "--tenant", "acme", "--user", "ana", "--roles", "admin")

    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("rg_") and " " not in key
    assert "shown only this once" in result.stderr
    assert _verify(key).roles == {"admin"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--roles", "user,owner"], "unknown role 'owner'"),
        (["--roles", ","], "at least one role"),
        (["--user", " "], "user must be"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    data_dir: Path, args: list[str], needle: str
) -> None:
    base = {"--tenant": "acme", "--user": "ana", "--roles": "user"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [part for pair in base.items() for part in pair]

    result = _keys("create", *flat)

    assert result.exit_code == 2
    assert needle in result.stderr
    assert result.stdout == ""
    assert json.loads(_keys("list", "--json").stdout) == []


def test_list_never_shows_secrets_and_filters_by_tenant(data_dir: Path) -> None:
    first = _create_json("--tenant", "acme", "--user", "ana", "--name", "laptop")
    other = _create_json("--tenant", "globex", "--user", "cy")

    everything = _keys("list", "--json")
    acme = _keys("list", "--tenant", "acme", "--json")
    table = _keys("list")

    assert everything.exit_code == acme.exit_code == table.exit_code == 0
    rows = json.loads(everything.stdout)
    assert {row["key_id"] for row in rows} == {first["key_id"], other["key_id"]}
    assert [(row["key_id"], row["name"]) for row in json.loads(acme.stdout)] == [
        (first["key_id"], "laptop")
    ]
    for output in (everything.output, table.output):
        assert first["key"] not in output and other["key"] not in output
        # The secret is everything after "rg_<16 hex key id>_" (it may contain "_" itself).
        assert first["key"][len("rg_") + 16 + 1 :] not in output
    assert first["key_id"] in table.stdout and "active" in table.stdout


def test_revoke_by_id_or_by_the_whole_key(data_dir: Path) -> None:
    by_id = _create_json("--tenant", "acme", "--user", "ana")
    by_key = _create_json("--tenant", "acme", "--user", "bo")

    first = _keys("revoke", by_id["key_id"])
    second = _keys("revoke", by_key["key"])

    assert first.exit_code == second.exit_code == 0
    assert f"revoked API key {by_id['key_id']}" in first.stdout
    for payload in (by_id, by_key):
        with pytest.raises(ApiKeyError, match="revoked"):
            _verify(payload["key"])
    rows = json.loads(_keys("list", "--json").stdout)
    assert all(row["revoked_at"] for row in rows)


def test_revoking_an_unknown_key_exits_2(data_dir: Path) -> None:
    result = _keys("revoke", "0123456789abcdef")

    assert result.exit_code == 2
    assert "no API key with id '0123456789abcdef'" in result.stderr


def test_invalid_configuration_exits_2(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYGRAPH_SQLITE_BUSY_TIMEOUT_MS", "soon")

    result = _keys("list")

    assert result.exit_code == 2
    assert "invalid configuration" in result.stderr
