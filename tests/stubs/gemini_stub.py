"""A local Gemini-compatible (Gemini Developer API) server for tests.

Replies are scripted: queue them with ``reply(...)`` or ``fail(...)`` and every
``POST /v1beta/models/MODEL:generateContent`` takes the next one as JSON, and every
``POST /v1beta/models/MODEL:streamGenerateContent?alt=sse`` as SSE ``data:`` events (text
in word pieces, each function call whole in its own part, ``usageMetadata`` and
``finishReason`` on the last event), as the real API sends them. Errors use Google's
format (``{"error": {"code", "message", "status"}}``). Request bodies, headers (the key
arrives in ``x-goog-api-key``), paths and models are recorded.

    with GeminiStub() as stub:
        stub.reply("hi")
        model = ChatGoogleGenerativeAI(model="m", google_api_key="k", base_url=stub.base_url)
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.stubs.openai_stub import EMBEDDING_DIMENSIONS, stub_vector
from tests.stubs.scripting import Fault, ReplyBehaviour, ScriptedStub, broken_stream, lines

DEFAULT_USAGE = {"promptTokenCount": 10, "candidatesTokenCount": 5}
MODEL_VERSION = "gemini-stub-001"
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class ScriptedReply(ReplyBehaviour):
    """A ``generateContent`` answer; ``citations`` become the candidate's
    ``groundingMetadata`` (chunks, supports), with ``search_query``."""

    text: str = ""
    function_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_USAGE))
    finish_reason: str = "STOP"


@dataclass(frozen=True)
class RecordedRequest:
    model: str
    method: str
    """``generateContent`` or ``streamGenerateContent``."""
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


def error_response(status: int, message: str) -> Response:
    """An error in Google's format: ``{"error": {"code", "message", "status"}}``."""
    body = {
        "error": {
            "code": status,
            "message": message,
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }
    return JSONResponse(body, status_code=status)


class GeminiStub(ScriptedStub):
    """A Gemini API server on 127.0.0.1 with a free port, run in a background thread.
    Queueing, failures (``fail``), ``reset`` and ``pending``: ``tests.stubs.scripting``."""

    name = "gemini stub"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.embedding_requests: list[RecordedRequest] = []
        super().__init__()
        self.app = Starlette(
            routes=[
                Route("/v1beta/models/{call:path}", self._models_call, methods=["POST"]),
                # langchain-google-genai's embeddings use the v1 API.
                Route("/v1/models/{call:path}", self._models_call, methods=["POST"]),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "DELETE"]),
            ]
        )

    # --- scripting ------------------------------------------------------------------

    def reply(
        self,
        text: str = "",
        *,
        function_calls: list[dict[str, Any]] | None = None,
        usage: dict[str, int] | None = None,
        finish_reason: str = "STOP",
        delay: float = 0.0,
        fault: Fault | None = None,
        citations: list[dict[str, str]] | None = None,
        search_query: str = "stub search",
    ) -> None:
        """Queue a reply (``citations``, ``search_query``: see ``ScriptedReply``).
        ``function_calls`` items are ``{"name", "args"}`` with an optional
        ``id`` (the public API leaves it out, so langchain makes one up); ``args`` may be a
        string to send a malformed call.

        ``usage`` is ``{"promptTokenCount", "candidatesTokenCount"}`` (``DEFAULT_USAGE`` if
        omitted); ``totalTokenCount`` is added.
        """
        self.enqueue(
            ScriptedReply(
                text=text,
                function_calls=list(function_calls or []),
                usage=dict(usage or DEFAULT_USAGE),
                finish_reason=finish_reason,
                delay=delay,
                fault=fault,
                citations=list(citations or []),
                search_query=search_query,
            )
        )

    def error_response(
        self, status: int, message: str, *, type: str = "server_error", code: str | None = None
    ) -> Response:
        return error_response(status, message)  # Google's format has no type or code

    def clear_records(self) -> None:
        self.requests.clear()

    # --- lifecycle (start, stop, context manager: tests.stubs.server) --------------

    @property
    def base_url(self) -> str:
        """The root URL (no ``/v1beta``): what ``base_url`` of the client takes."""
        host, port = self.address
        return f"http://{host}:{port}"

    # --- HTTP -----------------------------------------------------------------------

    async def _unknown(self, request: Request) -> Response:
        return error_response(404, f"gemini stub: no route {request.method} {request.url.path}")

    async def _embed(self, request: Request, model: str, method: str) -> Response:
        """Deterministic vectors (``stub_vector``); recorded in ``embedding_requests``."""
        body = await request.json()
        with self._lock:
            query, headers = dict(request.query_params), dict(request.headers)
            self.embedding_requests.append(RecordedRequest(model, method, query, headers, body))
        items = body["requests"] if method == "batchEmbedContents" else [body]
        embeddings = [
            {
                "values": stub_vector(
                    "".join(part.get("text", "") for part in item["content"]["parts"]),
                    int(item.get("outputDimensionality") or EMBEDDING_DIMENSIONS),
                )
            }
            for item in items
        ]
        if method == "embedContent":
            return JSONResponse({"embedding": embeddings[0]})
        return JSONResponse({"embeddings": embeddings})

    async def _models_call(self, request: Request) -> Response:
        model, _, method = request.path_params["call"].rpartition(":")
        if method in ("embedContent", "batchEmbedContents") and model:
            return await self._embed(request, model, method)
        if method not in ("generateContent", "streamGenerateContent") or not model:
            return await self._unknown(request)
        body = await request.json()
        recorded = RecordedRequest(
            model=model,
            method=method,
            query=dict(request.query_params),
            headers=dict(request.headers),
            body=body,
        )

        def record() -> int:
            self.requests.append(recorded)
            return len(self.requests)

        number, scripted, answered = await self.next_reply(record)
        if answered is not None:
            return answered
        response_id = f"stub-response-{number}"
        if method == "streamGenerateContent":
            if request.query_params.get("alt") != "sse":
                return error_response(400, "gemini stub: streaming is served only with alt=sse")
            events = stream_events(scripted, response_id)
            if scripted.fault is not None:
                return StreamingResponse(
                    faulty_sse(events, scripted.fault), media_type="text/event-stream"
                )
            return StreamingResponse(sse(events), media_type="text/event-stream")
        if scripted.fault is not None:
            return Response('{"candidates": [', media_type="application/json")
        parts: list[dict[str, Any]] = [{"text": scripted.text}] if scripted.text else []
        parts += [function_call_part(call) for call in scripted.function_calls]
        answer = candidate(parts, scripted.finish_reason)
        if scripted.citations:
            answer["groundingMetadata"] = grounding_metadata(scripted)
        return JSONResponse(
            {
                "candidates": [answer],
                "usageMetadata": usage_metadata(scripted.usage),
                "modelVersion": MODEL_VERSION,
                "responseId": response_id,
            }
        )


