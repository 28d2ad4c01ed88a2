"""An attached-server stand-in that tests can kill (tests/tools/test_external_crash.py).

``python crash_mcp_server.py`` serves over stdio; ``--http PORT`` serves Streamable HTTP on
127.0.0.1:PORT, and ``--legacy-http PORT`` the same but only for 2025-era (session) clients,
like most third-party servers today: a client that probes for the 2026 protocol is refused
and falls back to the initialize handshake, so the server keeps session ids.

Each process reports its pid, so a test can kill exactly the process that served a call.
``hold`` creates a marker file once it is in flight and then never answers (until the
process dies); ``hold_once`` does the same the first time, and answers at once when its
marker already exists (so a repeat on a new process succeeds).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

server = MCPServer("crash")
served = {"calls": 0}


@server.tool()
def whoami() -> dict[str, Any]:
    """The process serving this session and how many calls it answered."""
    served["calls"] += 1
    return {"pid": os.getpid(), "calls_in_this_process": served["calls"]}


@server.tool()
def record(text: str) -> dict[str, Any]:
    """Record text (a side effect, as far as the caller knows)."""
    served["calls"] += 1
    return {"text": text, "pid": os.getpid(), "calls_in_this_process": served["calls"]}


@server.tool()
async def hold(marker: str) -> dict[str, Any]:
    """Signal being in flight (create ``marker``), then wait until killed."""
    await anyio.Path(marker).write_text(str(os.getpid()))
    await anyio.sleep_forever()
    return {}  # never reached


@server.tool()
async def hold_once(marker: str) -> dict[str, Any]:
    """Like ``hold`` the first time; answer at once if ``marker`` exists already."""
    served["calls"] += 1
    path = anyio.Path(marker)
    if not await path.exists():
        await path.write_text(str(os.getpid()))
        await anyio.sleep_forever()
    return {"pid": os.getpid(), "calls_in_this_process": served["calls"]}


def legacy_only(app: Any) -> Any:
    """Refuse requests that carry a 2026-era protocol version (the client's probe)."""

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            version = headers.get(b"mcp-protocol-version", b"").decode("latin-1")
            if version and version not in HANDSHAKE_PROTOCOL_VERSIONS:
                await send({"type": "http.response.start", "status": 400, "headers": []})
                await send({"type": "http.response.body", "body": b"unsupported version"})
                return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("--http", "--legacy-http"):
        import uvicorn

        app = server.streamable_http_app()
        if sys.argv[1] == "--legacy-http":
            app = legacy_only(app)
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        server.run("stdio")
