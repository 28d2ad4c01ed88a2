"""Real MCP sessions against relaygraph: a migrated store with API keys, the API app (with
``/mcp``) or a bare MCP app on uvicorn at 127.0.0.1, and SDK clients with bearer headers."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette

from runtime.settings import Settings
from tests.mcp_server.tooling import TEST_TOOLS

KEYS = {
    "alice": ("a", "alice", ["user"]),
    "bob": ("b", "bob", ["user"]),
    "rita": ("a", "rita", ["reviewer"]),
    "ada": ("a", "ada", ["admin"]),
}
REPO = Path(__file__).resolve().parents[2]
# Raw JSON-RPC over Streamable HTTP: the headers a client must send, and its first request.
JSON_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


async def create_keys(settings: Settings) -> dict[str, str]:
    from identity.apikeys import create_api_key
    from store import Database, migrate

    migrate(settings.store_url)
    db = Database(settings.store_url)
    try:
        keys = {}
        for name, (tenant, user, roles) in KEYS.items():
            keys[name] = (await create_api_key(db=db, tenant=tenant, user=user, roles=roles)).key
        return keys
    finally:
        await db.dispose()


def run_async(coroutine: Any) -> Any:
    """Run ``coroutine`` on a fresh loop in another thread (the test's loop may be running)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class UvicornThread:
    """An ASGI app with its lifespan on, served on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        stop = threading.Event()
        while not self.server.started and self.thread.is_alive():
            stop.wait(0.02)
        if not self.server.started:
            raise RuntimeError("the server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def mcp_app(settings: Settings, extra_tools: list[Any]) -> Starlette:
    """A bare MCP app (what `relaygraph mcp --http` serves) with extra test tools."""
    from api.app import auth_config
    from mcp_server import McpConfig, McpHttpEndpoint, standalone_app
    from runtime.system import open_system

    endpoint = McpHttpEndpoint(McpConfig.from_settings(settings))
    app = standalone_app(endpoint)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with open_system(settings, extra_tools=extra_tools) as system:
            app.state.system = system
            async with endpoint.serving(system.executor, auth_config(settings), system.db):
                yield

    app.router.lifespan_context = lifespan
    return app


@dataclass
class McpServer:
    url: str
    """The MCP endpoint, e.g. http://127.0.0.1:PORT/mcp."""
    base: str
    settings: Settings
    keys: dict[str, str] = field(default_factory=dict)

    def client(
        self,
        who: str | None = None,
        *,
        token: str | None = None,
        mode: str = "auto",
        headers: dict[str, str] | None = None,
    ) -> Client:
        sent = dict(headers or {})
        bearer = token if token is not None else (self.keys[who] if who else None)
        if bearer:
            sent["Authorization"] = f"Bearer {bearer}"
        http = httpx2.AsyncClient(headers=sent, timeout=httpx2.Timeout(30.0))
        return Client(
            streamable_http_client(self.url, http_client=http),
            mode=mode,  # type: ignore[arg-type]
            read_timeout_seconds=30,
        )


@pytest.fixture
def mcp_http(data_dir: Path) -> Iterator[Callable[..., McpServer]]:
    """``mcp_http(api=True, **settings)``: the API app (``api=True``, /mcp mounted) or a
    bare MCP app with the test tools; keys for alice, bob, rita, ada."""
    running: list[UvicornThread] = []

    def start(*, api: bool = True, **overrides: Any) -> McpServer:
        settings = Settings(data_dir=data_dir, **overrides)
        keys = run_async(create_keys(settings))
        if api:
            from api.app import create_app

            app: Any = create_app(settings, workers=0)
        else:
            app = mcp_app(settings, TEST_TOOLS)
        server = UvicornThread(app)
        server.start()
        running.append(server)
        base = f"http://127.0.0.1:{server.port}"
        return McpServer(f"{base}/mcp", base, settings, keys)

    yield start
    for server in running:
        server.stop()


@dataclass
class StdioSetup:
    settings: Settings
    keys: dict[str, str]
    data_dir: Path

    def env(self, key: str | None = None, **extra: str) -> dict[str, str]:
        """The environment of a spawned `relaygraph mcp`: only what it needs."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(self.data_dir)),
            "PYTHONPATH": str(REPO),
            "RELAYGRAPH_DATA_DIR": str(self.data_dir),
            "LANGGRAPH_STRICT_MSGPACK": "true",
            **extra,
        }
        if key is not None:
            env["RELAYGRAPH_API_KEY"] = key
        return env

    async def spawn(self, key: str | None, **extra: str) -> asyncio.subprocess.Process:
        """`relaygraph mcp` as a raw subprocess with piped stdio, for hand-written JSON-RPC."""
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relaygraph",
            "mcp",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(key, **extra),
            cwd=str(REPO),
        )

    def params(self, key: str | None = None, **extra: str) -> StdioServerParameters:
        return StdioServerParameters(
            command=sys.executable,
            args=["-m", "relaygraph", "mcp"],
            env=self.env(key, **extra),
            cwd=str(self.data_dir.parent),
        )

    def client(self, who: str, *, mode: str = "auto", **extra: str) -> Client:
        return Client(self.params(self.keys[who], **extra), mode=mode, read_timeout_seconds=60)  # type: ignore[arg-type]


@pytest.fixture
def stdio_setup(data_dir: Path) -> StdioSetup:
    settings = Settings(data_dir=data_dir)
    return StdioSetup(settings, run_async(create_keys(settings)), data_dir)


@asynccontextmanager
async def opened_system(settings: Settings) -> AsyncIterator[Any]:
    """The same store the server uses, opened in the test process (reviewers' side)."""
    from runtime.system import open_system

    async with open_system(settings) as system:
        yield system
