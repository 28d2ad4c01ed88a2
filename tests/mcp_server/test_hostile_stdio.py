"""Hostile lines to a spawned `relaygraph mcp` (stdio): every line that needs an answer
gets one a person can act on, and the process keeps serving (a deeply nested line once
killed it with a RecursionError)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
import pytest

from tests.mcp_server.conftest import INIT, StdioSetup

pytestmark = pytest.mark.slow


class _Lines:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process, self.stdin, self.stdout = process, process.stdin, process.stdout

    async def send(self, line: bytes | dict[str, Any]) -> None:
        raw = line if isinstance(line, bytes) else json.dumps(line).encode()
        self.stdin.write(raw + b"\n")
        await self.stdin.drain()

    async def next(self) -> dict[str, Any]:
        line = await self.stdout.readline()
        assert line, "the server closed stdout (it died)"
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def serves(self, request_id: int) -> None:
        await self.send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": "notes_search", "arguments": {"query": ""}},
            }
        )
        answer = await self.next()
        assert answer["id"] == request_id and answer["result"]["isError"] is False, answer


def _error(answer: dict[str, Any], code: int, request_id: Any, *phrases: str) -> None:
    assert answer.get("id") == request_id and answer["error"]["code"] == code, answer
    for phrase in phrases:
        assert phrase in answer["error"]["message"], answer


async def test_hostile_lines_are_answered_and_the_server_keeps_serving(
    stdio_setup: StdioSetup,
) -> None:
    lines = _Lines(await stdio_setup.spawn(stdio_setup.keys["alice"]))
    try:
        with anyio.fail_after(120):
            await lines.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            _error(
                await lines.next(), -32602, 1, "before the session was initialized", "initialize"
            )

            await lines.send(INIT)
            assert (await lines.next())["result"]["serverInfo"]["name"] == "relaygraph"
            await lines.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

            for depth in (300, 5000, 100_000):
                deep = b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": '
                deep += b'{"name": "notes_search", "arguments": {"query": '
                deep += b"[" * depth + b"]" * depth + b"}}}"
                await lines.send(deep)
                _error(await lines.next(), -32700, None, "nested too deeply")
                await lines.serves(depth)

            await lines.send({"jsonrpc": "2.0", "id": None, "method": "tools/list"})
            _error(await lines.next(), -32600, None, '"id" must be a string or an integer')

            bad_arguments = {"name": "notes_search", "arguments": "query"}
            await lines.send(
                {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": bad_arguments}
            )
            _error(await lines.next(), -32602, 3, "arguments: Input should be a valid dictionary")

            await lines.send(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": {"requestId": 404},
                }
            )
            await lines.serves(4)
    finally:
        lines.stdin.close()
        with anyio.fail_after(30):
            await lines.process.wait()
    assert lines.process.returncode == 0
