"""Walkthrough findings on configuration: a wrong value of RELAYGRAPH_LOG_LEVEL,
RELAYGRAPH_CHECKPOINT_URL, RELAYGRAPH_DATABASE_URL, RELAYGRAPH_APPROVER_ROLES or
RELAYGRAPH_TRUST_SOURCES is a one-line error naming the variable (exit 2), not a traceback,
logging's bare "Unknown level", or a silently ignored setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from identity.types import ROLE_SCOPES
from relaygraph.cli import app
from runtime import settings as settings_module
from runtime.settings import Settings, configuration_error_message
from tools.approvals import REQUESTER
from tools.trust import DEFAULT_SOURCES
from tools.types import RISKS


def _message(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    return configuration_error_message(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("RELAYGRAPH_LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("RELAYGRAPH_CHECKPOINT_URL", "bogus", "sqlite:///"),
        ("RELAYGRAPH_DATABASE_URL", "mysql://db/x", "postgresql+psycopg://"),
        ("RELAYGRAPH_APPROVER_ROLES", '{"destructive": ["boss"]}', "'boss'"),
        ("RELAYGRAPH_APPROVER_ROLES", '{"destruktive": ["admin"]}', "'destruktive'"),
        ("RELAYGRAPH_TRUST_SOURCES", '{"file": true}', "'file'"),
    ],
)
def test_a_wrong_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, hint: str
) -> None:
    message = _message(monkeypatch, name, value)

    assert message.startswith(f"invalid configuration: {name}")
    assert hint in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RELAYGRAPH_LOG_LEVEL", "debug"),
        ("RELAYGRAPH_CHECKPOINT_URL", "sqlite:////tmp/cp.db"),
        ("RELAYGRAPH_CHECKPOINT_URL", "postgresql://u:p@h/db"),
        ("RELAYGRAPH_DATABASE_URL", "postgresql+psycopg://u:p@h/db"),
        ("RELAYGRAPH_DATABASE_URL", "sqlite+aiosqlite:////tmp/x.db"),
        ("RELAYGRAPH_APPROVER_ROLES", '{"destructive": ["admin"], "write": ["requester"]}'),
        ("RELAYGRAPH_TRUST_SOURCES", '{"files": true, "external:crm": true}'),
    ],
)
def test_documented_values_are_accepted(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    Settings()


def test_log_level_is_normalised() -> None:
    assert Settings(log_level="info").log_level == "INFO"


def test_a_bad_checkpoint_url_is_one_line_in_the_cli(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYGRAPH_CHECKPOINT_URL", "bogus")

    result = CliRunner().invoke(app, ["threads"])

    assert result.exit_code == 2
    assert "RELAYGRAPH_CHECKPOINT_URL" in result.output
    assert "Traceback" not in result.output


def test_the_mirrored_names_match_the_packages_they_mirror() -> None:
    assert settings_module._RISK_LEVELS == RISKS
    assert set(settings_module._APPROVER_ROLE_NAMES) == {*ROLE_SCOPES, REQUESTER}
    assert set(settings_module._TRUST_SOURCES) == set(DEFAULT_SOURCES)


def test_a_bad_attached_server_is_one_line_without_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = _message(
        monkeypatch,
        "RELAYGRAPH_ATTACHED_MCP_SERVERS",
        '[{"name": "crm", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": '
        '"Bearer s3cret-token"}}]',
    )

    assert message.startswith("invalid configuration: RELAYGRAPH_ATTACHED_MCP_SERVERS: ")
    assert "server 0 ('crm'): tools: Field required" in message
    assert "s3cret-token" not in message
    assert "\n" not in message


def test_a_bad_attached_server_stops_mcp_with_one_line(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYGRAPH_ATTACHED_MCP_SERVERS", '[{"name": "x"}]')
    monkeypatch.setenv("RELAYGRAPH_MCP_LOCAL_ONLY", "true")

    result = CliRunner().invoke(app, ["mcp"])

    assert result.exit_code == 2
    assert "RELAYGRAPH_ATTACHED_MCP_SERVERS" in result.output
    assert "Traceback" not in result.output


def test_a_valid_attached_server_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "RELAYGRAPH_ATTACHED_MCP_SERVERS",
        '[{"name": "crm", "url": "http://127.0.0.1:9/mcp", "tools": {}}]',
    )

    assert Settings().attached_mcp_servers[0]["name"] == "crm"
