"""Error answers of the API: one JSON shape ``{"error", "message"}``, the right status,
a message that names the problem, and never a stack trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiServer, running_server

# "slow" blocks its worker thread for a while (a run in flight); anything else creates a
# note and then asks to delete it, which pauses the run for approval.
MODEL_SOURCE = """
import time


def turn(messages):
    text = str([m for m in messages if m.type == "human"][-1].content)
    if text.startswith("slow"):
        time.sleep(1.5)
        return {"content": "slow reply"}
    index = sum(1 for m in messages if m.type == "ai")
    if index == 0:
        call = {"name": "notes_create", "args": {"title": "t", "body": "b"}}
        return {"content": "Saving.", "tool_calls": [call]}
    if index == 1:
        call = {"name": "notes_delete", "args": {"note_id": 1}}
        return {"content": "Deleting.", "tool_calls": [call]}
    return {"content": "All done."}
"""
SLOW = {"assistant_id": "agent", "input": {"messages": [{"type": "human", "content": "slow"}]}}
GO = {"assistant_id": "agent", "input": {"messages": [{"type": "human", "content": "go"}]}}
APPROVE = {"decisions": [{"type": "approve"}]}


@dataclass
class Paused:
    server: ApiServer
    thread_id: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("errors")
    model = root / "model.py"
    model.write_text(MODEL_SOURCE, encoding="utf-8")
    with running_server(root / "data", workers=2, model=f"scripted:{model}:turn") as running:
        yield running


@pytest.fixture(scope="module")
def paused(server: ApiServer) -> Paused:
    """Alice's thread, waiting for a decision on a notes_delete call."""
    headers = server.headers("alice")
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        thread_id = client.post("/threads", json={}, headers=headers).json()["thread_id"]
        run = client.post(f"/threads/{thread_id}/runs", json=GO, headers=headers).json()
        joined = client.get(f"/threads/{thread_id}/runs/{run['run_id']}/join", headers=headers)
    assert "__interrupt__" in joined.json(), joined.text
    return Paused(server, thread_id)


@asynccontextmanager
async def client_for(server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


def assert_error(answer: httpx.Response, status: int, code: str | None = None) -> str:
    """Assert the error shape and status; return the message."""
    assert "Traceback" not in answer.text and 'File "' not in answer.text, answer.text
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error", "message"}, body
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["error"] == code
    return str(body["message"])


async def _still_paused(client: httpx.AsyncClient, paused: Paused) -> None:
    """A refused request wrote nothing: the thread waits on its one run's interrupt."""
    headers = paused.server.headers("alice")
    thread = await client.get(f"/threads/{paused.thread_id}", headers=headers)
    assert thread.json()["status"] == "interrupted"
    runs = await client.get(f"/threads/{paused.thread_id}/runs", headers=headers)
    assert len(runs.json()) == 1


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/threads", b"{not json"),
        ("/threads/search", b'{"limit": 10,}'),
        ("/threads/{tid}/runs", b'{"assistant_id": "agent", "input": '),
        ("/assistants/search", b"\xff\xfe"),
    ],
)
async def test_malformed_json_body(paused: Paused, path: str, content: bytes) -> None:
    async with client_for(paused.server) as client:
        answer = await client.post(
            path.format(tid=paused.thread_id),
            content=content,
            headers={**paused.server.headers("alice"), "content-type": "application/json"},
        )
    message = assert_error(answer, 422, "invalid_request")
    # Says what is wrong, not "1: JSON decode error" (a character position as a field).
    assert message.startswith("the body is not valid JSON"), message


@pytest.mark.parametrize(
    ("method", "path", "body", "named"),
    [
        ("POST", "/threads/search", {"limit": "lots"}, "limit"),
        ("POST", "/threads/search", {"status": "sleeping"}, "status"),
        ("POST", "/threads", {"if_exists": "sometimes"}, "if_exists"),
        ("POST", "/threads", {"metadata": ["not", "an", "object"]}, "metadata"),
        ("POST", "/threads/{tid}/runs", {"input": {}}, "assistant_id"),
        ("POST", "/threads/{tid}/runs", {**GO, "stream_mode": "telepathy"}, "stream_mode"),
        ("POST", "/threads/{tid}/runs", {**GO, "multitask_strategy": "yolo"}, "multitask"),
        ("GET", "/threads/{tid}/runs?limit=0", None, "limit"),
        ("POST", "/threads/{tid}/runs/none/cancel?action=explode", None, "action"),
    ],
)
async def test_invalid_fields_are_named(
    paused: Paused, method: str, path: str, body: Any, named: str
) -> None:
    async with client_for(paused.server) as client:
        answer = await client.request(
            method,
            path.format(tid=paused.thread_id),
            json=body,
            headers=paused.server.headers("alice"),
        )
        message = assert_error(answer, 422, "invalid_request")
        assert named in message
        await _still_paused(client, paused)


