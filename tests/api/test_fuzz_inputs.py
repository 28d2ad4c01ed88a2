"""Hostile and unusual inputs found by fuzzing the API (schemathesis and hand probes): each
gets a structured ``{"error", "message"}`` answer with a 4xx status, never a 500, and
leaves nothing behind that breaks later reads (a poisoned thread, store item or run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.errors import error_response
from tests.api.conftest import ApiServer, running_server

HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("fuzz-inputs")
    with running_server(
        root / "data",
        workers=2,
        model="scripted:providers.scripted:demo_turn",
        rate_limit_per_key="100000/minute",
        rate_limit_per_tenant="100000/minute",
    ) as running:
        yield running


def _client(server: ApiServer, who: str = "ada") -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers=server.headers(who), timeout=60)


def _raw(server: ApiServer, method: str, path: str, body: bytes) -> httpx.Response:
    """Send ``body`` as it is: JSON escapes such as a lone ``\\ud800`` reach the server."""
    with _client(server) as client:
        return client.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )


def _refused(response: httpx.Response, status: int = 422, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}, body
    if code is not None:
        assert body["error"] == code, body
    assert "Traceback" not in body["message"]
    return str(body["message"])


def _ran_thread(server: ApiServer) -> str:
    """A thread that has run once (so it has a graph and checkpoints)."""
    with _client(server) as client:
        thread_id = client.post("/threads", json={}).json()["thread_id"]
        answer = client.post(
            f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": HI}
        )
        assert answer.status_code == 200, answer.text
        return str(thread_id)


def _readable(server: ApiServer, thread_id: str) -> None:
    with _client(server) as client:
        assert client.get(f"/threads/{thread_id}").status_code == 200
        assert client.get(f"/threads/{thread_id}/state").status_code == 200
        assert client.post("/threads/search", json={"limit": 1000}).status_code == 200
        assert client.get("/export").status_code == 200


# --- text that is not valid Unicode, or holds NUL ------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        rb'{"metadata": {"a": "\ud800"}}',  # lone high surrogate as a value
        rb'{"metadata": {"\udc00": 1}}',  # lone low surrogate as a key
        rb'{"metadata": {"a": ["x", {"b": "\udfff"}]}}',  # deep inside
        rb'{"metadata": {"a": "nul \u0000 inside"}}',
        rb'{"thread_id": "a\u0000b"}',
    ],
)
def test_thread_with_invalid_text_is_refused_and_not_created(
    server: ApiServer, body: bytes
) -> None:
    # Was: 200 and a stored thread whose metadata no later read could encode (500 on every
    # /threads/search and /export of the tenant from then on), or a NUL id PostgreSQL refuses.
    with _client(server) as client:
        before = client.post("/threads/count", json={}).json()
    message = _refused(_raw(server, "POST", "/threads", body), 422, "invalid_request")
    assert "surrogate" in message or "NUL" in message
    with _client(server) as client:
        assert client.post("/threads/count", json={}).json() == before
        assert client.post("/threads/search", json={"limit": 1000}).status_code == 200


def test_invalid_text_in_store_run_and_assistant_bodies_is_refused(server: ApiServer) -> None:
    # Was: 204 for the store item (then 500 on reading it), 500 for the run and assistant.
    item = rb'{"namespace": ["fuzz"], "key": "k", "value": {"\ud800": "\udc00"}}'
    _refused(_raw(server, "PUT", "/store/items", item))
    with _client(server) as client:
        got = client.get("/store/items", params={"namespace": "fuzz", "key": "k"})
        assert got.status_code == 404
    run = rb'{"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": '
    run += rb'"\ud800"}]}}'
    _refused(_raw(server, "POST", "/runs/wait", run))
    _refused(_raw(server, "POST", "/assistants", rb'{"graph_id": "agent", "name": "\ud800"}'))


def test_an_error_message_quoting_invalid_text_can_still_be_sent() -> None:
    response = error_response(404, "not_found", "there is no thread '\ud800'")
    assert response.status_code == 404
    assert b"\\\\ud800" in response.body  # escaped, not a UnicodeEncodeError


# --- run inputs and state updates that would poison the thread -----------------------------


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "nope", "content": "x"}],
        [5],
        [{}],
        [{"role": "tool", "content": "x"}],  # a tool message without tool_call_id
    ],
)
def test_run_input_with_a_malformed_message_is_refused_before_it_is_stored(
    server: ApiServer, messages: list[Any]
) -> None:
    # Was: 200 with a failed run whose input stayed in the checkpoint: GET /threads/{id},
    # its state and /threads/search answered 500 from then on.
    thread_id = _ran_thread(server)
    with _client(server) as client:
        runs_before = client.get(f"/threads/{thread_id}/runs").json()
        answer = client.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "agent", "input": {"messages": messages}},
        )
        message = _refused(answer, 422, "invalid_message")
        assert "input.messages[0]" in message
        assert client.get(f"/threads/{thread_id}/runs").json() == runs_before
    _readable(server, thread_id)


def test_command_update_with_a_malformed_message_is_refused(server: ApiServer) -> None:
    # Was: a failed run that left the thread unreadable (500 on get, state, history).
    thread_id = _ran_thread(server)
    with _client(server) as client:
        answer = client.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "agent", "command": {"update": {"messages": [{"role": "x"}]}}},
        )
    assert "command.update.messages[0]" in _refused(answer, 422, "invalid_message")
    _readable(server, thread_id)


@pytest.mark.parametrize(
    "body",
    [
        {"values": {"messages": 5}},
        {"values": [1, 2]},
        {"values": "x"},
        {"values": {"messages": []}, "as_node": "no_such_node"},
        {"values": {"messages": [{"role": "nope", "content": "x"}]}},
    ],
)
def test_state_update_the_graph_rejects_is_a_422(server: ApiServer, body: dict[str, Any]) -> None:
    # Was: 500 (LangGraph's InvalidUpdateError, TypeError from message coercion).
    thread_id = _ran_thread(server)
    with _client(server) as client:
        answer = client.post(f"/threads/{thread_id}/state", json=body)
    _refused(answer, 422)
    _readable(server, thread_id)


@pytest.mark.parametrize("configurable", [5, [1], "x"])
def test_config_configurable_must_be_an_object(server: ApiServer, configurable: Any) -> None:
    # Was: runs failed outside the graph ("run_lost"), assistants answered 500.
    config = {"configurable": configurable}
    with _client(server) as client:
        run = client.post(
            "/runs/wait", json={"assistant_id": "agent", "input": HI, "config": config}
        )
        assert "configurable" in _refused(run, 422)
        assistant = client.post("/assistants", json={"graph_id": "agent", "config": config})
        assert "configurable" in _refused(assistant, 422)
        fine = client.post(
            "/runs/wait",
            json={"assistant_id": "agent", "input": HI, "config": {"configurable": None}},
        )
        assert fine.status_code == 200 and "__error__" not in fine.json(), fine.text


def test_stateless_run_from_a_checkpoint_is_refused_clearly(server: ApiServer) -> None:
    # Was: 404 "there is no thread None" (a 404 still: no such checkpoint can exist).
    with _client(server) as client:
        answer = client.post(
            "/runs/wait", json={"assistant_id": "agent", "input": HI, "checkpoint_id": "abc"}
        )
    message = _refused(answer, 404, "not_found")
    assert "'abc'" in message and "stateless" in message and "None" not in message


# --- numbers and headers beyond what SQL holds ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/files", {"offset": "9" * 30}),
        ("/console/runs", {"offset": "9" * 30}),
        ("/audit", {"before": "9" * 30}),
        ("/threads/{thread_id}/history", {"limit": "9" * 30}),
        ("/threads/{thread_id}/history", {"limit": "0"}),
        ("/threads/{thread_id}/history", {"limit": "-5"}),
    ],
)
def test_query_integers_out_of_range_are_a_422(
    server: ApiServer, path: str, params: dict[str, str]
) -> None:
    # Was: 500 (OverflowError: Python int too large to convert to SQLite INTEGER); a
    # negative history limit returned everything.
    thread_id = _ran_thread(server) if "{thread_id}" in path else ""
    with _client(server) as client:
        answer = client.get(path.format(thread_id=thread_id), params=params)
    _refused(answer, 422, "invalid_request")


@pytest.mark.parametrize("last_event_id", ["9" * 30, "9" * 5000, "\u00b2", "abc"])
def test_any_last_event_id_rejoins_without_a_server_error(
    server: ApiServer, last_event_id: str
) -> None:
    # Was: 500 for a number over SQL's range or past int()'s 4,300 digits, and for "²"
    # (a digit to str.isdigit, not to int).
    thread_id = _ran_thread(server)
    with _client(server) as client:
        run_id = client.get(f"/threads/{thread_id}/runs").json()[0]["run_id"]
        header = last_event_id.encode("latin-1")  # "²" is the one byte b"\xb2"
        answer = client.get(
            f"/threads/{thread_id}/runs/{run_id}/stream", headers={"Last-Event-ID": header}
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")


# --- schema and handler agree --------------------------------------------------------------


def test_usage_group_by_follows_its_documented_pattern(server: ApiServer) -> None:
    # Was: "" was allowed by the schema but refused by the handler (and "model,," the reverse).
    with _client(server) as client:
        for value in ["", "model,,", "colour"]:
            _refused(client.get("/usage", params={"group_by": value}), 422, "invalid_group_by")
        assert client.get("/usage", params={"group_by": "user, model"}).status_code == 200
        schema = client.get("/openapi.json").json()
    parameters = schema["paths"]["/api/v1/usage"]["get"]["parameters"]
    group_by = next(p for p in parameters if p["name"] == "group_by")
    assert "pattern" in group_by["schema"]


def test_store_namespace_deeper_than_documented_is_refused(server: ApiServer) -> None:
    # Was: the schema said maxItems 20 but 21 labels were stored.
    namespace = [f"l{i}" for i in range(21)]
    with _client(server) as client:
        answer = client.put("/store/items", json={"namespace": namespace, "key": "k", "value": {}})
        _refused(answer, 422, "invalid_request")
        ok = client.put("/store/items", json={"namespace": namespace[:20], "key": "k", "value": {}})
        assert ok.status_code == 204


def test_unreadable_body_answers_in_the_error_shape(server: ApiServer, tmp_path: Path) -> None:
    for body in [b"{bad", b"\xff\xfe", b"[" * 100_000]:
        answer = _raw(server, "POST", "/threads", body)
        assert answer.status_code in (400, 422), answer.text
        assert set(answer.json()) == {"error", "message"}
