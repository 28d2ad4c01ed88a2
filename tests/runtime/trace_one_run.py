"""Run in a fresh process by test_observability: serve the API with an in-memory span
exporter, make one run through HTTP, print the finished spans as JSON.

A separate process because a tracer provider can be installed only once per process.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime.observability import configure_tracing


def main(data_dir: str, port: int) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("off", processor=SimpleSpanProcessor(exporter))

    from api.app import create_app
    from runtime.settings import Settings

    settings = Settings(
        data_dir=Path(data_dir), auth_disabled=True, model="scripted:providers.scripted:demo_turn"
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, workers=1), host="127.0.0.1", port=port, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}/api/v1"
    with httpx.Client(base_url=base, timeout=30) as client:
        thread_id = client.post("/threads", json={}).json()["thread_id"]
        response = client.post(
            f"/threads/{thread_id}/runs/wait",
            json={
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": "remember 'buy milk'"}]},
            },
        )
        response.raise_for_status()
    server.should_exit = True
    thread.join(timeout=30)
    spans = [
        {
            "name": span.name,
            "trace_id": format(span.context.trace_id, "032x"),
            "span_id": format(span.context.span_id, "016x"),
            "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
            "attributes": dict(span.attributes or {}),
            "status": span.status.status_code.name,
        }
        for span in exporter.get_finished_spans()
    ]
    print(json.dumps({"thread_id": thread_id, "spans": spans}, default=str))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
