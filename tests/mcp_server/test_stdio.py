"""`relaygraph mcp` over stdio, spawned as a subprocess the way desktop clients start it."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import anyio
import pytest

from mcp_server import error_details
from tests.mcp_server.conftest import INIT, REPO, StdioSetup, opened_system

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (None, "RELAYGRAPH_API_KEY"),
        ("rg_0123456789abcdef_" + "x" * 43, "not recognised"),
        ("not-a-key", "not a relaygraph API key"),
    ],
)
async def test_refuses_to_start_without_a_valid_key(
    stdio_setup: StdioSetup, key: str | None, expected: str
) -> None:
    process = await stdio_setup.spawn(key)
    with anyio.fail_after(60):
        stdout, stderr = await process.communicate(b"")
    assert process.returncode == 2
    assert stdout == b"", "nothing but protocol may reach stdout"
    assert expected in stderr.decode()


async def test_refuses_a_revoked_key(stdio_setup: StdioSetup) -> None:
    from identity.apikeys import parse_api_key, revoke_api_key

    async with opened_system(stdio_setup.settings) as system:
        key_id, _ = parse_api_key(stdio_setup.keys["bob"])
        await revoke_api_key(db=system.db, key_id=key_id)
    process = await stdio_setup.spawn(stdio_setup.keys["bob"])
    with anyio.fail_after(60):
        _, stderr = await process.communicate(b"")
    assert process.returncode == 2
    assert "revoked" in stderr.decode()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_session_lists_calls_and_survives_errors(stdio_setup: StdioSetup, mode: str) -> None:
    async with stdio_setup.client("alice", mode=mode) as client:
        if mode == "legacy":
            assert client.protocol_version.startswith("2025")
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"notes_create", "notes_search", "notes_delete"} <= set(listed)
        search, delete = listed["notes_search"], listed["notes_delete"]
        assert search.annotations is not None and search.annotations.read_only_hint is True
        assert search.annotations.destructive_hint is False
        assert delete.annotations is not None and delete.annotations.destructive_hint is True
        assert delete.annotations.read_only_hint is False
        assert "approval_id" in delete.input_schema["properties"]
        assert "approval_id" not in search.input_schema["properties"]
        assert search.output_schema is not None

        created = await client.call_tool("notes_create", {"title": "plan", "body": "ship it"})
        assert not created.is_error
        assert created.structured_content is not None
        assert created.structured_content["title"] == "plan"
        assert json.loads(created.content[0].text)["id"] == created.structured_content["id"]  # type: ignore[union-attr]

        unknown = await client.call_tool("notes_explode", {})
        assert unknown.is_error and "unknown_tool" in _text(unknown)
        wrong = await client.call_tool("notes_search", {"query": 12, "limit": "many"})
        assert wrong.is_error and "invalid_arguments" in _text(wrong)
        huge = await client.call_tool("notes_create", {"title": "x", "body": "y" * 300_000})
        assert huge.is_error and "invalid_arguments" in _text(huge)

        found = await client.call_tool("notes_search", {"query": "ship"})
        assert not found.is_error
        assert [note["title"] for note in found.structured_content["notes"]] == ["plan"]  # type: ignore[index]


async def test_acts_as_the_keys_principal(stdio_setup: StdioSetup) -> None:
    async with stdio_setup.client("alice") as alice:
        await alice.call_tool("notes_create", {"title": "alice's", "body": "private"})
    async with stdio_setup.client("bob") as bob:
        found = await bob.call_tool("notes_search", {"query": ""})
    assert found.structured_content == {"notes": []}, "tenant b must not see tenant a's notes"


async def test_local_only_mode_serves_without_a_key(stdio_setup: StdioSetup) -> None:
    from mcp import Client

    params = stdio_setup.params(None, RELAYGRAPH_MCP_LOCAL_ONLY="true")
    async with Client(params, read_timeout_seconds=60) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
    assert "notes_search" in names


async def test_malformed_json_rpc_is_answered_and_serving_continues(
    stdio_setup: StdioSetup,
) -> None:
    process = await stdio_setup.spawn(stdio_setup.keys["alice"])
    assert process.stdin is not None and process.stdout is not None

    async def send(message: Any) -> None:
        raw = message if isinstance(message, bytes) else json.dumps(message).encode()
        process.stdin.write(raw + b"\n")  # type: ignore[union-attr]
        await process.stdin.drain()  # type: ignore[union-attr]

    async def answer(request_id: int) -> dict[str, Any]:
        while True:
            line = await process.stdout.readline()  # type: ignore[union-attr]
            assert line, "the server closed stdout"
            message = json.loads(line)  # every stdout line must be JSON-RPC
            if message.get("id") == request_id:
                return message  # type: ignore[no-any-return]

    try:
        with anyio.fail_after(60):
            await send(b"{this is not json")
            await send({"jsonrpc": "2.0", "id": "x", "method": 7})
            await send(INIT)
            initialized = await answer(1)
            assert initialized["result"]["serverInfo"]["name"] == "relaygraph"
            await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            await send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": 5}})
            bad = await answer(2)
            assert "error" in bad
            await send(
                {
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "tools/call",
                    "params": {"name": "notes_search", "arguments": {"query": ""}},
                }
            )
            good = await answer(3)
            assert good["result"]["isError"] is False
    finally:
        process.stdin.close()
        with anyio.fail_after(30):
            await process.wait()


async def test_approval_round_trip(stdio_setup: StdioSetup) -> None:
    async with stdio_setup.client("alice") as client:
        created = await client.call_tool("notes_create", {"title": "old", "body": "x"})
        note_id = created.structured_content["id"]  # type: ignore[index]

        held = await client.call_tool("notes_delete", {"note_id": note_id})
        assert held.is_error
        details = error_details(held)
        assert details is not None and details["error"] == "approval_required"
        approval_id = details["approval_id"]
        assert approval_id in _text(held) and "approval_id" in _text(held)
        assert details["preview"], "the reviewer and the client see a dry-run preview"

        early = await client.call_tool(
            "notes_delete", {"note_id": note_id, "approval_id": approval_id}
        )
        assert early.is_error and "approval_pending" in _text(early)

        # The reviewer uses the CLI: `relaygraph approvals approve ID --tenant a --as rita`.
        approve = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relaygraph",
            "approvals",
            "approve",
            approval_id,
            "--tenant",
            "a",
            "--as",
            "rita",
            env=stdio_setup.env(None),
            cwd=str(REPO),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        with anyio.fail_after(60):
            _, problem = await approve.communicate()
        assert approve.returncode == 0, problem.decode()

        other = await client.call_tool(
            "notes_delete", {"note_id": note_id + 1, "approval_id": approval_id}
        )
        assert other.is_error and "approval_mismatch" in _text(other)

        done = await client.call_tool(
            "notes_delete", {"note_id": note_id, "approval_id": approval_id}
        )
        assert not done.is_error, _text(done)
        assert done.structured_content == {"id": note_id, "deleted": True, "title": "old"}

        again = await client.call_tool(
            "notes_delete", {"note_id": note_id, "approval_id": approval_id}
        )
        assert again.is_error and "approval_used" in _text(again)


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
