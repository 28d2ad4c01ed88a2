"""Hostile JSON-RPC against our MCP server over Streamable HTTP and stdio: malformed
messages get the JSON-RPC error the spec names, tool failures are ``isError`` results
(MCP-CONTRACT.md), and the server keeps serving after every one of them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, cast

import anyio
import httpx
import pytest

from tests.mcp_server.conftest import INIT, JSON_HEADERS, McpServer, StdioSetup

pytestmark = pytest.mark.security


# (raw line, expected JSON-RPC error code); the id is null when it cannot be read.
MALFORMED: list[tuple[bytes, int]] = [
    (b"{not json", -32700),
    (b'{"jsonrpc": "2.0", "id": 1, "method": ', -32700),
    (b"\xff\xfe garbage", -32700),
    (b"[]", -32600),
    (b'"just a string"', -32600),
    (b"42", -32600),
    (b'{"jsonrpc": "1.0", "id": 7, "method": "tools/list"}', -32600),
    (b'{"jsonrpc": "2.0", "id": 7, "method": 5}', -32600),
    (b'{"jsonrpc": "2.0", "id": 7}', -32600),
    (b'{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": "x"}', -32600),
]
# Requests whose id is no string or integer: the SDK alone would read them as
# notifications and never answer; both transports answer -32600 with id null.
BAD_IDS: list[bytes] = [
    b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"}',
    b'{"jsonrpc": "2.0", "id": [1], "method": "tools/list"}',
    b'{"jsonrpc": "2.0", "id": true, "method": "tools/list"}',
    b'{"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}',
]


def _call(request_id: int, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


# Well-formed requests with bad content: (message, expected error code or "isError").
BAD_REQUESTS: list[tuple[dict[str, Any], int | str]] = [
    ({"jsonrpc": "2.0", "id": 20, "method": "no/such/method"}, -32601),
    ({"jsonrpc": "2.0", "id": 21, "method": "resources/delete_everything"}, -32601),
    (_call(22, 5, {}), -32602),
    (_call(23, "notes_search", [1, 2]), -32602),
    ({"jsonrpc": "2.0", "id": 24, "method": "tools/call", "params": {}}, -32602),
    ({"jsonrpc": "2.0", "id": 25, "method": "tools/list", "params": {"cursor": 5}}, -32602),
    (_call(26, "no_such_tool", {}), "unknown_tool"),
    (_call(27, "../../etc/passwd", {}), "unknown_tool"),
    (_call(28, "notes_search", {"query": 12, "limit": "many"}), "invalid_arguments"),
    (_call(29, "notes_search", {"query": "x", "extra": True}), "invalid_arguments"),
    (_call(30, "notes_create", {"title": "x" * 5000, "body": "y"}), "invalid_arguments"),
    (_call(31, "notes_create", {"title": "t", "body": "y" * 600_000}), "invalid_arguments"),
    (_call(32, "notes_search", {"query": {"$gt": ""}}), "invalid_arguments"),
    (_call(33, "notes_search", {"query": "\u0000\u202e\U0001f600 ' OR 1=1 --"}), "ok"),
]


def _check_error(answer: dict[str, Any], code: int) -> None:
    assert "result" not in answer, answer
    assert answer["jsonrpc"] == "2.0"
    assert answer["error"]["code"] == code, answer
    assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]


def _check_bad_request(answer: dict[str, Any], expected: int | str) -> None:
    if isinstance(expected, int):
        _check_error(answer, expected)
        return
    result = answer["result"]
    text = "\n".join(block.get("text", "") for block in result["content"])
    if expected == "ok":
        assert result["isError"] is False, text
    else:
        assert result["isError"] is True, text
        assert expected in text


def _sse_messages(response: httpx.Response) -> list[dict[str, Any]]:
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()]
    return [
        json.loads(line[len("data:") :])
        for line in response.text.splitlines()
        if line.startswith("data:") and line[len("data:") :].strip()
    ]


class _HttpSession:
    def __init__(self, server: McpServer, who: str) -> None:
        self.url = server.url
        self.headers = {**JSON_HEADERS, "Authorization": f"Bearer {server.keys[who]}"}
        opened = httpx.post(self.url, json=INIT, headers=self.headers, timeout=30)
        assert opened.status_code == 200
        self.headers["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
        self.headers["Mcp-Protocol-Version"] = "2025-11-25"
        done = httpx.post(
            self.url,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=self.headers,
            timeout=30,
        )
        assert done.status_code == 202

    def post(self, content: bytes) -> httpx.Response:
        return httpx.post(self.url, content=content, headers=self.headers, timeout=30)

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        response = self.post(json.dumps(message).encode())
        answers = [m for m in _sse_messages(response) if m.get("id") == message["id"]]
        assert len(answers) == 1, response.text
        return answers[0]

    def still_serves(self, request_id: int) -> None:
        answer = self.ask(_call(request_id, "echo", {"text": f"alive {request_id}"}))
        assert answer["result"]["isError"] is False
        assert answer["result"]["structuredContent"] == {"text": f"alive {request_id}"}


@pytest.fixture
def http_session(mcp_http: Callable[..., McpServer]) -> _HttpSession:
    return _HttpSession(mcp_http(api=False), "alice")


def test_http_malformed_messages_get_the_spec_error(http_session: _HttpSession) -> None:
    for index, (raw, code) in enumerate([*MALFORMED, *((bad, -32600) for bad in BAD_IDS)]):
        response = http_session.post(raw)
        assert response.status_code == 400, raw
        _check_error(response.json(), code)
        if raw in BAD_IDS:
            assert response.json()["id"] is None, raw
        http_session.still_serves(100 + index)


def test_http_bad_requests_get_errors_or_tool_errors(http_session: _HttpSession) -> None:
    for index, (message, expected) in enumerate(BAD_REQUESTS):
        _check_bad_request(http_session.ask(message), expected)
        http_session.still_serves(1000 + index)


def test_http_body_over_the_limit_is_413_and_serving_continues(
    http_session: _HttpSession,
) -> None:
    huge = json.dumps(_call(40, "echo", {"text": "z" * (2 * 1024 * 1024)})).encode()
    response = http_session.post(huge)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    http_session.still_serves(41)


def test_http_stateless_generation_checks_the_envelope(mcp_http: Callable[..., McpServer]) -> None:
    server = mcp_http(api=False)
    headers = {
        **JSON_HEADERS,
        "Authorization": f"Bearer {server.keys['alice']}",
        "Mcp-Protocol-Version": "2026-07-28",
    }
    no_envelope = httpx.post(server.url, json=_call(50, "echo", {"text": "x"}), headers=headers)
    assert no_envelope.status_code == 400
    _check_error(no_envelope.json(), -32602)
    not_object = httpx.post(server.url, content=b"[1, 2]", headers=headers)
    assert not_object.status_code == 400
    _check_error(not_object.json(), -32600)


async def test_http_abrupt_disconnects_mid_call_leave_the_server_serving(
    mcp_http: Callable[..., McpServer],
) -> None:
    """Clients that hang up in the middle of a streamed tool call, many times over."""
    server = mcp_http(api=False)
    session = _HttpSession(server, "alice")
    async with httpx.AsyncClient(timeout=30) as client:
        for index in range(10):
            message = _call(60 + index, "slow_count", {"steps": 20, "step_seconds": 0.05})
            message["params"]["_meta"] = {"progressToken": f"p{index}"}
            async with client.stream(
                "POST", session.url, json=message, headers=session.headers
            ) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("data:") and "progress" in line:
                        break  # leave mid-call, without reading the rest
    session.still_serves(90)
    async with server.client("bob") as bob:
        echoed = await bob.call_tool("echo", {"text": "other caller"})
    assert echoed.structured_content == {"text": "other caller"}


class _Stdio:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin, self.stdout = process.stdin, process.stdout

    async def send(self, raw: bytes) -> None:
        self.stdin.write(raw + b"\n")
        await self.stdin.drain()

    async def next_message(self) -> dict[str, Any]:
        line = await self.stdout.readline()
        assert line, "the server closed stdout"
        message: dict[str, Any] = json.loads(line)  # every stdout line must be JSON-RPC
        return message

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(json.dumps(message).encode())
        while True:
            answer = await self.next_message()
            if answer.get("id") == message["id"]:
                return answer

    async def open(self) -> None:
        initialized = await self.ask(INIT)
        assert initialized["result"]["serverInfo"]["name"] == "relaygraph"
        await self.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')

    async def still_serves(self, request_id: int) -> None:
        answer = await self.ask(_call(request_id, "notes_search", {"query": ""}))
        assert answer["result"]["isError"] is False


async def test_stdio_lines_with_a_bad_id_become_an_invalid_request_answer() -> None:
    """The stdio line filter (fast, in-process): requests with an id of the wrong type
    are swapped for a line the SDK rejects and answered -32600 (id null) in order; every
    other line passes through untouched."""
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    from mcp_server.stdio import AnsweringReadStream, IdCheckingLines

    passing = [
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}\n',
        '{"jsonrpc": "2.0", "id": "abc", "method": "tools/list"}\n',
        '{"jsonrpc": "2.0", "id": null, "result": {}}\n',
        '{"jsonrpc": "2.0", "method": "notifications/initialized"}\n',
        "{not json\n",
    ]
    bad = [raw.decode() + "\n" for raw in BAD_IDS]

    async def source() -> Any:
        for line in [*bad[:2], *passing, *bad[2:]]:
            yield line

    lines = IdCheckingLines(source())
    seen = [line async for line in lines]
    assert seen == ["null\n", "null\n", *passing, "null\n", "null\n"]
    problem = '"id" must be a string or an integer'
    assert list(lines.verdicts) == [problem] * 2 + [None] * len(passing) + [problem] * 2

    incoming_send, incoming = anyio.create_memory_object_stream[Any](4)
    outgoing, answers = anyio.create_memory_object_stream[Any](4)
    reader = AnsweringReadStream(incoming, outgoing, lines.verdicts)
    ok = SessionMessage(types.jsonrpc_message_adapter.validate_json(passing[0], by_name=False))
    for item in (ValueError("rejected line"), ok):
        await incoming_send.send(item)
    with anyio.fail_after(5):
        first = await reader.receive()
    assert first is ok  # the rejected line was answered, not passed on
    answer = answers.receive_nowait().message
    assert (answer.id, answer.error.code) == (None, -32600)
    assert answer.error.message == 'Invalid Request: "id" must be a string or an integer'
    for stream in (incoming_send, incoming, outgoing, answers):
        await stream.aclose()


async def test_stdio_answers_pair_with_their_own_lines() -> None:
    """Malformed lines and bad-id lines in any mix, read by the SDK's own stdio reader:
    each answer carries the error of its own line, in line order (a parse error before a
    bad id must not take the bad id's reason), and good requests pass through between."""
    from mcp.server.stdio import stdio_server

    from mcp_server.stdio import AnsweringReadStream, IdCheckingLines

    good = [json.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/list"}) for n in (1, 2)]
    sent = ["{not json", BAD_IDS[0].decode(), good[0], "[]", BAD_IDS[3].decode(), "{", good[1]]
    id_problem = 'Invalid Request: "id" must be a string or an integer'
    expected = [
        (-32700, "Parse error: the line is not JSON"),
        (-32600, id_problem),
        (-32600, "Invalid Request: not a JSON-RPC 2.0 request, notification or response"),
        (-32600, id_problem),
        (-32700, "Parse error: the line is not JSON"),
    ]

    async def source() -> Any:
        for line in sent:
            yield line + "\n"

    class Stdout:
        def __init__(self) -> None:
            self.answers: list[dict[str, Any]] = []

        async def write(self, text: str) -> None:
            self.answers.append(json.loads(text))

        async def flush(self) -> None:
            pass

    lines, stdout = IdCheckingLines(source()), Stdout()
    with anyio.fail_after(10):
        async with stdio_server(stdin=cast(Any, lines), stdout=cast(Any, stdout)) as streams:
            reader = AnsweringReadStream(*streams, lines.verdicts)
            received = [await reader.receive() for _ in good]
            with pytest.raises(anyio.EndOfStream):
                await reader.receive()
            await streams[1].aclose()
    assert [item.message.id for item in received] == [1, 2]  # type: ignore[union-attr]
    answers = [(a["error"]["code"], a["error"]["message"]) for a in stdout.answers]
    assert answers == expected
    assert all(answer["id"] is None for answer in stdout.answers)
    assert not lines.verdicts


@pytest.mark.slow
async def test_stdio_fuzz_answers_everything_and_keeps_serving(stdio_setup: StdioSetup) -> None:
    process = await stdio_setup.spawn(stdio_setup.keys["alice"])
    stdio = _Stdio(process)
    try:
        with anyio.fail_after(120):
            await stdio.open()
            for raw, code in MALFORMED:
                await stdio.send(raw)
                answer = await stdio.next_message()
                assert answer["id"] is None, (raw, answer)
                _check_error(answer, code)
            for raw in BAD_IDS:
                await stdio.send(raw)
                answer = await stdio.next_message()
                assert answer["id"] is None, (raw, answer)
                _check_error(answer, -32600)
                assert '"id" must be' in answer["error"]["message"], answer
            # Sent back to back: each answer is its own line's, in order.
            for raw in (
                b"{not json",
                BAD_IDS[0],
                json.dumps(_call(499, "notes_search", {"query": ""})).encode(),
            ):
                await stdio.send(raw)
            answers = [await stdio.next_message() for _ in range(3)]
            _check_error(answers[0], -32700)
            _check_error(answers[1], -32600)
            assert '"id" must be' in answers[1]["error"]["message"], answers
            assert answers[2]["id"] == 499 and answers[2]["result"]["isError"] is False, answers
            await stdio.still_serves(500)
            for message, expected in BAD_REQUESTS:
                _check_bad_request(await stdio.ask(message), expected)
            await stdio.still_serves(501)
    finally:
        stdio.stdin.close()
        with anyio.fail_after(30):
            await process.wait()
    assert process.returncode == 0


@pytest.mark.slow
async def test_stdio_client_vanishing_mid_call(stdio_setup: StdioSetup) -> None:
    """The client closes stdin (and later dies) in the middle of a tool call: the server
    exits cleanly, and the next server on the same store serves."""
    process = await stdio_setup.spawn(stdio_setup.keys["alice"])
    stdio = _Stdio(process)
    with anyio.fail_after(120):
        await stdio.open()
        await stdio.send(json.dumps(_call(2, "notes_search", {"query": "x" * 100_000})).encode())
        stdio.stdin.close()
        await process.wait()
        stderr = await process.stderr.read() if process.stderr else b""
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert b"Traceback" not in stderr, stderr.decode()[-2000:]

    again = _Stdio(await stdio_setup.spawn(stdio_setup.keys["alice"]))
    try:
        with anyio.fail_after(120):
            await again.open()
            await again.still_serves(3)
    finally:
        again.stdin.close()
        with anyio.fail_after(30):
            await again.process.wait()
