"""The trace of a run's inside: OpenTelemetry spans and the per-step rows the console shows.

LangGraph reports every node and every chat-model call through LangChain callbacks; this
handler turns them into

- spans under the run's span (when a tracer provider is installed): one per graph node and
  one per model call. A node's span is made current for the node's own task (the handler
  runs inline, in that task), so spans opened inside the node (tool calls in
  ``tools.executor``, retrieval) nest under it without being told;
- one ``trace_steps`` row per executed node (``StepTrace``): the model calls the router
  recorded while it ran (alias, deployment, prompt version, tokens, cost, latency), the tool
  calls it produced with their outcomes, and the memory/document ids it retrieved with their
  scores (never text). Rows are handed to the run's event log and commit with the next
  event group commit, so tracing adds no transaction of its own.

A user graph may call a LangChain chat model itself (``ChatOpenAI(...)``) instead of our
router. Such calls write no usage row, so their step's model fields come from the callback
events instead: the model name from the invocation parameters, tokens from the answer's
``usage_metadata`` (else ``llm_output["token_usage"]``), latency from start to end, and cost
from the price catalog (``None`` per call when the model is not in it); with no router
alias, the alias is the model name the graph asked for. Router calls are told apart by
their ``_type`` (``RouterChatModel._llm_type``) and left to the usage row the router
writes, so nothing is counted twice; only a router call that wrote no row for this run
(a graph that passed no ``CallInfo``) is filled from its callback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.outputs import LLMResult
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from providers.catalog import Catalog, Price
from providers.errors import ModelSpecError
from providers.usage import UsageRecord, UsageRecorder
from store.models import TraceStep, utcnow

tracer = trace.get_tracer("relaygraph.runtime")
_NOT_FAILURES = frozenset({"GraphInterrupt", "NodeInterrupt", "ParentCommand"})
_RETRIEVED_IDS = (("memory_id", "memory"), ("chunk_id", "chunk"), ("document_id", "document"))
MAX_RETRIEVED = 50
MAX_TOOL_CALLS = 50
ROUTER_LLM_TYPE = "relaygraph-router"
"""``RouterChatModel._llm_type``: the ``_type`` of our router's invocation parameters."""


class StepSink(Protocol):
    """Where finished steps go (``runtime.events.EventLog``: the event group commit)."""

    def add_rows(self, model: Any, rows: list[dict[str, Any]]) -> None: ...


@dataclass
class _Step:
    node: str
    step: int
    namespace: str
    started_at: datetime
    started: float
    model_calls: list[dict[str, Any]] = field(default_factory=list)


