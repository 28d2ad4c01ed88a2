"""Walkthrough findings on ``relaygraph serve``'s address: a port already in use used to
print the "relaygraph API on …" banner, then a JSON log line, and exit 3; a port above
65535 printed the banner and hung (``mcp --http`` printed an exception-group traceback).
Both are now one line on stderr and exit 2. And
`resume` of a thread created in another tenant now says to pass --tenant."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relaygraph.cli import app


@pytest.mark.parametrize("command", [["serve"], ["mcp", "--http"]])
def test_a_port_in_use_is_one_line_and_exit_2(data_dir: Path, command: list[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]

        result = CliRunner().invoke(app, [*command, "--port", str(port)])

    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"error: 127.0.0.1:{port} is already in use" in message
    assert "choose another --port" in message
    assert "relaygraph API on" not in message and "relaygraph MCP on" not in message
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["serve"], ["mcp", "--http"]])
def test_a_port_out_of_range_is_refused(data_dir: Path, command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--port", "99999"])

    assert result.exit_code == 2
    assert "--port" in result.output


def test_resume_of_a_thread_in_another_tenant_says_to_pass_tenant(data_dir: Path) -> None:
    created = CliRunner().invoke(
        app, ["run", "remember that the gala is in May", "--tenant", "acme", "--thread", "t1"]
    )
    assert created.exit_code == 0, created.output

    result = CliRunner().invoke(app, ["resume", "t1", "--approve"])

    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "there is no thread 't1' in tenant 'default'" in message
    assert "--tenant" in message
