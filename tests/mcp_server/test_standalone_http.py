"""`relaygraph mcp --http --port P`: the standalone Streamable HTTP server, as a process."""

from __future__ import annotations

import asyncio
import sys

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.mcp_server.conftest import REPO, StdioSetup, free_port

pytestmark = pytest.mark.slow


async def test_standalone_http_server(stdio_setup: StdioSetup) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaygraph",
        "mcp",
        "--http",
        "--port",
        str(port),
        env=stdio_setup.env(None),
        cwd=str(REPO),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            with anyio.fail_after(60):
                while True:
                    assert process.returncode is None, "the server exited"
                    try:
                        metadata = await http.get(f"{base}/.well-known/oauth-protected-resource")
                        break
                    except httpx.ConnectError:
                        await anyio.sleep(0.1)
            assert metadata.json()["resource"] == f"{base}/mcp"
            refused = await http.post(
                f"{base}/mcp", json={}, headers={"Accept": "application/json"}
            )
            assert refused.status_code == 401
            assert "resource_metadata=" in refused.headers["WWW-Authenticate"]

        headers = {"Authorization": f"Bearer {stdio_setup.keys['alice']}"}
        transport = streamable_http_client(
            f"{base}/mcp", http_client=httpx2.AsyncClient(headers=headers)
        )
        async with Client(transport, mode="legacy") as client:
            result = await client.call_tool("notes_search", {"query": ""})
        assert result.structured_content == {"notes": []}
    finally:
        process.terminate()
        with anyio.fail_after(30):
            await process.wait()
