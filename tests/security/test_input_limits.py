"""Input limits with a clear, structured error each: message length (422), upload size
(413), SSE streams per user and per tenant (429 with Retry-After). Request body size (413)
is in tests/api/test_errors.py; MCP tool argument size in test_mcp_fuzz.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.errors import ApiError
from api.sse import StreamSlots
from tests.api.conftest import ApiServer

pytestmark = pytest.mark.security

LONG_MODEL = f"scripted:{Path(__file__).with_name('long_model.py')}:turn"


def _client(server: ApiServer, who: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base_url, headers=server.headers(who), timeout=httpx.Timeout(30.0)
    )


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and len(body["message"]) > 20
    return body


async def test_message_length_is_limited(serve: Callable[..., ApiServer]) -> None:
    server = serve([{"content": "ok"}], max_message_chars=1000)
    async with _client(server, "alice") as client:
        thread = (await client.post("/threads", json={})).json()["thread_id"]
        runs = f"/threads/{thread}/runs"
        over = {"messages": [{"role": "user", "content": "x" * 1001}]}
        for path in (runs, f"{runs}/wait", f"{runs}/stream", "/runs/wait"):
            body = _assert_error(
                await client.post(path, json={"assistant_id": "agent", "input": over}),
                422,
                "message_too_long",
            )
            assert "1000" in body["message"] and "messages[0]" in body["message"]
        parts = [{"type": "text", "text": "y" * 600}, {"type": "text", "text": "z" * 600}]
        second = {
            "messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": parts}]
        }
        body = _assert_error(
            await client.post(runs, json={"assistant_id": "agent", "input": second}),
            422,
            "message_too_long",
        )
        assert "messages[1]" in body["message"]
        assert (await client.get(runs)).json() == [], "a refused run is never created"
        within = {"messages": [{"role": "user", "content": "x" * 1000}]}
        done = await client.post(f"{runs}/wait", json={"assistant_id": "agent", "input": within})
        assert done.status_code == 200, done.text


async def test_upload_size_is_limited(serve: Callable[..., ApiServer]) -> None:
    server = serve([{"content": "ok"}], document_max_bytes=4096)
    async with _client(server, "alice") as client:
        big = await client.post(
            "/files", files={"file": ("big.txt", b"word " * 2000, "text/plain")}
        )
        body = _assert_error(big, 413, "too_large")
        assert "4096" in body["message"] or "4 KiB" in body["message"] or "bytes" in body["message"]
        small = await client.post(
            "/files", files={"file": ("small.txt", b"a short note", "text/plain")}
        )
        assert small.status_code == 202, small.text


async def _open_stream(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, Any]:
    """Send the request and read the response head; the caller closes the stream."""
    request = client.build_request("GET", path)
    response = await client.send(request, stream=True)
    return response, response


@pytest.mark.slow
async def test_sse_streams_per_user_are_limited(serve: Callable[..., ApiServer]) -> None:
    server = serve(model=LONG_MODEL, max_sse_streams=3, max_sse_streams_per_tenant=0)
    async with _client(server, "alice") as alice, _client(server, "bob") as bob:
        thread = (await alice.post("/threads", json={})).json()["thread_id"]
        run = (
            await alice.post(
                f"/threads/{thread}/runs",
                json={
                    "assistant_id": "agent",
                    "input": {"messages": [{"role": "user", "content": "go"}]},
                },
            )
        ).json()
        join = f"/threads/{thread}/runs/{run['run_id']}/stream"
        opened = await asyncio.gather(*(_open_stream(alice, join) for _ in range(6)))
        responses = [response for response, _ in opened]
        try:
            statuses = sorted(response.status_code for response in responses)
            assert statuses == [200, 200, 200, 429, 429, 429]
            for response in responses:
                if response.status_code == 429:
                    await response.aread()
                    assert response.headers["Retry-After"] == "5"
                    assert response.json()["error"] == "too_many_streams"
                    assert "RELAYGRAPH_MAX_SSE_STREAMS" in response.json()["message"]
            # A new run's stream counts too, and is refused before the run is created.
            runs_before = len((await alice.get(f"/threads/{thread}/runs")).json())
            refused = await alice.post(
                "/runs/stream",
                json={
                    "assistant_id": "agent",
                    "input": {"messages": [{"role": "user", "content": "x"}]},
                },
            )
            _assert_error(refused, 429, "too_many_streams")
            assert len((await alice.get(f"/threads/{thread}/runs")).json()) == runs_before
            # Another tenant's user has slots of his own.
            bob_thread = (await bob.post("/threads", json={})).json()["thread_id"]
            async with bob.stream(
                "POST",
                f"/threads/{bob_thread}/runs/stream",
                json={
                    "assistant_id": "agent",
                    "input": {"messages": [{"role": "user", "content": "b"}]},
                },
            ) as bobs:
                assert bobs.status_code == 200
        finally:
            for response in responses:
                await response.aclose()
        # Closed streams give their slots back.
        for _ in range(50):
            again, _ = await _open_stream(alice, join)
            status = again.status_code
            await again.aclose()
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200
        await alice.post(f"/threads/{thread}/runs/{run['run_id']}/cancel")


def test_stream_slots_per_tenant_and_release() -> None:
    slots = StreamSlots()
    releases = [slots.reserve("a", f"u{i}", per_user=2, per_tenant=3) for i in range(3)]
    with pytest.raises(ApiError) as refused:
        slots.reserve("a", "u9", per_user=2, per_tenant=3)
    assert refused.value.status == 429 and refused.value.code == "too_many_streams"
    assert "RELAYGRAPH_MAX_SSE_STREAMS_PER_TENANT" in refused.value.message
    slots.reserve("b", "u0", per_user=2, per_tenant=3)  # other tenants are unaffected
    releases[0]()
    releases[0]()  # giving back twice frees one slot only
    assert slots.open_streams("a") == 2
    slots.reserve("a", "u9", per_user=2, per_tenant=3)
    with pytest.raises(ApiError):
        slots.reserve("a", "u9", per_user=2, per_tenant=3)
    assert slots.open_streams("a", "u1") == 1
