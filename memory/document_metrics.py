"""Prometheus metrics of document ingestion and retrieval (default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DOCUMENT_JOBS = Counter(
    "relaygraph_document_jobs",
    "Ingestion job attempts that ended, by outcome (succeeded, held, failed, retry, dead).",
    ["outcome"],
)
DOCUMENT_INGEST_SECONDS = Histogram(
    "relaygraph_document_ingest_duration_seconds",
    "Wall time of one ingestion attempt, from claim to its outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
DOCUMENT_CHUNKS = Counter("relaygraph_document_chunks_indexed", "Chunks embedded and indexed.")
DOCUMENT_SEARCH_SECONDS = Histogram(
    "relaygraph_document_search_duration_seconds",
    "Wall time of one hybrid document search (embedding the query included).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
