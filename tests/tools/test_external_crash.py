"""Attached MCP servers whose process dies (SIGKILL), over stdio and Streamable HTTP.

A read in flight is repeated on a fresh session; a call with an effect in flight is not
repeated and comes back ``in_doubt`` (no hang: every wait here is bounded well below the
tool's own timeout); the executor keeps serving; the ledger and the audit log say what
happened. tests/tools/crash_mcp_server.py is the server that gets killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from identity import Principal
from runtime.settings import Settings
from runtime.system import open_system
from tools import external
from tools.external import AttachedServer, ExternalServerConfig, external_tools
from tools.ledger import LedgerRow
from tools.types import ToolError, ToolOutcome

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

SERVER = Path(__file__).with_name("crash_mcp_server.py")
ALICE = Principal.with_roles("a", "alice", ["user"])
BOUND = 30.0
"""Seconds any call may take here; the tools' own timeout is far longer, so an answer
within it comes from noticing the dead process, not from the timeout."""
TOOL_TIMEOUT = 600.0
READ = {"risk": "read", "scope": "notes:read", "approval": "never"}
WRITE = {"risk": "write", "scope": "notes:write", "approval": "never"}
TOOLS = {
    name: {**policy, "timeout_seconds": TOOL_TIMEOUT}
    for name, policy in {
        "whoami": READ,
        "hold_once": READ,
        "record": WRITE,
        "hold": WRITE,
    }.items()
}


def stdio_config() -> ExternalServerConfig:
    return ExternalServerConfig.model_validate(
        {"name": "crash", "command": sys.executable, "args": [str(SERVER)], "tools": TOOLS}
    )


def http_config(port: int) -> ExternalServerConfig:
    return ExternalServerConfig.model_validate(
        {"name": "crash", "url": f"http://127.0.0.1:{port}/mcp", "tools": TOOLS}
    )


async def call(system: Any, tool: str, args: dict[str, Any], **kwargs: Any) -> ToolOutcome:
    async with asyncio.timeout(BOUND):
        outcome: ToolOutcome = await system.executor.call_external(
            ALICE, tool, args, via="mcp", **kwargs
        )
        return outcome


def written_pid(path: Path) -> int | None:
    text = path.read_text() if path.exists() else ""
    return int(text) if text else None


async def wait_for_file(path: Path) -> int:
    """The pid a ``hold`` call wrote once it was in flight."""
    async with asyncio.timeout(BOUND):
        while (pid := written_pid(path)) is None:
            await asyncio.sleep(0.02)
    return pid


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


async def ledger_rows(system: Any) -> list[LedgerRow]:
    async with system.db.session() as session:
        return list((await session.execute(select(LedgerRow).order_by(LedgerRow.id))).scalars())


async def audit_statuses(system: Any, tool: str) -> list[str]:
    entries = await system.executor.audit.entries(tenant="a", tool=tool)
    return [entry["status"] for entry in reversed(entries)]  # oldest first


async def executor_still_serves(system: Any) -> None:
    created = await call(system, "notes_create", {"title": "after", "body": "the crash"})
    assert created.ok, created.error
    found = await call(system, "notes_search", {"query": "after"})
    assert found.ok, found.error
    assert [note["title"] for note in found.output["notes"]] == ["after"]  # type: ignore[index]


@pytest.fixture
async def stdio_system(data_dir: Path) -> AsyncIterator[Any]:
    specs = await external_tools([stdio_config()])
    assert {spec.name for spec in specs} == {f"crash_{name}" for name in TOOLS}
    async with open_system(Settings(data_dir=data_dir), extra_tools=specs) as opened:
        yield opened


async def test_stdio_server_killed_between_and_during_calls(
    stdio_system: Any, tmp_path: Path
) -> None:
    system = stdio_system
    attached: AttachedServer = system.executor.registry.get("crash_whoami").handler.attached
    first = await call(system, "crash_whoami", {})
    assert first.ok, first.error
    first_pid = first.output["structured"]["pid"]

    # Killed while idle: the next call (a read) runs on a new process.
    kill(first_pid)
    again = await call(system, "crash_whoami", {})
    assert again.ok, again.error
    second_pid = again.output["structured"]["pid"]
    assert second_pid != first_pid and again.output["structured"]["calls_in_this_process"] == 1

    # Killed while a read is in flight: repeated on a fresh session, where it answers.
    marker = tmp_path / "read-marker"
    read = asyncio.create_task(call(system, "crash_hold_once", {"marker": str(marker)}))
    assert await wait_for_file(marker) == second_pid
    kill(second_pid)
    retried = await read
    assert retried.ok, retried.error
    third_pid = retried.output["structured"]["pid"]
    assert third_pid not in (first_pid, second_pid)

    # Killed while a call with an effect is in flight: not repeated, in doubt, at once.
    marker = tmp_path / "write-marker"
    started = time.monotonic()
    write = asyncio.create_task(
        call(system, "crash_hold", {"marker": str(marker)}, idempotency_key="hold-1")
    )
    assert await wait_for_file(marker) == third_pid
    kill(third_pid)
    doubtful = await write
    assert not doubtful.ok and doubtful.error is not None
    assert doubtful.error.code == "in_doubt", doubtful.error
    assert "may or may not have taken effect" in doubtful.error.message
    assert time.monotonic() - started < BOUND
    connects = attached.connects

    # Its ledger row keeps that answer: a repeat with the same key is not sent again
    # (it would hold until the bound ran out).
    marker.unlink()
    repeated = await call(system, "crash_hold", {"marker": str(marker)}, idempotency_key="hold-1")
    assert repeated.replayed and repeated.error is not None
    assert repeated.error.code == "in_doubt"
    assert not marker.exists() and attached.connects == connects
    [row] = await ledger_rows(system)
    assert (row.tool, row.status) == ("crash_hold", "failed")
    assert row.error is not None and row.error.startswith("in_doubt: ")

    # The executor keeps serving our tools and the attached server's.
    await executor_still_serves(system)
    recorded = await call(system, "crash_record", {"text": "x"}, idempotency_key="rec-1")
    assert recorded.ok, recorded.error
    assert recorded.output["structured"]["pid"] not in (first_pid, second_pid, third_pid)

    assert await audit_statuses(system, "crash_whoami") == ["ok", "ok"]
    assert await audit_statuses(system, "crash_hold_once") == ["ok"]
    assert await audit_statuses(system, "crash_hold") == ["in_doubt", "in_doubt"]
    assert await audit_statuses(system, "crash_record") == ["ok"]
    assert (await system.executor.audit.verify()).ok


async def test_a_slow_teardown_does_not_hold_up_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection breaks and closing the broken session hangs (a session DELETE to a
    hung HTTP server): the caller gets its answer after DROP_WAIT_SECONDS; shutdown
    still waits for the teardown."""
    from mcp import MCPError
    from mcp_types.jsonrpc import CONNECTION_CLOSED

    monkeypatch.setattr(external, "DROP_WAIT_SECONDS", 0.05)
    released = asyncio.Event()

    class Broken:
        session = None

        async def call_tool(self, *args: Any, **kwargs: Any) -> Any:
            raise MCPError(CONNECTION_CLOSED, "Connection closed")

    class HangsOnClose:
        async def __aenter__(self) -> Broken:
            return Broken()

        async def __aexit__(self, *exc: object) -> None:
            await released.wait()

    attached = AttachedServer(stdio_config())
    monkeypatch.setattr(attached, "client", lambda owner, checked=False: HangsOnClose())
    async with asyncio.timeout(BOUND):
        with pytest.raises(ToolError) as raised:
            await attached.call_tool(None, "record", {"text": "x"})
    assert raised.value.code == "in_doubt"
    assert len(attached._retiring) == 1  # still closing
    released.set()
    async with asyncio.timeout(BOUND):
        await attached.aclose()
    assert not attached._retiring


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HttpServer:
    """crash_mcp_server.py under uvicorn in a subprocess, restartable on its port."""

    def __init__(self, flag: str) -> None:
        self.flag = flag
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), self.flag, str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the HTTP server exited at start-up"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self.process.pid
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the HTTP server did not start listening")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=BOUND)


