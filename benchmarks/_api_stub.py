"""A slow chat-completions stub: every ``POST /v1/chat/completions`` sleeps, then answers
(``POST /fast/v1/chat/completions`` answers at once, for warm-up, and is not counted).

``python -m benchmarks._api_stub --port P --delay 2``

aiohttp's server when aiohttp is installed (cheap per connection, so 1,000 waiting
requests cost the stub nothing); Starlette on uvicorn otherwise. ``GET /ok`` for
readiness; ``GET /stats`` counts calls, the most in flight at once and when calls
started and ended (``POST /reset`` zeroes them).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

_stats: dict[str, Any] = {}


def _reset() -> dict[str, Any]:
    """Zero the counters; ``first_start``/``last_start``/``last_end`` are epoch seconds."""
    _stats.clear()
    _stats.update(
        calls=0, in_flight=0, max_in_flight=0, first_start=None, last_start=None, last_end=None
    )
    return {"ok": True}


_reset()


def completion(text: str = "stub reply") -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "stub",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


async def _answer(delay: float) -> dict[str, Any]:
    now = time.time()
    _stats["calls"] += 1
    _stats["in_flight"] += 1
    _stats["max_in_flight"] = max(_stats["max_in_flight"], _stats["in_flight"])
    _stats["first_start"] = _stats["first_start"] or now
    _stats["last_start"] = now
    try:
        await asyncio.sleep(delay)
    finally:
        _stats["in_flight"] -= 1
        _stats["last_end"] = time.time()
    return completion()


def serve_aiohttp(port: int, delay: float) -> None:
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(await _answer(delay))

    async def fast_chat(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(completion())

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(_stats)

    async def reset(request: web.Request) -> web.Response:
        return web.json_response(_reset())

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/fast/v1/chat/completions", fast_chat)
    app.router.add_get("/ok", ok)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, print=None, backlog=4096)


def serve_starlette(port: int, delay: float) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def chat(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse(await _answer(delay))

    async def fast_chat(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse(completion())

    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(_stats)

    async def reset(request: Request) -> JSONResponse:
        return JSONResponse(_reset())

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/fast/v1/chat/completions", fast_chat, methods=["POST"]),
            Route("/ok", ok),
            Route("/stats", stats),
            Route("/reset", reset, methods=["POST"]),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._api_stub")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=2.0)
    args = parser.parse_args(argv)
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        serve_starlette(args.port, args.delay)
    else:
        serve_aiohttp(args.port, args.delay)


if __name__ == "__main__":
    main()
