"""The TypeScript MCP SDK (what Claude Desktop, Cursor, VS Code and MCP Inspector are built
on) against relaygraph: `relaygraph mcp` spawned over stdio exactly as the README's
claude_desktop_config.json does, and Streamable HTTP on a running `relaygraph serve` at
/mcp with the README's bearer header. ``js/client.mjs`` asserts every step and prints one
JSON summary line, checked again here.

Needs Node and npm: missing, the test fails in CI (``CI=true``) and is skipped elsewhere.
``npm ci`` installs the pinned SDK into ``js/node_modules`` when that is not current.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.settings import Settings
from tests.mcp_server.conftest import create_keys, free_port, run_async
from tests.node_clients import node_with_packages, run_client

pytestmark = [pytest.mark.slow, pytest.mark.js]

JS = Path(__file__).resolve().parent / "js"
HTTP_SCOPES = "notes:read,notes:write"
"""The MCP profile of the HTTP server: its callers may not use tickets_* (or anything but
notes), whatever their roles."""


def _relaygraph() -> Path:
    """The console script a desktop client's config points at (the venv's bin)."""
    script = Path(sys.executable).parent / "relaygraph"
    assert script.is_file(), f"{script} is missing: install the project (pip install -e .)"
    return script


@pytest.fixture
def node() -> str:
    """Node, after `npm ci` made js/node_modules current (checked before starting servers)."""
    return node_with_packages(JS, needed_for="the TypeScript SDK test")


@pytest.fixture
def served(data_dir: Path, tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """`relaygraph serve` on a free port with an MCP profile of notes scopes, and keys."""
    keys = run_async(create_keys(Settings(data_dir=data_dir)))
    port = free_port()
    env = {
        **os.environ,
        "RELAYGRAPH_DATA_DIR": str(data_dir),
        "RELAYGRAPH_MCP_ALLOWED_SCOPES": HTTP_SCOPES,
    }
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [str(_relaygraph()), "serve", "--port", str(port), "--no-workers"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/ok", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "relaygraph serve did not come up in 90 s"
            time.sleep(0.2)
        yield port, keys
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_typescript_sdk_client_over_stdio_and_streamable_http(
    node: str, served: tuple[int, dict[str, str]], data_dir: Path, tmp_path: Path
) -> None:
    port, keys = served
    elsewhere = tmp_path / "client-cwd"  # desktop clients start servers from anywhere
    elsewhere.mkdir()
    config: dict[str, Any] = {
        # claude_desktop_config.json from the README: command, args, and an env block with
        # nothing but the key and the data directory.
        "stdio": {
            "command": str(_relaygraph()),
            "args": ["mcp"],
            "env": {"RELAYGRAPH_API_KEY": keys["alice"], "RELAYGRAPH_DATA_DIR": str(data_dir)},
            "cwd": str(elsewhere),
        },
        # .vscode/mcp.json from the README: the URL and an Authorization bearer header.
        "http": {
            "url": f"http://127.0.0.1:{port}/mcp",
            "headers": {"Authorization": f"Bearer {keys['alice']}"},
            "bad_headers": {"Authorization": "Bearer rg_0123456789abcdef_" + "x" * 43},
        },
        # The reviewer (rita, tenant a) decides on the API, as the README describes.
        "approve": {
            "url": f"http://127.0.0.1:{port}/api/v1/approvals/{{id}}/approve",
            "headers": {"x-api-key": keys["rita"]},
        },
        "expect": {
            "server_name": "relaygraph",
            "protocol_version": "2025-11-25",
            "read_tool": "notes_search",
            "read_args": {"query": "compat"},
            "invalid_args": {"query": 12, "limit": "many"},
            "write_tool": "notes_create",
            "write_args": {"title": "compat", "body": "from the TypeScript SDK"},
            "approval_tool": "notes_delete",
            "approval_arg": "note_id",
            "hidden_tools": {"http": ["tickets_search", "tickets_create"]},
        },
    }
    config_file = tmp_path / "ts-client.json"
    config_file.write_text(json.dumps(config))
    summary = run_client(node, JS / "client.mjs", str(config_file))

    stdio, http = summary["transports"]["stdio"], summary["transports"]["http"]
    steps = {
        "initialize",
        "ping",
        "tools_list",
        "call_write",
        "call_read",
        "call_invalid_args",
        "call_unknown_tool",
        "call_needs_approval",
        "resources_prompts",
        "ping_after_errors",
        "close",
    }
    assert set(stdio["steps"]) == steps
    assert set(http["steps"]) == steps | {
        "call_forbidden_tickets_search",
        "call_forbidden_tickets_create",
        "wrong_key",
    }
    for report in (stdio, http):
        assert not [v for v in report["steps"].values() if str(v).startswith("FAILED")]
        assert report["server_info"]["name"] == "relaygraph"
        assert report["protocol_version"] == summary["sdk_protocol"] == "2025-11-25"
        assert "tools" in report["capabilities"]
        assert report["next_cursor"] is None and report["pages"] == 1, "we do not paginate"
        assert report["steps"]["call_invalid_args"] == {"error": "invalid_arguments"}
        assert report["steps"]["call_needs_approval"]["error"] == "approval_required"
        assert report["steps"]["call_needs_approval"]["repeated"] == "approval_pending"
        assert report["steps"]["call_needs_approval"]["approved"] == "done"
        assert report["steps"]["resources_prompts"] == {
            "resources": "not advertised",
            "prompts": "not advertised",
        }
        found = report["steps"]["call_read"]["structured"]["notes"]
        assert [note["title"] for note in found] == ["compat"], "the approved delete ran"
    # The stdio principal (a plain user, no MCP profile) sees tickets; HTTP's profile hides them.
    assert {"notes_search", "notes_delete", "tickets_search", "tickets_create"} <= set(
        stdio["tools"]
    )
    assert http["tools"] and all(name.startswith("notes_") for name in http["tools"])
    assert http["steps"]["call_forbidden_tickets_search"] == {"error": "unknown_tool"}
    assert http["steps"]["wrong_key"] == {"status": 401}
    assert http["session_id"], "a 2025-11-25 HTTP client gets an Mcp-Session-Id"