@pytest.fixture(params=["--http", "--legacy-http"], ids=["2026-stateless", "2025-sessions"])
def http_server(request: pytest.FixtureRequest) -> Iterator[HttpServer]:
    server = HttpServer(request.param)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


async def test_http_server_killed_between_and_during_calls(
    http_server: HttpServer, data_dir: Path, tmp_path: Path
) -> None:
    specs = await external_tools([http_config(http_server.port)])
    assert len(specs) == len(TOOLS)
    async with open_system(Settings(data_dir=data_dir), extra_tools=specs) as system:
        first = await call(system, "crash_whoami", {})
        assert first.ok, first.error

        # Killed and restarted while idle: a call with an effect runs once on the new
        # process (a 2025-era server no longer knows the old session and refuses the
        # call unrun; a fresh session is opened for it).
        http_server.kill()
        restarted_pid = http_server.start()
        written = await call(system, "crash_record", {"text": "a"}, idempotency_key="rec-1")
        assert written.ok, written.error
        assert written.output["structured"]["pid"] == restarted_pid
        assert written.output["structured"]["calls_in_this_process"] == 1
        again = await call(system, "crash_record", {"text": "b"})
        assert again.ok, again.error
        assert again.output["structured"]["calls_in_this_process"] == 2  # same session

        # Killed while a call with an effect is in flight: in doubt, not repeated.
        marker = tmp_path / "write-marker"
        write = asyncio.create_task(
            call(system, "crash_hold", {"marker": str(marker)}, idempotency_key="hold-1")
        )
        assert await wait_for_file(marker) == restarted_pid
        http_server.kill()
        doubtful = await write
        assert doubtful.error is not None and doubtful.error.code == "in_doubt", doubtful.error

        # Down: a read fails fast with a typed error; our own tools keep working.
        down = await call(system, "crash_whoami", {})
        assert down.error is not None and down.error.code == "external_unavailable"
        assert "ConnectError" in down.error.message
        await executor_still_serves(system)

        # Back: reads work again on a fresh session.
        back_pid = http_server.start()
        back = await call(system, "crash_whoami", {})
        assert back.ok, back.error
        assert back.output["structured"]["pid"] == back_pid

        rows = {row.tool: row for row in await ledger_rows(system)}
        assert rows["crash_record"].status == "succeeded"
        assert rows["crash_hold"].status == "failed"
        assert (rows["crash_hold"].error or "").startswith("in_doubt: ")
        assert await audit_statuses(system, "crash_record") == ["ok", "ok"]
        assert await audit_statuses(system, "crash_hold") == ["in_doubt"]
        assert await audit_statuses(system, "crash_whoami") == ["ok", "failed", "ok"]
        assert (await system.executor.audit.verify()).ok
