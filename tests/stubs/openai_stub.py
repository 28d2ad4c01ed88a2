"""A local OpenAI-compatible chat-completions server for tests.

Replies are scripted: queue them with ``reply(...)`` or ``fail(...)`` and every
``POST /v1/chat/completions`` takes the next one, as JSON or, for ``stream: true``,
as SSE chunks (content in word pieces, tool-call arguments in slices, a usage chunk
when ``stream_options.include_usage`` is set, then ``[DONE]``). Request bodies and
headers are recorded in ``requests`` and ``request_headers``.

    with OpenAIStub() as stub:
        stub.reply(content="hi")
        model = ChatOpenAI(model="m", base_url=stub.base_url, api_key="sk-test")
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.stubs.scripting import Fault, ReplyBehaviour, ScriptedStub, broken_stream, lines

CREATED = 1_700_000_000
DEFAULT_USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
EMBEDDING_DIMENSIONS = 8


def stub_vector(text: str, size: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic, text-dependent vector (not normalised) for embedding stubs."""
    digest = hashlib.sha256(text.encode()).digest() * (size // 32 + 1)
    return [(byte - 127.5) / 127.5 for byte in digest[:size]]


@dataclass(frozen=True)
class ScriptedReply(ReplyBehaviour):
    """A chat completion (or Responses API answer). ``citations`` are served by the
    Responses API only, as ``url_citation`` annotations; with a ``web_search`` tool in the
    request a ``web_search_call`` item (``search_query``) precedes the message."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_USAGE))
    finish_reason: str | None = None
    pieces: tuple[str, ...] = ()
    """How a streamed reply splits ``content`` into chunks (default: word by word)."""


def error_response(status: int, message: str, type_: str, code: str | None = None) -> Response:
    """An error in OpenAI's format: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


class OpenAIStub(ScriptedStub):
    """A chat-completions server on 127.0.0.1 with a free port, run in a background thread.
    Queueing, failures (``fail``), ``reset`` and ``pending``: ``tests.stubs.scripting``."""

    name = "openai stub"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        super().__init__()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "DELETE"]),
            ]
        )

    # --- scripting ------------------------------------------------------------------

    def reply(
        self,
        content: str = "",
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        usage: dict[str, int] | None = None,
        finish_reason: str | None = None,
        delay: float = 0.0,
        fault: Fault | None = None,
        citations: list[dict[str, str]] | None = None,
        search_query: str = "stub search",
        pieces: list[str] | None = None,
    ) -> None:
        """Queue a reply (chat completions or the Responses API, whichever asks next;
        ``citations`` and ``search_query``: see ``ScriptedReply``). ``tool_calls`` items
        are ``{"name", "args"}`` with an optional ``id``
        (or ``{"name", "raw_arguments": str}`` to send arguments verbatim, e.g. broken JSON).

        ``usage`` is ``{"prompt_tokens", "completion_tokens"}`` (``DEFAULT_USAGE`` if omitted).
        """
        if usage is not None:
            usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        self.enqueue(
            ScriptedReply(
                content=content,
                tool_calls=list(tool_calls or []),
                usage=usage or dict(DEFAULT_USAGE),
                finish_reason=finish_reason,
                delay=delay,
                fault=fault,
                citations=list(citations or []),
                search_query=search_query,
                pieces=tuple(pieces or ()),
            )
        )

    def error_response(
        self, status: int, message: str, *, type: str = "server_error", code: str | None = None
    ) -> Response:
        return error_response(status, message, type, code)

    def clear_records(self) -> None:
        self.requests.clear()
        self.request_headers.clear()

    def _record(self, request: Request, body: dict[str, Any]) -> Callable[[], int]:
        def record() -> int:
            self.requests.append(body)
            self.request_headers.append(dict(request.headers))
            return len(self.requests)

        return record

    # --- lifecycle (start, stop, context manager: tests.stubs.server) --------------

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/v1"

    # --- HTTP -----------------------------------------------------------------------

    async def _unknown(self, request: Request) -> Response:
        message = f"openai stub: no route {request.method} {request.url.path}"
        return error_response(404, message, "invalid_request_error", "unknown_url")

    async def _embeddings(self, request: Request) -> Response:
        """Deterministic vectors (``stub_vector``); bodies recorded in ``embedding_requests``."""
        body = await request.json()
        with self._lock:
            self.embedding_requests.append(body)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        size = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        data = [
            {"object": "embedding", "index": i, "embedding": stub_vector(str(text), size)}
            for i, text in enumerate(texts)
        ]
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        return JSONResponse(
            {"object": "list", "data": data, "model": body.get("model", ""), "usage": usage}
        )

    async def _responses(self, request: Request) -> Response:
        """``POST /v1/responses`` (non-streaming): the next scripted reply as a Responses
        API object; bodies are recorded in ``requests`` like chat completions."""
        body = await request.json()
        number, scripted, answered = await self.next_reply(self._record(request, body))
        if answered is not None:
            return answered
        if body.get("stream"):
            return error_response(
                400, "openai stub: streaming Responses are not served", "invalid_request_error"
            )
        return JSONResponse(responses_body(scripted, body, number))

    async def _chat_completions(self, request: Request) -> Response:
        body = await request.json()
        number, scripted, answered = await self.next_reply(self._record(request, body))
        if answered is not None:
            return answered
        completion_id = f"chatcmpl-stub-{number}"
        tool_calls = [
            {
                "id": call.get("id") or f"call_{number}_{position}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": call.get("raw_arguments") or json.dumps(call.get("args", {})),
                },
            }
            for position, call in enumerate(scripted.tool_calls)
        ]
        finish_reason = scripted.finish_reason or ("tool_calls" if tool_calls else "stop")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = stream_chunks(scripted, tool_calls, finish_reason, include_usage=include_usage)
            envelope = envelope_of(completion_id, body)
            if scripted.fault is not None:
                return StreamingResponse(
                    faulty_sse(envelope, chunks, scripted.fault), media_type="text/event-stream"
                )
            return StreamingResponse(sse(envelope, chunks), media_type="text/event-stream")
        message: dict[str, Any] = {
            "role": "assistant",
            "content": scripted.content or (None if tool_calls else ""),
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        if scripted.fault is not None:
            return Response('{"id": "chatcmpl-broken", "choices": [', media_type="application/json")
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": CREATED,
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": scripted.usage,
            }
        )