class StepTrace:
    """Builds one run's ``trace_steps`` rows and hands each finished step to ``sink``."""

    def __init__(
        self,
        *,
        run_id: str,
        thread_id: str,
        tenant: str,
        sink: StepSink,
        usage: UsageRecorder | None = None,
        prices_file: Path | None = None,
    ) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        self.tenant = tenant
        self.sink = sink
        self.prices_file = prices_file
        self.recorded = 0
        """Usage rows of this run seen so far (the router's own records)."""
        self._seq = 0
        self._open: dict[UUID, _Step] = {}
        self._unwatch: Callable[[], None] | None = (
            usage.watch(run_id, self.on_model_call) if usage is not None else None
        )

    def start(self, key: UUID, node: str, step: int, namespace: str) -> None:
        self._open[key] = _Step(node, step, namespace, utcnow(), time.perf_counter())

    def _target(self, node: str | None, namespace: str | None = None) -> _Step | None:
        """The open step a model call belongs to: its node's (in its namespace when
        known), else the newest open step."""
        steps = list(self._open.values())
        same_node = [s for s in steps if s.node == node]
        same_ns = [s for s in same_node if namespace is not None and s.namespace == namespace]
        candidates = same_ns or same_node or steps
        return candidates[-1] if candidates else None

    def on_model_call(self, record: UsageRecord) -> None:
        """A usage row of this run: it belongs to the open step of its node (else the
        newest open step)."""
        self.recorded += 1
        target = self._target(record.node)
        if target is None:
            return
        target.model_calls.append(
            {
                "alias": record.alias,
                "deployment": record.deployment,
                "prompt_name": record.prompt_name,
                "prompt_version": record.prompt_version,
                "input_tokens": record.input_tokens,
                "output_tokens": record.output_tokens,
                "cost_usd": record.cost_usd,
                "latency_ms": round(record.latency_ms, 3),
                "cache_hit": record.cache_hit,
                "fallback": record.fallback,
                "paid_by": getattr(record, "paid_by", "deployment"),
                "error": record.error,
            }
        )

    def add_model_call(
        self, node: str | None, namespace: str | None, call: ModelCall
    ) -> float | None:
        """A model call seen only through callbacks (no usage row of ours): its fields,
        priced from the catalog, go to the step of ``node``. Returns its cost (None: the
        catalog does not price its model)."""
        price = self.price(call.model)
        cost = None
        if price is not None:
            tokens = (call.input_tokens, call.output_tokens, call.cached_tokens)
            cost = 0.0 if call.error else price.cost(*tokens)
        target = self._target(node, namespace)
        if target is None:
            return cost
        target.model_calls.append(
            {
                "alias": call.alias,
                "deployment": call.deployment,
                "model_version": call.model_version,
                "prompt_name": call.prompt_name,
                "prompt_version": call.prompt_version,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "cost_usd": cost,
                "price_known": price is not None,
                "latency_ms": round(call.latency_ms, 3),
                "cache_hit": False,
                "fallback": False,
                "paid_by": None,
                "error": call.error,
                "source": "callback",
            }
        )
        return cost

    def price(self, model: str | None) -> Price | None:
        """The catalog's price of ``model``; None when the name is missing or not in the
        catalog."""
        if not model:
            return None
        catalog = _catalog(self.prices_file)
        found = catalog.lookup(model) if catalog is not None else None
        return found.price if found is not None else None

    def end(self, key: UUID, outputs: Any, status: str, error: str | None = None) -> None:
        opened = self._open.pop(key, None)
        if opened is None:
            return
        self.sink.add_rows(TraceStep, [self._row(opened, outputs, status, error)])

    def close(self) -> None:
        """Write steps still open (a cancelled or crashed run) and stop watching usage."""
        for key in list(self._open):
            self.end(key, None, "incomplete")
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    def _row(self, step: _Step, outputs: Any, status: str, error: str | None) -> dict[str, Any]:
        self._seq += 1
        calls = step.model_calls
        answered = [c for c in calls if not c["error"]] or calls
        last = answered[-1] if answered else {}
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "tenant": self.tenant,
            "seq": self._seq,
            "step": step.step,
            "namespace": step.namespace[:512],
            "node": step.node[:128],
            "status": status,
            "error": error,
            "alias": last.get("alias"),
            "deployment": last.get("deployment"),
            "prompt_name": last.get("prompt_name"),
            "prompt_version": last.get("prompt_version"),
            "input_tokens": sum(c["input_tokens"] for c in calls),
            "output_tokens": sum(c["output_tokens"] for c in calls),
            # Calls of a model the catalog does not price carry cost None; the step's
            # column (not null) sums what is known.
            "cost_usd": round(sum(c["cost_usd"] or 0.0 for c in calls), 8),
            "latency_ms": round((time.perf_counter() - step.started) * 1000, 3),
            "model_calls": calls,
            "tool_calls": tool_outcomes(outputs),
            "retrieved": retrieved_ids(outputs),
            "started_at": step.started_at,
            "created_at": utcnow(),
        }


@dataclass
class ModelCall:
    """A model call as the callback events show it."""

    deployment: str | None
    model: str | None
    """The name to price it by."""
    alias: str | None = None
    model_version: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    latency_ms: float = 0.0
    error: str | None = None


@lru_cache(maxsize=8)
def _catalog(prices_file: Path | None) -> Catalog | None:
    try:
        return Catalog.load(prices_file)
    except ModelSpecError:
        return None


def _update(outputs: Any) -> Any:
    """A node's state update: its dict, or a ``Command``'s update."""
    return outputs if isinstance(outputs, dict) else getattr(outputs, "update", None)


def _messages(outputs: Any) -> list[Any]:
    """The messages a node returned."""
    update = _update(outputs)
    if isinstance(update, dict):
        found = update.get("messages")
        if isinstance(found, list):
            return found
    return []


