"""tools/external.py with a real third-party server from PyPI (mcp-server-time over stdio),
called through the executor and through our own MCP server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from identity import Principal
from mcp_server import McpConfig, McpToolService, build_server, error_details
from runtime.settings import Settings
from runtime.system import open_system
from tools.external import (
    IDEMPOTENCY_META,
    AttachedServer,
    ExternalServerConfig,
    external_tools,
    input_model_for,
    namespaced,
)
from tools.types import CallKey

pytestmark = pytest.mark.slow
ALICE = Principal.with_roles("a", "alice", ["user"])
BOB = Principal.with_roles("b", "bob", ["user"])


ECHO = Path(__file__).with_name("echo_mcp_server.py")


def echo_server(**tool: Any) -> ExternalServerConfig:
    policy = {"risk": "write", "scope": "notes:write", "approval": "never", **tool}
    return ExternalServerConfig.model_validate(
        {
            "name": "echo",
            "command": sys.executable,
            "args": [str(ECHO)],
            "tools": {"record": policy},
        }
    )


def time_server(**overrides: Any) -> ExternalServerConfig:
    values: dict[str, Any] = {
        "name": "time",
        "command": sys.executable,
        "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
        "tools": {
            "get_current_time": {"risk": "read", "scope": "notes:read", "approval": "never"},
            "not_offered": {"risk": "write", "scope": "notes:write"},
        },
        **overrides,
    }
    return ExternalServerConfig.model_validate(values)


@pytest.fixture
async def system(data_dir: Any) -> AsyncIterator[Any]:
    specs = await external_tools([time_server()])
    async with open_system(Settings(data_dir=data_dir), extra_tools=specs) as opened:
        yield opened


def test_names_are_namespaced_and_bounded() -> None:
    assert namespaced("time", "get.current time") == "time_get_current_time"
    long_a = namespaced("srv", "x" * 80 + "a")
    long_b = namespaced("srv", "x" * 80 + "b")
    assert len(long_a) == 64 and len(long_b) == 64 and long_a != long_b


def test_config_needs_exactly_one_transport() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ExternalServerConfig.model_validate({"name": "x", "tools": {}})


def test_input_model_validates_against_the_remote_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"timezone": {"type": "string"}},
        "required": ["timezone"],
    }
    model = input_model_for("time_get_current_time", schema)
    assert model.model_json_schema() == schema
    assert model.model_validate({"timezone": "UTC"}).model_dump() == {"timezone": "UTC"}
    with pytest.raises(ValueError, match="timezone"):
        model.model_validate({"timezone": 5})


async def test_only_allowed_tools_become_entries() -> None:
    attached = AttachedServer(time_server())
    specs = await attached.tool_specs()
    await attached.aclose()
    assert [spec.name for spec in specs] == ["time_get_current_time"]
    spec = specs[0]
    assert spec.source == "external:time" and spec.open_world
    assert "timezone" in spec.input_schema()["properties"]


async def test_calls_go_through_the_executor(system: Any) -> None:
    outcome = await system.executor.call_external(
        ALICE, "time_get_current_time", {"timezone": "Europe/Paris"}, via="mcp"
    )
    assert outcome.ok, outcome.error
    assert "Europe/Paris" in outcome.output["text"]
    assert outcome.trusted is False, "attached servers are untrusted by default"
    wrong = await system.executor.call_external(
        ALICE, "time_get_current_time", {"timezone": 5}, via="mcp"
    )
    assert wrong.error.code == "invalid_arguments"


async def test_untrusted_output_taints_the_mcp_session(system: Any) -> None:
    service = McpToolService(system.executor, McpConfig())
    server = build_server(service, lambda _ctx: ALICE)
    # A session-based (2025) connection: taint is remembered per connection.
    async with Client(server, mode="legacy") as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        annotations = listed["time_get_current_time"].annotations
        assert annotations is not None and annotations.open_world_hint is True
        before = await client.call_tool("notes_create", {"title": "a", "body": "b"})
        assert not before.is_error
        read = await client.call_tool("time_get_current_time", {"timezone": "UTC"})
        assert not read.is_error
        after = await client.call_tool("notes_create", {"title": "c", "body": "d"})
        assert after.is_error
        assert error_details(after)["error"] == "approval_required"  # type: ignore[index]


async def test_tenants_without_credentials_are_refused(data_dir: Any) -> None:
    config = time_server(per_tenant_credentials=True, tenant_env={"a": {"TIME_TOKEN": "t-a"}})
    specs = await external_tools([config])
    async with open_system(Settings(data_dir=data_dir), extra_tools=specs) as opened:
        ok = await opened.executor.call_external(
            ALICE, "time_get_current_time", {"timezone": "UTC"}, via="mcp"
        )
        assert ok.ok, ok.error
        refused = await opened.executor.call_external(
            BOB, "time_get_current_time", {"timezone": "UTC"}, via="mcp"
        )
        assert refused.error is not None and refused.error.code == "not_configured"


async def test_an_unreachable_server_is_left_out() -> None:
    broken = time_server(name="broken", command="/nonexistent/relaygraph-no-such-binary")
    assert await external_tools([broken]) == []


async def test_one_session_is_kept_per_server_and_replaced_once_broken(data_dir: Any) -> None:
    specs = await external_tools([echo_server()])
    attached = specs[0].handler.attached  # type: ignore[attr-defined]
    async with open_system(Settings(data_dir=data_dir), extra_tools=specs) as opened:
        call = opened.executor.call_external
        outcomes = [await call(ALICE, "echo_record", {"text": t}, via="mcp") for t in "abc"]
        assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes]
        served = [outcome.output["structured"]["calls_in_this_process"] for outcome in outcomes]
        assert served == [1, 2, 3]  # one server process answered them all
        assert attached.connects == 1  # the listing at start-up opened it; calls reuse it

        (session,) = attached._sessions.values()
        await session.aclose()  # as if the server had gone away between calls
        again = await call(ALICE, "echo_record", {"text": "d"}, via="mcp")
        assert again.ok, again.error
        assert again.output["structured"]["calls_in_this_process"] == 1  # a new process
        assert attached.connects == 2
    assert attached._sessions == {}  # closed with the system


async def test_calls_carry_their_ledger_key_downstream(data_dir: Any) -> None:
    specs = await external_tools([echo_server()])
    async with open_system(Settings(data_dir=data_dir), extra_tools=specs) as opened:
        keyed = await opened.executor.call_external(
            ALICE, "echo_record", {"text": "a"}, via="mcp", idempotency_key="client-key-1"
        )
        repeated = await opened.executor.call_external(
            ALICE, "echo_record", {"text": "a"}, via="mcp", idempotency_key="client-key-1"
        )
        unkeyed = await opened.executor.call_external(ALICE, "echo_record", {"text": "b"})
    assert keyed.ok and repeated.ok and unkeyed.ok
    sent = keyed.output["structured"]
    expected = CallKey("ext:a:alice", "external", "client-key-1").idempotency_key()
    assert sent["meta_key"] == sent["argument_key"] == expected
    assert repeated.replayed and repeated.output == keyed.output  # the ledger answered
    assert unkeyed.output["structured"]["meta_key"] is None
    assert IDEMPOTENCY_META == "io.relaygraph/idempotency-key"
