"""Throughput of the run queue with 1, 2 and 4 ``relaygraph worker`` processes.

``python -m benchmarks.scale_workers [--runs 120] [--concurrency 4] [--workers 1,2,4]
[--backends postgres,sqlite] [--database-url postgresql+psycopg://…]``

Each run is the built-in ``agent`` graph with one 200 ms model call (a scripted model,
``benchmarks._scale_model``) and no tool call. For every backend and worker count: a fresh
store (PostgreSQL: a new database on a throwaway cluster started from Debian's binaries,
or on ``--database-url``; SQLite: a new data directory), W worker processes started and
ready, then all runs submitted at once. Throughput is runs / (last run ended - first run
started), from the run rows; efficiency per worker is runs/s at W over W x runs/s at 1.
"Where time goes": mean time in the queue (created -> started), mean execution (started ->
ended, of which 200 ms is the model), and worker CPU seconds per run (from /proc), with
the machine's core count: once CPU per run x runs/s reaches the cores, more workers
cannot help. Prints one table; exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import Run

REPO = Path(__file__).resolve().parents[1]
MODEL = f"scripted:{Path(__file__).with_name('_scale_model.py')}:turn"
MODEL_SECONDS = 0.2


@dataclass
class Result:
    backend: str
    workers: int
    runs: int
    ok: int
    seconds: float
    queue_ms: float
    execute_ms: float
    cpu_per_run_ms: float
    db_cpu_per_run_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _database_cpu_seconds(database_url: str | None) -> float | None:
    """CPU of the PostgreSQL backends serving the benchmark's database (their process
    titles name it), or None on SQLite (its work is inside the workers)."""
    if not database_url:
        return None
    name = database_url.rsplit("/", 1)[-1].split("?")[0]
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if title.startswith("postgres: ") and f" {name} " in title:
                total += _cpu_seconds(int(entry.name))
        except (OSError, ValueError):
            continue  # the process ended meanwhile
    return total


def _start_workers(
    count: int, concurrency: int, env: dict[str, str]
) -> list[subprocess.Popen[str]]:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "relaygraph", "worker", "--concurrency", str(concurrency)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for worker in workers:  # ready: "relaygraph worker … waiting for runs"
        assert worker.stderr is not None
        for line in worker.stderr:
            if "waiting for runs" in line:
                break
        else:
            raise RuntimeError(f"a worker exited before it was ready (code {worker.wait()})")
    return workers


def _stop(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


async def _measure(
    backend: str, database_url: str | None, workers: int, runs: int, concurrency: int
) -> Result:
    with tempfile.TemporaryDirectory(prefix="scale-workers-") as tmp:
        data_dir = Path(tmp)
        env = {**os.environ, "RELAYGRAPH_DATA_DIR": str(data_dir), "RELAYGRAPH_MODEL": MODEL}
        env.pop("RELAYGRAPH_DATABASE_URL", None)
        if database_url:
            env["RELAYGRAPH_DATABASE_URL"] = database_url
        settings = Settings(data_dir=data_dir, model=MODEL, database_url=database_url)
        async with open_system(settings) as system:  # migrates before the workers start
            processes = _start_workers(workers, concurrency, env)
            try:
                cpu_before = sum(_cpu_seconds(p.pid) for p in processes)
                db_before = _database_cpu_seconds(database_url)
                runner = Runner(system)
                for index in range(runs):
                    await runner.submit(
                        RunRequest(
                            principal=local_principal(),
                            input={"messages": [{"type": "human", "content": f"job {index}"}]},
                        )
                    )
                deadline = time.monotonic() + 60 + runs * 2 * MODEL_SECONDS
                while time.monotonic() < deadline:
                    async with system.db.session() as session:
                        rows = (await session.execute(select(Run))).scalars().all()
                    if all(row.status not in ("pending", "running") for row in rows):
                        break
                    await asyncio.sleep(0.25)
                cpu = sum(_cpu_seconds(p.pid) for p in processes) - cpu_before
                db_after = _database_cpu_seconds(database_url)
            finally:
                _stop(processes)
    done = [row for row in rows if row.status == "success" and row.started_at and row.ended_at]
    if not done:
        return Result(backend, workers, runs, 0, 0.0, 0.0, 0.0, 0.0)
    first = min(row.started_at for row in done if row.started_at)
    last = max(row.ended_at for row in done if row.ended_at)
    return Result(
        backend=backend,
        workers=workers,
        runs=runs,
        ok=len(done),
        seconds=(last - first).total_seconds(),
        queue_ms=1000
        * statistics.mean(
            (row.started_at - row.created_at).total_seconds() for row in done if row.started_at
        ),
        execute_ms=1000
        * statistics.mean(
            (row.ended_at - row.started_at).total_seconds()
            for row in done
            if row.started_at and row.ended_at
        ),
        cpu_per_run_ms=1000 * cpu / len(done),
        db_cpu_per_run_ms=(
            1000 * (db_after - db_before) / len(done)
            if db_after is not None and db_before is not None
            else None
        ),
    )


@contextlib.contextmanager
def _postgres(url: str | None) -> Iterator[object]:
    """A factory of fresh database URLs: on ``url``'s server, or a throwaway cluster."""
    if url:
        yield lambda: url
        return
    from tests.scaleout.postgres_cluster import PostgresCluster

    with PostgresCluster.running() as cluster:
        yield cluster.database_url