def _field(message: Any, name: str) -> Any:
    return message.get(name) if isinstance(message, dict) else getattr(message, name, None)


def tool_outcomes(outputs: Any) -> list[dict[str, Any]]:
    """Tool calls among a node's new messages: proposed by a model (outcome
    ``proposed``) or executed (``success``/``error``), with tool and call id."""
    results = []
    for message in _messages(outputs):
        if _field(message, "type") == "ai":
            for call in _field(message, "tool_calls") or []:
                results.append(
                    {
                        "tool": call.get("name"),
                        "tool_call_id": call.get("id"),
                        "outcome": "proposed",
                    }
                )
            continue
        if _field(message, "type") != "tool":
            continue
        results.append(
            {
                "tool": _field(message, "name"),
                "tool_call_id": _field(message, "tool_call_id"),
                "outcome": _field(message, "status") or "success",
            }
        )
    return results[:MAX_TOOL_CALLS]


def retrieved_ids(outputs: Any) -> list[dict[str, Any]]:
    """Memory, chunk and document ids with scores found in a node's output (its state
    update and its tool results' JSON), never their text."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    update = _update(outputs)
    sources: list[Any] = [update] if isinstance(update, dict) else []
    for message in _messages(outputs):
        if _field(message, "type") == "tool" and isinstance(_field(message, "content"), str):
            try:
                sources.append(json.loads(_field(message, "content")))
            except ValueError:
                continue
    for source in sources:
        for item in _walk(source, depth=0):
            for key, kind in _RETRIEVED_IDS:
                if isinstance(item.get(key), str) and isinstance(item.get("score"), int | float):
                    found.setdefault(
                        (kind, item[key]),
                        {"kind": kind, "id": item[key], "score": round(float(item["score"]), 6)},
                    )
                    break
            if len(found) >= MAX_RETRIEVED:
                return list(found.values())
    return list(found.values())


def _walk(value: Any, depth: int) -> Iterator[dict[str, Any]]:
    if depth > 6:
        return
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _walk(child, depth + 1)
    elif isinstance(value, list | tuple):
        for child in value:
            yield from _walk(child, depth + 1)


@dataclass
class _Open:
    span: Span | None
    token: object | None
    task: asyncio.Task[Any] | None


@dataclass
class _ModelStart:
    """A model call in flight: where it runs and what it is."""

    routed: bool
    node: str | None
    namespace: str | None
    started: float
    deployment: str | None
    model: str | None
    prompt_name: str | None
    prompt_version: str | None
    recorded_before: int
    """The step trace's usage-row count when it started (router calls)."""