@pytest.mark.parametrize(
    ("method", "path", "body", "named"),
    [
        ("POST", "/threads/{tid}/runs", {**GO, "assistant_id": "no-such-assistant"}, None),
        ("POST", "/runs/wait", {**GO, "assistant_id": "no-such-assistant"}, None),
        ("POST", "/threads/{tid}/runs/stream", {**GO, "assistant_id": "no-such-assistant"}, None),
        ("GET", "/assistants/no-such-assistant", None, None),
        ("GET", "/threads/no-such-thread", None, "no-such-thread"),
        ("POST", "/threads/no-such-thread/runs", GO, "no-such-thread"),
        ("GET", "/threads/{tid}/runs/no-such-run", None, "no-such-run"),
    ],
)
async def test_unknown_resources_are_404(
    paused: Paused, method: str, path: str, body: Any, named: str | None
) -> None:
    async with client_for(paused.server) as client:
        answer = await client.request(
            method,
            path.format(tid=paused.thread_id),
            json=body,
            headers=paused.server.headers("alice"),
        )
        message = assert_error(answer, 404, "not_found")
        assert (named or "no-such-assistant") in message
        await _still_paused(client, paused)


@pytest.mark.parametrize(
    ("resume", "named"),
    [
        (
            {"decisions": [{"type": "approve"}, {"type": "approve"}]},
            "1 action(s) await a decision; got 2",
        ),
        ({"decisions": []}, "1 action(s) await a decision; got 0"),
        ({"decisions": [{"kind": "approve"}]}, "must be an object with a 'type'"),
        ({"decisions": [{"type": "maybe"}]}, "unknown type 'maybe'"),
        ({"decisions": [{"type": "edit"}]}, "edit needs edited_action"),
        (
            {"decisions": [{"type": "edit", "edited_action": {"name": "notes_delete"}}]},
            "edited_action.args must be an object",
        ),
        ({"decisions": [{"type": "reject", "message": 7}]}, "the message must be a string"),
        # An edit the gate would refuse is refused here: the interrupt is not used up.
        (
            {"decisions": [{"type": "edit", "edited_action": {"args": {"note_id": "abc"}}}]},
            "arguments for 'notes_delete' are invalid: note_id",
        ),
        (
            {"decisions": [{"type": "edit", "edited_action": {"args": {"title": "x"}}}]},
            "arguments for 'notes_delete' are invalid",
        ),
        (
            {
                "decisions": [
                    {"type": "edit", "edited_action": {"name": "notes_create", "args": {}}}
                ]
            },
            "an edit may change the arguments of 'notes_delete', not the tool",
        ),
        ("yes", '{"decisions"'),
        ({"not-an-interrupt-id": APPROVE}, '{"decisions"'),
    ],
)
async def test_resume_with_malformed_decisions(paused: Paused, resume: Any, named: str) -> None:
    body = {"assistant_id": "agent", "input": {}, "command": {"resume": resume}}
    async with client_for(paused.server) as client:
        answer = await client.post(
            f"/threads/{paused.thread_id}/runs", json=body, headers=paused.server.headers("alice")
        )
        message = assert_error(answer, 422, "invalid_request")
        assert named in message
        await _still_paused(client, paused)


async def test_input_and_resume_together_are_refused(paused: Paused) -> None:
    body = {**GO, "command": {"resume": APPROVE}}
    async with client_for(paused.server) as client:
        answer = await client.post(
            f"/threads/{paused.thread_id}/runs", json=body, headers=paused.server.headers("alice")
        )
        assert "either new input or a resume command" in assert_error(answer, 422)
        await _still_paused(client, paused)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (GO, "waiting for a decision"),
        ({"assistant_id": "agent"}, "waiting for a decision"),
    ],
    ids=["new input", "continue"],
)
async def test_new_input_while_an_interrupt_is_pending_is_409(
    paused: Paused, body: dict[str, Any], named: str
) -> None:
    async with client_for(paused.server) as client:
        answer = await client.post(
            f"/threads/{paused.thread_id}/runs", json=body, headers=paused.server.headers("alice")
        )
        assert named in assert_error(answer, 409, "conflict")
        await _still_paused(client, paused)


async def test_resume_without_a_pending_interrupt_is_409(server: ApiServer) -> None:
    headers = server.headers("alice")
    async with client_for(server) as client:
        thread_id = (await client.post("/threads", json={}, headers=headers)).json()["thread_id"]
        resume = {"assistant_id": "agent", "input": {}, "command": {"resume": APPROVE}}
        answer = await client.post(f"/threads/{thread_id}/runs", json=resume, headers=headers)
    assert "no pending interrupt" in assert_error(answer, 409, "conflict")