def _table(results: list[Result], concurrency: int) -> None:
    print(
        f"\nruns/s for the agent graph with one {int(MODEL_SECONDS * 1000)} ms model call; "
        f"{concurrency} concurrent runs per worker process; {os.cpu_count()} CPU cores\n"
    )
    header = (
        f"{'backend':<9}{'workers':>8}{'runs':>6}{'ok':>5}{'seconds':>9}{'runs/s':>8}"
        f"{'ideal':>7}{'eff/worker':>11}{'queue ms':>10}{'exec ms':>9}{'cpu ms/run':>11}"
        f"{'db ms/run':>10}{'cpu use':>9}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        base = next(
            (r.rate for r in results if r.backend == result.backend and r.workers == 1), None
        )
        efficiency = result.rate / (result.workers * base) if base else float("nan")
        ideal = result.workers * concurrency / MODEL_SECONDS
        db_ms = result.db_cpu_per_run_ms
        cores_busy = (result.cpu_per_run_ms + (db_ms or 0.0)) / 1000 * result.rate
        print(
            f"{result.backend:<9}{result.workers:>8}{result.runs:>6}{result.ok:>5}"
            f"{result.seconds:>9.2f}{result.rate:>8.1f}{ideal:>7.0f}{efficiency:>11.0%}"
            f"{result.queue_ms:>10.0f}{result.execute_ms:>9.0f}{result.cpu_per_run_ms:>11.1f}"
            f"{'-' if db_ms is None else f'{db_ms:.1f}':>10}{cores_busy:>8.2f}c"
        )
    print(
        "\nideal = workers x concurrency / 0.2 s (no overhead, unlimited CPU); "
        "eff/worker = runs/s / (workers x runs/s with 1 worker);\n"
        "queue ms = created -> started (all runs are submitted at once, so it grows with "
        "the backlog); exec ms = started -> ended (200 ms of it is the model);\n"
        "cpu ms/run = worker processes' CPU per run; db ms/run = PostgreSQL backends' CPU "
        "per run (SQLite's is inside the workers);\ncpu use = cores the workers and the "
        "database kept busy (the rest of the 2 cores went to the submitter and other jobs)."
    )


async def _main(args: argparse.Namespace) -> None:
    results: list[Result] = []
    counts = [int(item) for item in args.workers.split(",")]
    for backend in args.backends.split(","):
        if backend == "postgres":
            with _postgres(args.database_url) as fresh_url:
                for count in counts:
                    url = fresh_url()  # type: ignore[operator]
                    results.append(await _measure(backend, url, count, args.runs, args.concurrency))
                    print(f"  {backend} x{count}: {results[-1].rate:.1f} runs/s", flush=True)
        elif backend == "sqlite":
            for count in counts:
                results.append(await _measure(backend, None, count, args.runs, args.concurrency))
                print(f"  {backend} x{count}: {results[-1].rate:.1f} runs/s", flush=True)
        else:
            raise SystemExit(f"unknown backend {backend!r}: postgres or sqlite")
    _table(results, args.concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server to use")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
