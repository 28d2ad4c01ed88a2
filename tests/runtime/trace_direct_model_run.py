"""Run in a fresh process by test_tracing_direct_models: one run of the ``direct_models``
user graph (it calls ChatOpenAI itself, against the local OpenAI stub) with an in-memory
span exporter; prints the finished spans as JSON.

A separate process because a tracer provider can be installed only once per process.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime.observability import configure_tracing


async def _run(data_dir: Path) -> None:
    from identity import local_principal
    from runtime.runs import Runner, RunRequest
    from runtime.system import open_system
    from tests.runtime.test_tracing_direct_models import _settings
    from tests.stubs.openai_stub import OpenAIStub

    with OpenAIStub() as stub:
        stub.reply("a draft", usage={"prompt_tokens": 1000, "completion_tokens": 200})
        stub.reply("the answer", usage={"prompt_tokens": 2000, "completion_tokens": 400})
        async with open_system(_settings(data_dir, stub.base_url)) as system:
            summary = await Runner(system).run(
                RunRequest(principal=local_principal(), assistant_id="direct", input_text="hi")
            )
            if summary.status != "success":
                raise SystemExit(f"run failed: {summary.final_message}")


def main(data_dir: str) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("off", processor=SimpleSpanProcessor(exporter))
    asyncio.run(_run(Path(data_dir)))
    spans = [
        {
            "name": span.name,
            "span_id": format(span.context.span_id, "016x"),
            "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
            "attributes": dict(span.attributes or {}),
        }
        for span in exporter.get_finished_spans()
    ]
    print(json.dumps(spans, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
