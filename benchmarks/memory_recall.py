"""Scoped recall latency and recall@5: per-user partitions against Chroma's ``where`` filter.

Setup (same vectors for every method): ``--vectors`` (100k) unit vectors of 384 dims
over ``--users`` (100) users of one tenant. The vectors are random (Gaussian, then
normalised), not embeddings of real text: latency and recall of an index depend on
count, dimension and distribution, and random vectors are the hard case for HNSW.
Queries are a stored vector of the queried user plus noise (cosine ~0.7 to it).

* ours: ``memory.vectors.VectorIndex`` over an embedded ``VectorStore`` — one Chroma
  collection per (tenant, user) as the durable copy, exact numpy search over the
  in-memory partition (warm; the cold load of a partition from Chroma is printed apart).
* ours, Chroma path: the same partitions queried through Chroma's HNSW (what a
  ``RELAYGRAPH_CHROMA_URL`` deployment does, minus the HTTP hop).
* baseline: one Chroma collection holding every vector with ``{"user": ...}`` metadata,
  queried with ``where={"user": ...}`` (and, for reference, unfiltered).

Recall@5 is against exact top-5 among that user's vectors. Query embedding is not part
of the latencies; the offline embedder's single-query time is printed separately.

    python -m benchmarks.memory_recall [--vectors 100000] [--users 100] [--queries 200]

It is a benchmark, not a test: it exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from memory.embeddings import LocalMiniLMEmbedder
from memory.types import Scope
from memory.vectors import VectorStore

DIM = 384
K = 5
TARGET_P50_MS = 5.0
TARGET_RECALL = 0.95


def _timed(queries: list[tuple[int, np.ndarray]], run: Callable[[int, np.ndarray], list[str]]):
    latencies, results = [], []
    for user, vector in queries:
        started = time.perf_counter()
        results.append(run(user, vector))
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, results


def _recall(results: list[list[str]], truth: list[set[str]]) -> float:
    return sum(len(set(got) & want) for got, want in zip(results, truth, strict=True)) / (
        K * len(truth)
    )


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    import chromadb
    from chromadb.config import Settings as ChromaSettings

    rng = np.random.default_rng(args.seed)
    per_user = args.vectors // args.users
    data = rng.normal(size=(per_user * args.users, DIM)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    owner = np.repeat(np.arange(args.users), per_user)
    ids = [f"mem-{i}" for i in range(len(data))]
    scopes = [Scope("tenant-1", f"user-{u}") for u in range(args.users)]

    queries: list[tuple[int, np.ndarray]] = []
    truth: list[set[str]] = []
    for _ in range(args.queries):
        user = int(rng.integers(args.users))
        rows = np.flatnonzero(owner == user)
        anchor = data[rng.choice(rows)]
        vector = anchor + rng.normal(size=DIM).astype(np.float32) / np.sqrt(DIM)
        vector /= np.linalg.norm(vector)
        queries.append((user, vector))
        best = rows[np.argsort(-(data[rows] @ vector))[:K]]
        truth.append({ids[i] for i in best})

    with tempfile.TemporaryDirectory() as tmp:
        print(f"# scoped recall: {len(data)} vectors x {DIM} d, {args.users} users, top-{K}")
        print("vectors are random unit vectors (not text embeddings); see the module docstring")

        store = VectorStore.open_local(Path(tmp) / "ours", cache_max_vectors=len(data))
        index = store.index("memories")
        started = time.perf_counter()
        for user, scope in enumerate(scopes):
            rows = np.flatnonzero(owner == user)
            index.add(scope, [ids[i] for i in rows], data[rows])
        ours_insert = time.perf_counter() - started
        store.close()  # reopen: partitions then load lazily from Chroma, as after a restart
        store = VectorStore.open_local(Path(tmp) / "ours", cache_max_vectors=len(data))
        index = store.index("memories")
        cold = []
        for scope in scopes:
            started = time.perf_counter()
            index.query(scope, queries[0][1], k=K)
            cold.append((time.perf_counter() - started) * 1000)

        def ours(user: int, vector: np.ndarray) -> list[str]:
            return [hit.id for hit in index.query(scopes[user], vector, k=K)]

        def ours_chroma(user: int, vector: np.ndarray) -> list[str]:
            name = store.collection_name("memories", scopes[user])
            return [hit.id for hit in index._query_chroma(name, vector, K, None)]

        client = chromadb.PersistentClient(
            path=str(Path(tmp) / "baseline"), settings=ChromaSettings(anonymized_telemetry=False)
        )
        flat = client.create_collection(
            "all", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        batch = client.get_max_batch_size()
        started = time.perf_counter()
        for start in range(0, len(data), batch):
            stop = start + batch
            flat.add(
                ids=ids[start:stop],
                embeddings=data[start:stop],
                metadatas=[{"user": f"user-{u}"} for u in owner[start:stop]],
            )
        baseline_insert = time.perf_counter() - started

        def baseline(user: int, vector: np.ndarray) -> list[str]:
            found = flat.query(
                query_embeddings=[vector], n_results=K, where={"user": f"user-{user}"}
            )
            return found["ids"][0]

        def unfiltered(user: int, vector: np.ndarray) -> list[str]:
            return flat.query(query_embeddings=[vector], n_results=K)["ids"][0]

        for run in (ours, ours_chroma, baseline, unfiltered):  # warm up every path
            _timed(queries[:10], run)
        figures = {}
        for name, run in (
            ("ours (partition, exact numpy)", ours),
            ("ours (partition, Chroma HNSW)", ours_chroma),
            ("baseline (one collection, where)", baseline),
            ("unfiltered, for reference", unfiltered),
        ):
            latencies, results = _timed(queries, run)
            recall = _recall(results, truth) if run is not unfiltered else float("nan")
            figures[name] = (statistics.median(latencies), _p(latencies, 95), recall)
        store.close()

    embedder_dir = tempfile.TemporaryDirectory()
    embedder = LocalMiniLMEmbedder(Path(embedder_dir.name))
    embedder.embed_query("warm up")
    embed_ms = []
    for text in ("what does the user drink in the morning?", "when is the dentist appointment"):
        for _ in range(10):
            started = time.perf_counter()
            embedder.embed_query(text)
            embed_ms.append((time.perf_counter() - started) * 1000)
    embedder_dir.cleanup()

    print(
        f"insert: ours {len(data) / ours_insert:.0f}/s ({args.users} collections + cache), "
        f"baseline {len(data) / baseline_insert:.0f}/s (one collection + metadata)"
    )
    cold_p50 = statistics.median(cold)
    print(f"cold partition load from Chroma ({per_user} vectors): p50 {cold_p50:.1f} ms")
    print(f"{'method':36} {'p50 ms':>8} {'p95 ms':>8} {'recall@5':>9}")
    for name, (p50, p95, recall) in figures.items():
        print(f"{name:36} {p50:8.3f} {p95:8.3f} {recall:9.3f}")
    ours_p50, _, ours_recall = figures["ours (partition, exact numpy)"]
    base_p50 = figures["baseline (one collection, where)"][0]
    print(f"ratio baseline / ours (p50): {base_p50 / ours_p50:.0f}x")
    met = ours_p50 <= TARGET_P50_MS and ours_recall >= TARGET_RECALL
    print(
        f"target p50 <= {TARGET_P50_MS} ms and recall@5 >= {TARGET_RECALL}: "
        f"{'met' if met else 'NOT met'}"
    )
    embed_p50 = statistics.median(embed_ms)
    print(f"query embedding (separate, local MiniLM, 1 text): p50 {embed_p50:.1f} ms")


if __name__ == "__main__":
    main()