class RunTracer(AsyncCallbackHandler):
    """Callback handler for one run: node and model-call spans under ``parent`` (None: no
    spans) and, with ``steps``, one trace row per node."""

    run_inline = True  # called in the node's own task, so the node span can be made current
    raise_error = False

    def __init__(self, parent: Span | None, steps: StepTrace | None = None) -> None:
        self._parent = parent
        self._steps = steps
        self._open: dict[UUID, _Open] = {}
        self._models: dict[UUID, _ModelStart] = {}

    def _parent_context(self, parent_run_id: UUID | None) -> otel_context.Context:
        opened = self._open.get(parent_run_id) if parent_run_id else None
        span = opened.span if opened and opened.span else None
        if span is None:
            # A call nested deeper inside a node (a chain within it, a tool): the span
            # current in the node's task (the node's, or a tool call's under it).
            current = trace.get_current_span()
            span = current if current.is_recording() else self._parent
        assert span is not None
        return trace.set_span_in_context(span)

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
        # Only the node's own runnable (named after it) counts, not its inner ones, nor
        # LangGraph's own ``__start__`` input node.
        if node is None or kwargs.get("name") != node or str(node).startswith("__"):
            return
        step = int(metadata.get("langgraph_step") or 0)
        namespace = str(metadata.get("checkpoint_ns") or "")
        if self._steps is not None:
            self._steps.start(run_id, str(node), step, namespace)
        if self._parent is None:
            return
        span = tracer.start_span(
            f"node {node}",
            context=self._parent_context(parent_run_id),
            attributes={
                "relaygraph.node": str(node),
                "relaygraph.step": step,
                "relaygraph.checkpoint_ns": namespace,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        self._open[run_id] = _Open(span, token, _current_task())

    async def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if self._steps is not None:
            self._steps.end(run_id, outputs, "ok")
        self._close(run_id, None)

    async def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        # GraphInterrupt and friends also arrive here: an interrupt is not a failure.
        failed = type(error).__name__ not in _NOT_FAILURES
        if self._steps is not None:
            if failed:
                self._steps.end(run_id, None, "error", f"{type(error).__name__}: {error}"[:2000])
            else:
                self._steps.end(run_id, None, "interrupted")
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
        self._model_start(
            serialized,
            sum(len(batch) for batch in messages),
            run_id,
            parent_run_id,
            metadata,
            kwargs,
        )

    async def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_start(serialized, len(prompts), run_id, parent_run_id, metadata, kwargs)

    def _model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: int,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        metadata = metadata or {}
        params = kwargs.get("invocation_params") or {}
        routed = params.get("_type") == ROUTER_LLM_TYPE
        model = None if routed else _model_name(serialized, params, metadata)
        provider = metadata.get("ls_provider")
        deployment = None
        if model is not None:
            deployment = f"{provider}:{model}" if provider else model
        node = metadata.get("langgraph_node")
        namespace = metadata.get("checkpoint_ns")
        self._models[run_id] = _ModelStart(
            routed=routed,
            node=str(node) if node is not None else None,
            namespace=str(namespace) if namespace is not None else None,
            started=time.perf_counter(),
            deployment=deployment,
            model=model,
            prompt_name=_optional_str(metadata.get("prompt_name")),
            prompt_version=_optional_str(metadata.get("prompt_version")),
            recorded_before=self._steps.recorded if self._steps is not None else 0,
        )
        if self._parent is None:
            return
        attributes: dict[str, str | int] = {"relaygraph.messages": messages}
        for key in ("ls_provider", "ls_model_name", "prompt_name", "prompt_version", "alias"):
            if metadata.get(key) is not None:
                attributes[f"relaygraph.{key}"] = str(metadata[key])
        if deployment is not None:
            attributes["relaygraph.deployment"] = deployment
            attributes["gen_ai.request.model"] = str(model)
            if provider:
                attributes["gen_ai.system"] = str(provider)
        span = tracer.start_span(
            "model call", context=self._parent_context(parent_run_id), attributes=attributes
        )
        self._open[run_id] = _Open(span, None, None)

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        usage = _usage(response)
        started = self._models.pop(run_id, None)
        opened = self._open.get(run_id)
        message = _first_message(response)
        tagged = (getattr(message, "response_metadata", None) or {}).get("relaygraph") or {}
        call = None
        if started is not None:
            call = self._model_call(started, usage, tagged, _response_model(response, message))
        if opened is not None and opened.span is not None:
            for key in ("input_tokens", "output_tokens"):
                if key in usage:
                    opened.span.set_attribute(f"gen_ai.usage.{key}", usage[key])
            for key in ("alias", "deployment"):
                if tagged.get(key):
                    opened.span.set_attribute(f"relaygraph.{key}", str(tagged[key]))
        if call is not None and self._steps is not None and started is not None:
            cost = self._steps.add_model_call(started.node, started.namespace, call)
            if cost is not None and opened is not None and opened.span is not None:
                opened.span.set_attribute("relaygraph.cost_usd", cost)
        self._close(run_id, None)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        started = self._models.pop(run_id, None)
        if started is not None and not started.routed and self._steps is not None:
            call = self._model_call(started, {}, {}, None)
            if call is not None:
                call.error = f"{type(error).__name__}: {error}"[:500]
                self._steps.add_model_call(started.node, started.namespace, call)
        self._close(run_id, error)

    def _model_call(
        self,
        started: _ModelStart,
        usage: dict[str, int],
        tagged: dict[str, Any],
        version: str | None,
    ) -> ModelCall | None:
        """The call to add to its step, or None when the router recorded it already."""
        # No router alias: the alias column shows the model the graph asked for (the
        # console lists a step's model fields under its alias).
        deployment, model, alias = started.deployment, started.model, started.model
        if started.routed:
            steps = self._steps
            if steps is None or steps.recorded > started.recorded_before:
                return None
            # The router wrote no usage row for this run (no ``CallInfo``): say what the
            # callback saw, priced by the deployment's model.
            deployment = _optional_str(tagged.get("deployment"))
            model = _spec_model(deployment)
            alias = _optional_str(tagged.get("alias"))
        return ModelCall(
            deployment=deployment,
            model=model,
            alias=alias,
            model_version=version,
            prompt_name=started.prompt_name,
            prompt_version=started.prompt_version,
            input_tokens=usage.get("input_tokens", 0),
            output_tokens=usage.get("output_tokens", 0),
            cached_tokens=usage.get("cached_tokens", 0),
            latency_ms=(time.perf_counter() - started.started) * 1000,
        )

    def _close(self, run_id: UUID, error: BaseException | None) -> None:
        opened = self._open.pop(run_id, None)
        if opened is None or opened.span is None:
            return
        if error is not None:
            opened.span.record_exception(error)
            opened.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        opened.span.end()
        # A context token can only be detached where it was attached.
        if opened.token is not None and opened.task is _current_task():
            otel_context.detach(opened.token)  # type: ignore[arg-type]

    def close_all(self) -> None:
        """End spans still open and write steps still open (a cancelled or crashed run)."""
        self._models.clear()
        for run_id in list(self._open):
            opened = self._open.pop(run_id)
            if opened.span is not None:
                opened.span.set_status(Status(StatusCode.ERROR, "run ended"))
                opened.span.end()
        if self._steps is not None:
            self._steps.close()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _first_message(response: LLMResult) -> Any:
    for batch in response.generations:
        for generation in batch:
            message = getattr(generation, "message", None)
            if message is not None:
                return message
    return None


def _usage(response: LLMResult) -> dict[str, int]:
    """Tokens of an answer: the message's ``usage_metadata``, else the provider's
    ``llm_output["token_usage"]`` (OpenAI's names)."""
    for batch in response.generations:
        for generation in batch:
            message = getattr(generation, "message", None)
            usage = getattr(message, "usage_metadata", None)
            if usage:
                details = usage.get("input_token_details") or {}
                return {
                    "input_tokens": int(usage.get("input_tokens", 0)),
                    "output_tokens": int(usage.get("output_tokens", 0)),
                    "cached_tokens": int(details.get("cache_read", 0) or 0),
                }
    token_usage = (response.llm_output or {}).get("token_usage") or {}
    if isinstance(token_usage, dict) and token_usage:
        details = token_usage.get("prompt_tokens_details") or {}
        return {
            "input_tokens": int(token_usage.get("prompt_tokens", 0) or 0),
            "output_tokens": int(token_usage.get("completion_tokens", 0) or 0),
            "cached_tokens": int(details.get("cached_tokens", 0) or 0),
        }
    return {}


def _model_name(
    serialized: dict[str, Any] | None, params: dict[str, Any], metadata: dict[str, Any]
) -> str | None:
    """The model a LangChain model was asked for: LangSmith's ``ls_model_name``, else
    the invocation parameters, else the serialized constructor arguments."""
    kwargs = (serialized or {}).get("kwargs") or {}
    for value in (
        metadata.get("ls_model_name"),
        params.get("model"),
        params.get("model_name"),
        params.get("model_id"),
        kwargs.get("model"),
        kwargs.get("model_name"),
    ):
        if isinstance(value, str) and value:
            return value.removeprefix("models/")  # Gemini's resource names
    return None


def _response_model(response: LLMResult, message: Any) -> str | None:
    """The model version that answered (e.g. a dated snapshot), when the provider says."""
    meta = getattr(message, "response_metadata", None) or {}
    value = (
        meta.get("model_name")
        or meta.get("model_version")
        or meta.get("model")
        or (response.llm_output or {}).get("model_name")
    )
    return str(value) if value else None


def _spec_model(deployment: str | None) -> str | None:
    """``openai:gpt-4o-mini`` → ``gpt-4o-mini`` (``kind:MODEL[@BASE_URL]``)."""
    if not deployment:
        return None
    _, _, rest = deployment.partition(":")
    return rest.partition("@")[0] or None


def _optional_str(value: Any) -> str | None:
    return str(value) if value is not None else None
