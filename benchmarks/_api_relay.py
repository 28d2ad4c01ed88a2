"""Start ``relaygraph serve`` for the API benchmarks, and read where its runs spent time.

The server runs as a subprocess with a fresh data directory, auth on (an API key
created beforehand with ``relaygraph keys create``), a rate limit high enough not
to interfere, and the benchmark graphs registered as user graphs.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks._api_load import Timing, fmt_ms, percentile
from benchmarks._api_proc import Server, Servers, base_env, free_port, python_module, run_quiet

HIGH_RATE_LIMIT = "10000000/minute"
BENCH_GRAPHS = {
    "trivial": "benchmarks._api_graph:graph",
    "slow": "benchmarks._api_graph:slow_graph",
}


@dataclass
class Relay:
    server: Server
    key: str
    data_dir: Path
    workers: int

    @property
    def api(self) -> str:
        return f"{self.server.base_url}/api/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.key}


def relay_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = base_env()
    for name in list(env):  # nothing from the caller's relaygraph configuration leaks in
        if name.startswith("RELAYGRAPH_"):
            del env[name]
    env.update(
        {
            "RELAYGRAPH_DATA_DIR": str(data_dir),
            "RELAYGRAPH_GRAPHS": json.dumps(BENCH_GRAPHS),
            "RELAYGRAPH_MODEL": "scripted:providers.scripted:demo_turn",
            "RELAYGRAPH_RATE_LIMIT_PER_KEY": HIGH_RATE_LIMIT,
            "RELAYGRAPH_RATE_LIMIT_PER_TENANT": HIGH_RATE_LIMIT,
            "RELAYGRAPH_LOG_LEVEL": "WARNING",
            **(extra or {}),
        }
    )
    return env


async def start_relay(
    servers: Servers, root: Path, *, workers: int, name: str = "relaygraph"
) -> Relay:
    """Create an API key, then start ``relaygraph serve`` and wait for ``/api/v1/ok``.

    Raises:
        ServerError: the key could not be created or the server did not start.
    """
    data_dir = root / f"{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = relay_env(data_dir)
    created = run_quiet(
        python_module(
            "relaygraph",
            "keys",
            "create",
            "--tenant",
            "bench",
            "--user",
            "bench",
            "--roles",
            "user",
            "--name",
            "benchmark",
            "--json",
        ),
        env=env,
        timeout=120,
    )
    key = json.loads(created)["key"]
    port = free_port()
    command = python_module(
        "relaygraph", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers),
    )  # fmt: skip
    server = await servers.start(name, command, port=port, ready_path="/api/v1/ok", env=env)
    return Relay(server=server, key=key, data_dir=data_dir, workers=workers)


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def run_times(data_dir: Path, key: str = "thread_id") -> dict[str, dict[str, float | None]]:
    """``created``/``started``/``ended`` epoch seconds of every run, by thread id (or by
    ``metadata.bench_id`` with ``key="bench_id"``), read from the store's SQLite file."""
    path = data_dir / "relaygraph.db"
    if not path.exists():
        return {}
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute(
            "SELECT thread_id, metadata, created_at, started_at, ended_at, status FROM runs"
        ).fetchall()
    finally:
        connection.close()
    found: dict[str, dict[str, Any]] = {}
    for thread_id, metadata, created, started, ended, status in rows:
        ident = thread_id
        if key == "bench_id":
            ident = str((json.loads(metadata or "{}") or {}).get("bench_id"))
        found[ident] = {
            "created": _epoch(created),
            "started": _epoch(started),
            "ended": _epoch(ended),
            "status": status,
        }
    return found


def breakdown(
    timings: list[Timing], stored: dict[str, dict[str, Any]], *, model_seconds: float = 0.0
) -> list[tuple[str, list[float]]]:
    """Per-run phases in seconds: submit (request sent → run row created), queue (created
    → claimed), execute (claimed → ended; minus ``model_seconds``), return (ended →
    response received)."""
    phases: dict[str, list[float]] = {"submit": [], "queue": [], "execute": [], "return": []}
    for timing in timings:
        row = stored.get(timing.ident)
        if not row or None in (row["created"], row["started"], row["ended"]):
            continue
        phases["submit"].append(row["created"] - timing.sent)
        phases["queue"].append(row["started"] - row["created"])
        phases["execute"].append(row["ended"] - row["started"] - model_seconds)
        phases["return"].append(timing.received - row["ended"])
    return list(phases.items())


def print_breakdown(
    title: str, timings: list[Timing], stored: dict[str, dict[str, Any]], **kwargs: Any
) -> None:
    phases = breakdown(timings, stored, **kwargs)
    matched = len(phases[0][1]) if phases else 0
    print(f"  {title} ({matched}/{len(timings)} runs matched in the store)")
    if not matched:
        return
    print(f"    {'phase':<28} {'mean ms':>9} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9}")
    labels = {
        "submit": "submit (sent -> row)",
        "queue": "queue (row -> claimed)",
        "execute": "execute (claimed -> ended)",
        "return": "return (ended -> response)",
    }
    if kwargs.get("model_seconds"):
        labels["execute"] = "execute - model call"
    for name, values in phases:
        print(
            f"    {labels[name]:<28} {fmt_ms(statistics.fmean(values)):>9} "
            f"{fmt_ms(percentile(values, 50)):>9} {fmt_ms(percentile(values, 90)):>9} "
            f"{fmt_ms(percentile(values, 99)):>9}"
        )
