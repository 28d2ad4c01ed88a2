"""Prometheus metrics and OpenTelemetry spans of tool calls, recorded where each attempt
is audited (``ToolExecutor._audit``), so every caller (graphs, MCP, CLI) is counted once."""

from __future__ import annotations

import time

from opentelemetry import trace
from prometheus_client import Counter, Histogram

TOOL_CALLS = Counter(
    "relaygraph_tool_calls",
    "Tool call attempts by tool, gate decision and result status.",
    ["tool", "decision", "status"],
)
TOOL_SECONDS = Histogram(
    "relaygraph_tool_call_duration_seconds",
    "Wall time of a tool call attempt, gate and audit included.",
    ["tool"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
_tracer = trace.get_tracer("relaygraph.tools")


def record_attempt(
    *, tool: str, decision: str, status: str, via: str, started: float, error: str | None
) -> None:
    """Count the attempt and emit its span (under the current span: the graph node's, or
    the MCP request's). ``started`` is the attempt's ``time.perf_counter()``."""
    elapsed = time.perf_counter() - started
    TOOL_CALLS.labels(tool=tool, decision=decision, status=status).inc()
    TOOL_SECONDS.labels(tool=tool).observe(elapsed)
    span = _tracer.start_span(
        f"tool {tool}",
        start_time=time.time_ns() - int(elapsed * 1e9),
        attributes={
            "relaygraph.tool": tool,
            "relaygraph.decision": decision,
            "relaygraph.status": status,
            "relaygraph.via": via,
        },
    )
    if error is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR, error))
    span.end()
