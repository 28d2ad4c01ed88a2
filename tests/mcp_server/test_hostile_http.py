"""Hostile raw HTTP against the Streamable HTTP endpoint (uvicorn on 127.0.0.1): each
refusal has the status the transport spec gives and a JSON-RPC body a person can act
on, refusals name no session, and one keep-alive connection keeps being served."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.mcp_server.conftest import INIT, JSON_HEADERS, McpServer


@pytest.fixture
def raw(mcp_http: Callable[..., McpServer]) -> Iterator[_Raw]:
    server = mcp_http(api=False)
    with httpx.Client(timeout=30) as http:
        yield _Raw(server, http)


class _Raw:
    def __init__(self, server: McpServer, http: httpx.Client) -> None:
        self.url = server.url
        self.http = http  # one keep-alive connection for the whole test
        self.headers = {**JSON_HEADERS, "Authorization": f"Bearer {server.keys['alice']}"}

    def post(self, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
        return self.http.post(self.url, content=content, headers={**self.headers, **headers})

    def open_session(self) -> dict[str, str]:
        opened = self.post(INIT)
        assert opened.status_code == 200
        session = {
            "Mcp-Session-Id": opened.headers["mcp-session-id"],
            "Mcp-Protocol-Version": "2025-11-25",
        }
        done = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, **session)
        assert done.status_code == 202
        return session

    def echo(self, session: dict[str, str], text: str) -> None:
        call = {
            "jsonrpc": "2.0",
            "id": 99,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}},
        }
        answer = self.post(call, **session)
        assert answer.status_code == 200 and f'"structuredContent":{{"text":"{text}"}}' in (
            answer.text
        )


def _error(response: httpx.Response, status: int, code: int, *phrases: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["jsonrpc"] == "2.0" and body["error"]["code"] == code, body
    for phrase in phrases:
        assert phrase in body["error"]["message"], body
    assert "mcp-session-id" not in response.headers, "a refusal opens no session"
    return body


def test_deep_nesting_is_a_parse_error_and_the_connection_stays_usable(raw: _Raw) -> None:
    """Once a 500 from a RecursionError in our pre-check, which also reset the client's
    keep-alive connection (its next request failed with ECONNRESET)."""
    session = raw.open_session()
    for depth in (300, 5000, 100_000):
        body = b'{"jsonrpc": "2.0", "id": 7, "method": "ping", "params": {"x": '
        body += b"[" * depth + b"]" * depth + b"}}"
        _error(raw.post(body, **session), 400, -32700, "nested too deeply")
        raw.echo(session, f"after {depth}")


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_by_its_content_type_is_415(
    raw: _Raw, content_type: str | None
) -> None:
    headers = dict(raw.headers)
    headers.pop("Content-Type")
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = raw.http.post(raw.url, content=b'{"jsonrpc": "2.0"}', headers=headers)
    _error(response, 415, -32600, "Content-Type: application/json")
    assert raw.post(INIT).status_code == 200


def test_an_unsupported_protocol_version_header_is_400_naming_the_supported_ones(
    raw: _Raw,
) -> None:
    session = raw.open_session()
    listing = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    for version in ("1999-01-01", "not-a-version"):
        bad = {**session, "Mcp-Protocol-Version": version}
        body = _error(raw.post(listing, **bad), 400, -32600, "unsupported Mcp-Protocol-Version")
        assert "2025-11-25" in body["error"]["message"] and body["id"] == 3
        without_session = raw.http.get(
            raw.url, headers={**raw.headers, "Mcp-Protocol-Version": version}
        )
        _error(without_session, 400, -32600, "unsupported Mcp-Protocol-Version")
    raw.echo(session, "still")


def test_requests_without_a_session_say_how_to_open_one(raw: _Raw) -> None:
    listing = _error(
        raw.post({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}),
        400,
        -32600,
        "POST initialize first",
        "Mcp-Session-Id",
    )
    assert listing["id"] == 5
    _error(
        raw.post(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
        ),
        400,
        -32600,
        "initialize",
    )
    # Refused by the SDK itself (406): the session it opened for the request is not named.
    _error(raw.post(INIT, Accept="application/json"), 406, -32600, "Not Acceptable")


@pytest.mark.parametrize(
    ("body", "code", "phrase"),
    [
        (b"{not json", -32700, "not valid JSON"),
        (b"", -32700, "not valid JSON"),
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', -32600, "batches"),
        (b'{"jsonrpc": "2.0", "id": null, "method": "ping"}', -32600, '"id" must be'),
    ],
)
def test_malformed_bodies_are_refused_without_opening_a_session(
    raw: _Raw, body: bytes, code: int, phrase: str
) -> None:
    _error(raw.post(body), 400, code, phrase)
    assert raw.post(INIT).status_code == 200


def test_invalid_params_name_the_field(raw: _Raw) -> None:
    session = raw.open_session()
    calls = [
        ({"name": "echo", "arguments": "text"}, "arguments: Input should be a valid dictionary"),
        ({"arguments": {}}, "name: Field required"),
    ]
    for params, phrase in calls:
        message = {"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": params}
        answer = raw.post(message, **session)
        assert answer.status_code == 200
        assert '"code":-32602' in answer.text and phrase in answer.text, answer.text
        assert "Invalid params for tools/call" in answer.text
    raw.echo(session, "still")


def test_a_deleted_session_is_gone_for_every_method(raw: _Raw) -> None:
    session = raw.open_session()
    deleted = raw.http.delete(raw.url, headers={**raw.headers, **session})
    assert deleted.status_code == 200
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    gone = [
        raw.post(listing, **session),
        raw.http.get(raw.url, headers={**raw.headers, **session}),
        raw.http.delete(raw.url, headers={**raw.headers, **session}),
        raw.post(listing, **{**session, "Mcp-Session-Id": "never-issued"}),
    ]
    for response in gone:
        _error(response, 404, -32600, "Session not found", "POSTing initialize without")
    assert raw.http.put(raw.url, headers=raw.headers).status_code == 405
    raw.echo(raw.open_session(), "new session")