def stream_chunks(
    scripted: ScriptedReply,
    tool_calls: list[dict[str, Any]],
    finish_reason: str,
    *,
    include_usage: bool,
) -> list[dict[str, Any]]:
    """The chunk bodies (without the envelope) of a streamed reply."""

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [choice({"role": "assistant", "content": ""})]
    pieces = list(scripted.pieces) or re.findall(r"\s*\S+|\s+", scripted.content)  # words
    chunks += [choice({"content": piece}) for piece in pieces]
    for index, call in enumerate(tool_calls):
        head = {"index": index, "id": call["id"], "type": "function"}
        head["function"] = {"name": call["function"]["name"], "arguments": ""}
        chunks.append(choice({"tool_calls": [head]}))
        arguments = call["function"]["arguments"]
        for start in range(0, len(arguments), 8):
            piece = {"index": index, "function": {"arguments": arguments[start : start + 8]}}
            chunks.append(choice({"tool_calls": [piece]}))
    chunks.append(choice({}, finish_reason))
    if include_usage:
        chunks.append({"choices": [], "usage": scripted.usage})
    return chunks


async def sse(envelope: dict[str, Any], chunks: list[dict[str, Any]]) -> AsyncIterator[str]:
    for chunk in chunks:
        yield f"data: {json.dumps({**envelope, **chunk})}\n\n"
    yield "data: [DONE]\n\n"


def envelope_of(completion_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": body.get("model", ""),
    }


def faulty_sse(
    envelope: dict[str, Any], chunks: list[dict[str, Any]], fault: Fault
) -> AsyncIterator[str]:
    """A stream that breaks: see ``Fault`` (after the role chunk)."""
    role = f"data: {json.dumps({**envelope, **chunks[0]})}\n\n"
    if fault == "malformed":
        return lines([role, "data: {not json\n\n", "data: [DONE]\n\n"])
    first = [f"data: {json.dumps({**envelope, **chunks[1]})}\n\n"] if fault == "drop_after" else []
    return broken_stream([role, *first], OpenAIStub.name)


def responses_body(scripted: ScriptedReply, body: dict[str, Any], number: int) -> dict[str, Any]:
    """A Responses API object: a ``web_search_call`` item when the request offered the
    ``web_search`` tool, the message with ``url_citation`` annotations, function calls."""
    tools = body.get("tools") or []
    output: list[dict[str, Any]] = []
    if any(tool.get("type", "").startswith("web_search") for tool in tools):
        output.append(
            {
                "type": "web_search_call",
                "id": f"ws_stub_{number}",
                "status": "completed",
                "action": {"type": "search", "query": scripted.search_query},
            }
        )
    annotations = []
    for citation in scripted.citations:
        start = max(scripted.content.find(citation.get("cited", "")), 0)
        end = start + len(citation.get("cited", ""))
        annotations.append(
            {
                "type": "url_citation",
                "url": citation["url"],
                "title": citation.get("title", ""),
                "start_index": start,
                "end_index": end,
            }
        )
    if scripted.content or not scripted.tool_calls:
        output.append(
            {
                "type": "message",
                "id": f"msg_stub_{number}",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {
                        "type": "output_text",
                        "text": scripted.content,
                        "annotations": annotations,
                    }
                ],
            }
        )
    for position, call in enumerate(scripted.tool_calls):
        output.append(
            {
                "type": "function_call",
                "id": f"fc_stub_{number}_{position}",
                "call_id": call.get("id") or f"call_{number}_{position}",
                "name": call["name"],
                "arguments": call.get("raw_arguments") or json.dumps(call.get("args", {})),
                "status": "completed",
            }
        )
    usage = scripted.usage
    return {
        "id": f"resp_stub_{number}",
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "model": body.get("model", ""),
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools,
        "usage": {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
        },
    }