@asynccontextmanager
async def run_in_flight(
    client: httpx.AsyncClient, server: ApiServer
) -> AsyncIterator[tuple[str, str]]:
    """A fresh thread of alice's with a slow run executing; joined on exit."""
    headers = server.headers("alice")
    thread_id = (await client.post("/threads", json={}, headers=headers)).json()["thread_id"]
    run_id = (await client.post(f"/threads/{thread_id}/runs", json=SLOW, headers=headers)).json()[
        "run_id"
    ]
    try:
        yield thread_id, run_id
    finally:
        joined = await client.get(f"/threads/{thread_id}/runs/{run_id}/join", headers=headers)
        assert joined.json()["messages"][-1]["content"] == "slow reply"


async def test_reject_strategy_while_a_run_is_in_flight_is_409(server: ApiServer) -> None:
    headers = server.headers("alice")
    async with client_for(server) as client:
        async with run_in_flight(client, server) as (thread_id, run_id):
            refused = await client.post(
                f"/threads/{thread_id}/runs",
                json={**SLOW, "multitask_strategy": "reject"},
                headers=headers,
            )
            message = assert_error(refused, 409, "conflict")
            assert run_id in message and "in flight" in message
            busy = await client.delete(f"/threads/{thread_id}/runs/{run_id}", headers=headers)
            assert "cancel it first" in assert_error(busy, 409, "conflict")
            status = await client.get(f"/threads/{thread_id}/runs/{run_id}", headers=headers)
            assert status.json()["status"] in ("pending", "running")
        runs = await client.get(f"/threads/{thread_id}/runs", headers=headers)
    assert [(run["run_id"], run["status"]) for run in runs.json()] == [(run_id, "success")]


async def test_thread_is_busy_and_refuses_state_updates_while_a_run_is_in_flight(
    server: ApiServer,
) -> None:
    headers = server.headers("alice")
    async with client_for(server) as client:
        async with run_in_flight(client, server) as (thread_id, _run_id):
            thread = await client.get(f"/threads/{thread_id}", headers=headers)
            update = await client.post(
                f"/threads/{thread_id}/state",
                json={"values": {"messages": []}},
                headers=headers,
            )
    assert thread.json()["status"] == "busy"
    assert "busy" in assert_error(update, 409, "conflict")


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", "/api/v1/no-such-route", 404),
        ("POST", "/api/v1/threads/x/y/z", 404),
        ("GET", "/no-such-route", 404),
        ("DELETE", "/api/v1/ok", 405),
    ],
)
async def test_unknown_routes_answer_json(
    server: ApiServer, method: str, url: str, status: int
) -> None:
    origin = server.base_url.removesuffix("/api/v1")
    async with httpx.AsyncClient(base_url=origin) as client:
        answer = await client.request(method, url, headers=server.headers("alice"))
    assert_error(answer, status, "not_found" if status == 404 else "method_not_allowed")


async def test_missing_scope_is_403(server: ApiServer) -> None:
    async with client_for(server) as client:
        answer = await client.post(
            "/assistants", json={"graph_id": "agent"}, headers=server.headers("alice")
        )
    assert "keys:manage" in assert_error(answer, 403, "forbidden")


async def test_oversized_body_is_413(server: ApiServer) -> None:
    filler = "x" * (20 * 1024 * 1024)
    async with client_for(server) as client:
        answer = await client.post(
            "/threads/search",
            json={"metadata": {"filler": filler}},
            headers=server.headers("alice"),
        )
    assert_error(answer, 413, "payload_too_large")


async def _settle(server: ApiServer) -> None:
    """Wait until the server has logged the traceback of a 500 it already answered: its
    loop thread logs after sending the response, and CPython 3.11 formats tracebacks with
    ``ast.parse``, which races pytest's own ``ast.parse`` in this thread (SystemError:
    AST constructor recursion depth mismatch). The next answer (on a new connection: the
    server closes the one that failed) comes after the logging."""
    async with client_for(server) as client:
        assert (await client.get("/ok")).status_code == 200


@pytest.mark.parametrize("content", [b"{broken", b"[1, 2]", b'"text"'])
async def test_bulk_cancel_with_a_bad_body_leaks_nothing(server: ApiServer, content: bytes) -> None:
    async with client_for(server) as client:
        answer = await client.post(
            "/runs/cancel",
            content=content,
            headers={**server.headers("alice"), "content-type": "application/json"},
        )
    await _settle(server)
    assert answer.status_code >= 400
    assert_error(answer, answer.status_code)


@pytest.mark.parametrize("content", [b"{broken", b"[1, 2]"])
async def test_bulk_cancel_with_a_bad_body_is_422(server: ApiServer, content: bytes) -> None:
    async with client_for(server) as client:
        answer = await client.post(
            "/runs/cancel",
            content=content,
            headers={**server.headers("alice"), "content-type": "application/json"},
        )
    await _settle(server)
    assert_error(answer, 422, "invalid_request")
