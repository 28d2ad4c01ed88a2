"""MCP round trip: relaygraph's server (gate + audit through ``tools.executor``) against a
bare SDK ``MCPServer`` with the same trivial tool, over stdio and Streamable HTTP.

    python -m benchmarks.mcp_roundtrip [--calls 500]

Each server runs in its own process; one client per server calls the tool sequentially,
alternating between the two servers call by call so both see the same machine load, and the
script prints p50/p99 per transport and the ratio ours/bare (target <= 1.2x). Both
servers are measured in the same run on the same machine. It also prints each server
process's CPU time per call (Linux ``/proc``), which a loaded machine disturbs far less
than wall-clock latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

REPO = Path(__file__).resolve().parents[1]
WARMUP = 20


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=1000, description="Text to send back.")


class EchoOutput(BaseModel):
    text: str


def echo_tool() -> Any:
    from tools.types import ToolContext, ToolSpec

    async def echo(ctx: ToolContext, args: EchoInput) -> EchoOutput:
        return EchoOutput(text=args.text)

    return ToolSpec(
        name="echo",
        description="Send the text back.",
        input_model=EchoInput,
        output_model=EchoOutput,
        handler=echo,
        risk="read",
        scope="notes:read",
        idempotent=True,
    )


def bare_server() -> Any:
    from mcp.server import MCPServer

    server = MCPServer("bare")

    @server.tool()
    def echo(text: str) -> EchoOutput:
        """Send the text back."""
        return EchoOutput(text=text)

    return server


# ---- server processes ---------------------------------------------------------------


async def _serve_ours(transport: str, port: int) -> None:
    import uvicorn

    from api.app import auth_config
    from mcp_server import McpConfig, McpHttpEndpoint, serve_stdio, standalone_app, stdio_principal
    from runtime.settings import Settings
    from runtime.system import open_system

    settings = Settings()
    config = McpConfig.from_settings(settings)
    async with open_system(settings, extra_tools=[echo_tool()]) as system:
        if transport == "stdio":
            key = settings.api_key.get_secret_value() if settings.api_key else None
            principal = await stdio_principal(db=system.db, api_key=key, local_only=False)
            await serve_stdio(system.executor, config, principal)
            return
        endpoint = McpHttpEndpoint(config)
        async with endpoint.serving(system.executor, auth_config(settings), system.db):
            server = uvicorn.Server(
                uvicorn.Config(
                    standalone_app(endpoint),
                    host="127.0.0.1",
                    port=port,
                    log_level="warning",
                    lifespan="off",
                )
            )
            await server.serve()


def _serve_bare(transport: str, port: int) -> None:
    server = bare_server()
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)


# ---- client -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def _client(which: str, transport: str, env: dict[str, str], key: str) -> AsyncIterator[Any]:
    import httpx2
    from mcp import Client, StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    role = f"serve-{which}"
    if transport == "stdio":
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "benchmarks.mcp_roundtrip", role, "stdio"],
            env=env,
            cwd=str(REPO),
        )
        async with Client(params, read_timeout_seconds=60) as client:
            yield client
        return
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.mcp_roundtrip",
        role,
        "http",
        str(port),
        env=env,
        cwd=str(REPO),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _wait_for_port(port, process)
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"})
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client
    finally:
        process.terminate()
        await process.wait()


async def _wait_for_port(port: int, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"no server on port {port} after 60 s")


async def _measure(clients: dict[str, Any], calls: int) -> dict[str, list[float]]:
    """Call each server in turn, one call at a time, so that both see the same load on a
    shared machine (measuring one server after the other let a load change between the
    two phases swing the ratio by more than the difference being measured)."""
    for _ in range(WARMUP):
        for client in clients.values():
            await client.call_tool("echo", {"text": "warm"})
    timings: dict[str, list[float]] = {which: [] for which in clients}
    for index in range(calls):
        for which, client in clients.items():
            started = time.perf_counter()
            result = await client.call_tool("echo", {"text": f"call {index}"})
            timings[which].append((time.perf_counter() - started) * 1000)
            if result.is_error or result.structured_content != {"text": f"call {index}"}:
                raise RuntimeError(f"unexpected result from {which}: {result}")
    return timings


def _server_pid(which: str) -> int | None:
    """The pid of this process's child serving as ``which`` (``/proc``; None elsewhere)."""
    role = f"serve-{which}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and role in cmdline:
            return int(entry.name)
    return None


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of ``pid`` so far (all its threads)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _create_key(data_dir: Path) -> str:
    from identity.apikeys import create_api_key
    from runtime.settings import Settings
    from store import Database, migrate

    settings = Settings(data_dir=data_dir)
    migrate(settings.store_url)
    db = Database(settings.store_url)
    try:
        return (await create_api_key(db=db, tenant="bench", user="bench", roles=["user"])).key
    finally:
        await db.dispose()


async def run(calls: int) -> None:
    with tempfile.TemporaryDirectory(prefix="relaygraph-mcp-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        key = await _create_key(data_dir)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", tmp),
            "PYTHONPATH": str(REPO),
            "RELAYGRAPH_DATA_DIR": str(data_dir),
            "RELAYGRAPH_API_KEY": key,
        }
        print(f"MCP round trip: {calls} sequential calls of a trivial tool ({WARMUP} warm-up)")
        print(
            f"{'transport':<10}{'server':<12}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
            f"{'cpu ms/call':>13}"
        )
        for transport in ("stdio", "http"):
            async with AsyncExitStack() as stack:
                clients = {
                    which: await stack.enter_async_context(_client(which, transport, env, key))
                    for which in ("bare", "ours")
                }
                pids = {which: _server_pid(which) for which in clients}
                before = {which: _cpu_seconds(pid) for which, pid in pids.items()}
                figures = await _measure(clients, calls)
                after = {which: _cpu_seconds(pid) for which, pid in pids.items()}
            cpu: dict[str, float | None] = {}
            for which, timings in figures.items():
                start, end = before[which], after[which]
                cpu[which] = None if start is None or end is None else (end - start) / calls * 1000
                shown = "n/a" if cpu[which] is None else f"{cpu[which]:.3f}"
                print(
                    f"{transport:<10}{which:<12}{_percentile(timings, 0.5):>9.2f}"
                    f"{_percentile(timings, 0.99):>9.2f}{statistics.fmean(timings):>9.2f}"
                    f"{shown:>13}"
                )
            p50 = _percentile(figures["ours"], 0.5) / _percentile(figures["bare"], 0.5)
            p99 = _percentile(figures["ours"], 0.99) / _percentile(figures["bare"], 0.99)
            ours_cpu, bare_cpu = cpu["ours"], cpu["bare"]
            cpu_ratio = f"{ours_cpu / bare_cpu:.2f}x" if ours_cpu and bare_cpu else "n/a"
            verdict = "ok" if p50 <= 1.2 else "above the 1.2x target"
            print(
                f"{transport:<10}{'ratio':<12}{p50:>8.2f}x{p99:>8.2f}x{'':>9}{cpu_ratio:>13}"
                f"   (p50 {verdict})"
            )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("serve-ours", "serve-bare"):
        transport = sys.argv[2]
        port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
        if sys.argv[1] == "serve-ours":
            asyncio.run(_serve_ours(transport, port))
        else:
            _serve_bare(transport, port)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.calls))


if __name__ == "__main__":
    main()
