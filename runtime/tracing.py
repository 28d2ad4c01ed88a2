"""OpenTelemetry spans for the inside of a run: one per graph node and one per model call.

LangGraph reports every node and every chat-model call through LangChain callbacks; this
handler turns them into spans under the run's span. A node's span is made current for the
node's own task (the handler runs inline, in that task), so spans opened inside the node
(tool calls in ``tools.executor``, retrieval) nest under it without being told.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.outputs import LLMResult
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

tracer = trace.get_tracer("relaygraph.runtime")


@dataclass
class _Open:
    span: Span
    token: object | None
    task: asyncio.Task[Any] | None


class RunTracer(AsyncCallbackHandler):
    """Callback handler for one run: node spans and model-call spans under ``parent``."""

    run_inline = True  # called in the node's own task, so the node span can be made current
    raise_error = False

    def __init__(self, parent: Span) -> None:
        self._parent = parent
        self._open: dict[UUID, _Open] = {}

    def _parent_context(self, parent_run_id: UUID | None) -> otel_context.Context:
        opened = self._open.get(parent_run_id) if parent_run_id else None
        return trace.set_span_in_context(opened.span if opened else self._parent)

    async def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        metadata = metadata or {}
        node = metadata.get("langgraph_node")
        # Only the node's own runnable (named after it) opens a span, not its inner ones.
        if node is None or kwargs.get("name") != node:
            return
        span = tracer.start_span(
            f"node {node}",
            context=self._parent_context(parent_run_id),
            attributes={
                "relaygraph.node": str(node),
                "relaygraph.step": int(metadata.get("langgraph_step") or 0),
                "relaygraph.checkpoint_ns": str(metadata.get("checkpoint_ns") or ""),
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        self._open[run_id] = _Open(span, token, _current_task())

    async def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, None)

    async def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        # GraphInterrupt and friends also arrive here: an interrupt is not a failure.
        failed = type(error).__name__ not in {"GraphInterrupt", "ParentCommand"}
        self._close(run_id, error if failed else None)

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        metadata = metadata or {}
        attributes: dict[str, str | int] = {
            "relaygraph.messages": sum(len(batch) for batch in messages)
        }
        for key in ("ls_provider", "ls_model_name", "prompt_name", "prompt_version", "alias"):
            if metadata.get(key) is not None:
                attributes[f"relaygraph.{key}"] = str(metadata[key])
        span = tracer.start_span(
            "model call", context=self._parent_context(parent_run_id), attributes=attributes
        )
        self._open[run_id] = _Open(span, None, None)

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        opened = self._open.get(run_id)
        if opened is not None:
            usage = _usage(response)
            for key, value in usage.items():
                opened.span.set_attribute(f"gen_ai.usage.{key}", value)
        self._close(run_id, None)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error)

    def _close(self, run_id: UUID, error: BaseException | None) -> None:
        opened = self._open.pop(run_id, None)
        if opened is None:
            return
        if error is not None:
            opened.span.record_exception(error)
            opened.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        opened.span.end()
        # A context token can only be detached where it was attached.
        if opened.token is not None and opened.task is _current_task():
            otel_context.detach(opened.token)  # type: ignore[arg-type]

    def close_all(self) -> None:
        """End spans still open (a cancelled or crashed run)."""
        for run_id in list(self._open):
            opened = self._open.pop(run_id)
            opened.span.set_status(Status(StatusCode.ERROR, "run ended"))
            opened.span.end()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _usage(response: LLMResult) -> dict[str, int]:
    for batch in response.generations:
        for generation in batch:
            message = getattr(generation, "message", None)
            usage = getattr(message, "usage_metadata", None)
            if usage:
                return {
                    "input_tokens": int(usage.get("input_tokens", 0)),
                    "output_tokens": int(usage.get("output_tokens", 0)),
                }
    return {}
