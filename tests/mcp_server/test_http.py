"""Streamable HTTP on the API server (/mcp) and as a bare MCP app: authentication,
metadata, Origin, per-caller lists, both protocol generations, progress, cancellation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import jwt
import pytest

from mcp_server import error_details
from tests.mcp_server.conftest import INIT, JSON_HEADERS, McpServer, opened_system

SECRET = "k" * 40


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def _errors(group: BaseException) -> str:
    if isinstance(group, BaseExceptionGroup):
        return " ".join(_errors(inner) for inner in group.exceptions)
    return f"{type(group).__name__}: {group}"


def test_protected_resource_metadata_at_both_locations(mcp_http: Callable[..., McpServer]) -> None:
    server = mcp_http()
    for path in (
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ):
        response = httpx.get(server.base + path)
        assert response.status_code == 200
        document = response.json()
        assert document["resource"] == server.url
        assert document["bearer_methods_supported"] == ["header"]


def test_unauthenticated_requests_get_401_with_the_metadata_url(
    mcp_http: Callable[..., McpServer],
) -> None:
    server = mcp_http()
    metadata = f'resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"'
    missing = httpx.post(server.url, json=INIT, headers=JSON_HEADERS)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer ")
    assert metadata in missing.headers["WWW-Authenticate"]
    assert "error=" not in missing.headers["WWW-Authenticate"]

    forged = httpx.post(
        server.url,
        json=INIT,
        headers={**JSON_HEADERS, "Authorization": "Bearer rg_0123456789abcdef_" + "y" * 43},
    )
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["WWW-Authenticate"]
    assert metadata in forged.headers["WWW-Authenticate"]
    assert forged.json()["error"] == "invalid_api_key"


async def test_a_key_revoked_in_process_stops_at_once_despite_the_key_cache(
    mcp_http: Callable[..., McpServer],
) -> None:
    from identity.apikeys import parse_api_key, revoke_api_key

    server = mcp_http(api_key_cache_seconds=300)
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {server.keys['bob']}"}
    async with httpx.AsyncClient() as http:
        for _ in range(2):  # the second answer comes from the cache
            assert (await http.post(server.url, json=INIT, headers=headers)).status_code == 200
        async with opened_system(server.settings) as system:
            await revoke_api_key(db=system.db, key_id=parse_api_key(server.keys["bob"])[0])
        refused = await http.post(server.url, json=INIT, headers=headers)
        other = {**JSON_HEADERS, "Authorization": f"Bearer {server.keys['alice']}"}
        still = await http.post(server.url, json=INIT, headers=other)
    assert refused.status_code == 401
    assert refused.json()["error"] == "revoked_api_key"
    assert still.status_code == 200


@pytest.mark.parametrize(("cache_seconds", "status"), [(0, 401), (300, 200)])
async def test_mcp_caches_keys_as_the_api_key_cache_setting_says(
    mcp_http: Callable[..., McpServer], cache_seconds: int, status: int
) -> None:
    """A key revoked by another process (a row update, no in-process revocation) is seen
    on the next request without a cache, and after ``api_key_cache_seconds`` with one."""
    from sqlalchemy import update

    from identity.apikeys import parse_api_key
    from store import Database
    from store.models import ApiKey, utcnow

    server = mcp_http(api=False, api_key_cache_seconds=cache_seconds)
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {server.keys['bob']}"}
    async with httpx.AsyncClient() as http:
        assert (await http.post(server.url, json=INIT, headers=headers)).status_code == 200
        db = Database(server.settings.store_url)
        try:
            async with db.transaction() as session:
                await session.execute(
                    update(ApiKey)
                    .where(ApiKey.key_id == parse_api_key(server.keys["bob"])[0])
                    .values(revoked_at=utcnow())
                )
        finally:
            await db.dispose()
        answer = await http.post(server.url, json=INIT, headers=headers)
    assert answer.status_code == status


def test_foreign_origins_are_refused(mcp_http: Callable[..., McpServer]) -> None:
    server = mcp_http()
    auth = {**JSON_HEADERS, "Authorization": f"Bearer {server.keys['alice']}"}
    evil = httpx.post(server.url, json=INIT, headers={**auth, "Origin": "http://evil.test"})
    assert evil.status_code == 403
    assert evil.json()["error"] == "forbidden_origin"
    local = httpx.post(server.url, json=INIT, headers={**auth, "Origin": "http://localhost:6274"})
    assert local.status_code == 200
    absent = httpx.post(server.url, json=INIT, headers=auth)
    assert absent.status_code == 200


def test_configured_origins_are_allowed(mcp_http: Callable[..., McpServer]) -> None:
    server = mcp_http(mcp_allowed_origins="https://app.example")
    auth = {**JSON_HEADERS, "Authorization": f"Bearer {server.keys['alice']}"}
    ok = httpx.post(server.url, json=INIT, headers={**auth, "Origin": "https://app.example"})
    assert ok.status_code == 200
    local = httpx.post(server.url, json=INIT, headers={**auth, "Origin": "http://localhost:1"})
    assert local.status_code == 403


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_both_protocol_generations_list_and_call(
    mcp_http: Callable[..., McpServer], mode: str
) -> None:
    server = mcp_http()
    async with server.client("alice", mode=mode) as client:
        if mode == "legacy":
            assert client.protocol_version.startswith("2025")
        else:
            assert client.protocol_version == "2026-07-28"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"notes_create", "notes_search", "notes_delete"} <= names
        created = await client.call_tool("notes_create", {"title": "t", "body": "b"})
        assert not created.is_error
        assert created.structured_content is not None and created.structured_content["title"] == "t"
        wrong = await client.call_tool("notes_create", {"title": ["no"]})
        assert wrong.is_error and "invalid_arguments" in _text(wrong)
        unknown = await client.call_tool("no_such_tool", {})
        assert unknown.is_error and "unknown_tool" in _text(unknown)
        found = await client.call_tool("notes_search", {"query": ""})
        assert len(found.structured_content["notes"]) == 1  # type: ignore[index]


async def test_lists_follow_the_callers_scopes_and_the_mcp_profile(
    mcp_http: Callable[..., McpServer],
) -> None:
    server = mcp_http(mcp_allowed_scopes="notes:read")
    async with server.client("alice") as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert names == ["notes_search"]
        refused = await client.call_tool("notes_create", {"title": "t", "body": "b"})
        assert refused.is_error and "unknown_tool" in _text(refused)


async def test_tool_allow_list_of_the_mcp_profile(mcp_http: Callable[..., McpServer]) -> None:
    server = mcp_http(mcp_tools="notes_search,notes_create")
    async with server.client("bob") as client:
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
    assert names == ["notes_create", "notes_search"]


def test_a_caller_with_no_usable_tool_gets_403_insufficient_scope(
    mcp_http: Callable[..., McpServer],
) -> None:
    server = mcp_http(jwt_secret=SECRET)
    token = _jwt(roles=[], aud=None)
    response = httpx.post(
        server.url, json=INIT, headers={**JSON_HEADERS, "Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and "scope=" in challenge
    assert "resource_metadata=" in challenge


async def test_jwts_must_be_issued_for_this_endpoint(mcp_http: Callable[..., McpServer]) -> None:
    server = mcp_http(jwt_secret=SECRET, mcp_jwt_audience="urn:relaygraph:mcp")
    async with server.client(token=_jwt(roles=["user"], aud="urn:relaygraph:mcp")) as client:
        assert (await client.list_tools()).tools
    async with httpx.AsyncClient() as http:
        other = await http.post(
            server.url,
            json=INIT,
            headers={**JSON_HEADERS, "Authorization": f"Bearer {_jwt(roles=['user'], aud='api')}"},
        )
    assert other.status_code == 401
    assert other.json()["error"] == "invalid_audience"


def test_malformed_json_rpc_over_http_then_serving_continues(
    mcp_http: Callable[..., McpServer],
) -> None:
    server = mcp_http()
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {server.keys['alice']}"}
    for body in (b"{not json", b'{"jsonrpc": "2.0", "id": 1, "method": 5}', b"[]"):
        response = httpx.post(server.url, content=body, headers=headers)
        assert 400 <= response.status_code < 500, (body, response.status_code)
    response = httpx.post(server.url, json=INIT, headers=headers)
    assert response.status_code == 200
    assert "mcp-session-id" in response.headers


def test_a_session_stays_bound_to_its_credential(mcp_http: Callable[..., McpServer]) -> None:
    server = mcp_http()
    alice = {**JSON_HEADERS, "Authorization": f"Bearer {server.keys['alice']}"}
    opened = httpx.post(server.url, json=INIT, headers=alice)
    session = opened.headers["mcp-session-id"]
    hijack = httpx.post(
        server.url,
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        headers={
            **JSON_HEADERS,
            "Authorization": f"Bearer {server.keys['bob']}",
            "Mcp-Session-Id": session,
            "Mcp-Protocol-Version": "2025-11-25",
        },
    )
    assert hijack.status_code == 404


async def test_progress_notifications_for_long_tools(mcp_http: Callable[..., McpServer]) -> None:
    server = mcp_http(api=False)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with server.client("alice") as client:
        result = await client.call_tool(
            "slow_count", {"steps": 4, "step_seconds": 0.02}, progress_callback=on_progress
        )
    assert result.structured_content == {"steps": 4}
    assert [step for step, _, _ in seen] == [1, 2, 3, 4]
    assert all(total == 4 for _, total, _ in seen)


async def test_cancellation_stops_the_call_and_nothing_is_written(
    mcp_http: Callable[..., McpServer],
) -> None:
    from tests.helpers import count_notes

    server = mcp_http(api=False)
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with server.client("alice", mode="legacy") as client:
        async with anyio.create_task_group() as group:

            async def slow() -> None:
                await client.call_tool(
                    "slow_write", {"title": "late", "seconds": 20}, progress_callback=on_progress
                )

            group.start_soon(slow)
            with anyio.fail_after(15):
                await started.wait()
            group.cancel_scope.cancel()
        # The server keeps serving this session after the cancelled call.
        echoed = await client.call_tool("echo", {"text": "still here"})
        assert echoed.structured_content == {"text": "still here"}
    async with opened_system(server.settings) as system:
        assert await count_notes(system) == 0


async def test_approval_round_trip_with_the_reviewer_on_the_api(
    mcp_http: Callable[..., McpServer],
) -> None:
    server = mcp_http()
    api = f"{server.base}/api/v1/approvals"
    reviewer = {"x-api-key": server.keys["rita"]}
    async with server.client("alice") as client, httpx.AsyncClient() as http:
        first = await client.call_tool("notes_create", {"title": "doomed", "body": ""})
        second = await client.call_tool("notes_create", {"title": "kept", "body": ""})
        doomed = first.structured_content["id"]  # type: ignore[index]
        kept = second.structured_content["id"]  # type: ignore[index]

        held = await client.call_tool("notes_delete", {"note_id": doomed})
        assert held.is_error
        approval_id = error_details(held)["approval_id"]  # type: ignore[index]
        listed = (await http.get(api, headers=reviewer)).json()
        assert approval_id in str(listed)
        own = await http.post(
            f"{api}/{approval_id}/approve", headers={"x-api-key": server.keys["alice"]}
        )
        assert own.status_code == 403, "a plain user may not approve"
        decided = await http.post(f"{api}/{approval_id}/approve", headers=reviewer)
        assert decided.status_code == 200, decided.text
        done = await client.call_tool(
            "notes_delete", {"approval_id": approval_id, "note_id": doomed}
        )
        assert not done.is_error, _text(done)
        assert done.structured_content["deleted"] is True  # type: ignore[index]

        held = await client.call_tool("notes_delete", {"note_id": kept})
        refused_id = error_details(held)["approval_id"]  # type: ignore[index]
        rejected = await http.post(
            f"{api}/{refused_id}/reject", headers=reviewer, json={"note": "keep it"}
        )
        assert rejected.status_code == 200, rejected.text
        denied = await client.call_tool(
            "notes_delete", {"approval_id": refused_id, "note_id": kept}
        )
        assert denied.is_error and "approval_rejected" in _text(denied)
        remaining = await client.call_tool("notes_search", {"query": ""})
        assert [n["id"] for n in remaining.structured_content["notes"]] == [kept]  # type: ignore[index]


def _jwt(*, roles: list[str], aud: str | None) -> str:
    claims: dict[str, Any] = {
        "sub": "jo",
        "tenant": "a",
        "roles": roles,
        "exp": int(time.time()) + 600,
    }
    if aud is not None:
        claims["aud"] = aud
    return jwt.encode(claims, SECRET, algorithm="HS256")