def function_call_part(call: dict[str, Any]) -> dict[str, Any]:
    function_call: dict[str, Any] = {"name": call["name"], "args": call.get("args", {})}
    if call.get("id"):
        function_call["id"] = call["id"]
    return {"functionCall": function_call}


def candidate(parts: list[dict[str, Any]], finish_reason: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish_reason:
        body["finishReason"] = finish_reason
    return body


def usage_metadata(usage: dict[str, int]) -> dict[str, int]:
    total = usage.get("promptTokenCount", 0) + usage.get("candidatesTokenCount", 0)
    return {**usage, "totalTokenCount": total}


def stream_events(scripted: ScriptedReply, response_id: str) -> list[dict[str, Any]]:
    """The SSE event bodies of a streamed reply; the last carries finish reason and usage."""
    pieces = re.findall(r"\s*\S+|\s+", scripted.text)  # words; they join back exactly
    part_lists: list[list[dict[str, Any]]] = [[{"text": piece}] for piece in pieces]
    part_lists += [[function_call_part(call)] for call in scripted.function_calls]
    if not part_lists:
        part_lists = [[{"text": ""}]]
    events = []
    for position, parts in enumerate(part_lists):
        last = position == len(part_lists) - 1
        event: dict[str, Any] = {
            "candidates": [candidate(parts, scripted.finish_reason if last else None)],
            "modelVersion": MODEL_VERSION,
            "responseId": response_id,
        }
        if last:
            event["usageMetadata"] = usage_metadata(scripted.usage)
            if scripted.citations:
                event["candidates"][0]["groundingMetadata"] = grounding_metadata(scripted)
        events.append(event)
    return events


async def sse(events: list[dict[str, Any]]) -> AsyncIterator[str]:
    for event in events:
        yield f"data: {json.dumps(event)}\r\n\r\n"


def faulty_sse(events: list[dict[str, Any]], fault: Fault) -> AsyncIterator[str]:
    """A stream that breaks: see ``Fault``."""
    if fault == "malformed":
        return lines(["data: {not json\r\n\r\n"])
    first = [f"data: {json.dumps(events[0])}\r\n\r\n"] if fault == "drop_after" else []
    return broken_stream(first, GeminiStub.name)


def grounding_metadata(scripted: ScriptedReply) -> dict[str, Any]:
    """Google Search grounding as the API reports it: queries, web chunks, and supports
    tying text segments to chunks."""
    chunks = []
    supports = []
    for index, citation in enumerate(scripted.citations):
        chunks.append({"web": {"uri": citation["url"], "title": citation.get("title", "")}})
        cited = citation.get("cited", "")
        start = max(scripted.text.find(cited), 0)
        supports.append(
            {
                "segment": {"startIndex": start, "endIndex": start + len(cited), "text": cited},
                "groundingChunkIndices": [index],
            }
        )
    return {
        "webSearchQueries": [scripted.search_query],
        "groundingChunks": chunks,
        "groundingSupports": supports,
    }
