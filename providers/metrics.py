"""Prometheus metrics of model calls, counted from the usage rows the router records (one
per deployment tried, and one per cache hit), so the metrics and the usage table agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    from providers.usage import UsageRecord

MODEL_CALLS = Counter(
    "relaygraph_model_calls",
    "Model calls by deployment, alias and outcome (ok, error, cache_hit).",
    ["deployment", "alias", "outcome"],
)
MODEL_TOKENS = Counter(
    "relaygraph_model_tokens",
    "Tokens by deployment and kind (input, output, cached).",
    ["deployment", "kind"],
)
MODEL_COST = Counter("relaygraph_model_cost_usd", "Spend in USD by deployment.", ["deployment"])
MODEL_FALLBACKS = Counter(
    "relaygraph_model_fallbacks",
    "Calls answered by a later deployment of their alias than the first.",
    ["alias"],
)
MODEL_SECONDS = Histogram(
    "relaygraph_model_call_duration_seconds",
    "Latency of one model call attempt (retries included).",
    ["deployment"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)


def observe(row: UsageRecord) -> None:
    outcome = "cache_hit" if row.cache_hit else ("error" if row.error else "ok")
    MODEL_CALLS.labels(deployment=row.deployment, alias=row.alias, outcome=outcome).inc()
    if row.cache_hit:
        return
    for kind, count in (
        ("input", row.input_tokens),
        ("output", row.output_tokens),
        ("cached", row.cached_tokens),
    ):
        if count:
            MODEL_TOKENS.labels(deployment=row.deployment, kind=kind).inc(count)
    if row.cost_usd:
        MODEL_COST.labels(deployment=row.deployment).inc(row.cost_usd)
    if row.fallback and not row.error:
        MODEL_FALLBACKS.labels(alias=row.alias).inc()
    MODEL_SECONDS.labels(deployment=row.deployment).observe(row.latency_ms / 1000)
