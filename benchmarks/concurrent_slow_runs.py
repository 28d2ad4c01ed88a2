"""Many concurrent slow runs: each makes one 2-second "model call" to a stub.

``python -m benchmarks.concurrent_slow_runs [--runs 1000] [--quick]``

All runs are started at once by one load client; a run's latency is its request's
round trip, its overhead that latency minus the model call. The model call is an
HTTP chat completion to ``benchmarks._api_stub`` (its own process; it sleeps, then
answers), made by the middle node of a 3-node graph (``benchmarks._api_graph:
slow_graph``) through one pooled aiohttp session per server process (``--model-client
httpx`` uses httpx, as the OpenAI SDK does: its pool costs O(open connections) per
request, so at 1,000 calls at once httpx itself dominates every stack, ~35 s).
Each stack runs in its own uvicorn subprocess, measured alone:

- plain sleep: a FastAPI endpoint that sleeps 2 s (no graph, no HTTP call);
- plain call: a FastAPI endpoint that makes the stub call (no graph);
- bare memory / bare sqlite: FastAPI + LangGraph (the 3-node graph, run inside the
  request) with ``InMemorySaver`` / ``AsyncSqliteSaver``;
- relaygraph: ``relaygraph serve --workers N`` (auth on, SQL run queue, event log,
  SQLite checkpoints), ``POST /runs/wait`` with ``on_completion: keep`` so that the
  run rows remain to show where the time went.

"Where the time goes": the stub records when the model calls started and ended,
so the spread of call starts shows how long the stack took to get every run to its
model call; for relaygraph the run rows split each run into submit, queue, execute
and return. Each stack gets ``--deadline`` seconds; runs still going then are counted
as unfinished (the wall time is then a lower bound). Exits 0 whether or not the
target is met; every subprocess is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._api_load import (
    LoadClient,
    Sample,
    Timing,
    client_kind,
    fmt_ms,
    fmt_ratio,
    percentile,
    print_table_head,
    ratio,
)
from benchmarks._api_proc import (
    Server,
    ServerError,
    Servers,
    base_env,
    bench_servers,
    environment_note,
    free_port,
    python_module,
    run_main,
    start_bare,
)
from benchmarks._api_relay import print_breakdown, run_times, start_relay

TARGET = 1.0  # relaygraph wall time <= 1.0x the bare durable (AsyncSqliteSaver) stack's
STRETCH = 0.65
MODEL_SECONDS = 2.0
WARMUP_RUNS = 5
PACKAGES = ("langgraph", "langgraph-checkpoint-sqlite", "fastapi", "uvicorn", "httpx")

RunOnce = Callable[[LoadClient, int, dict[str, str]], Awaitable[Timing]]
"""(client, index, model call: {"stub_url", "via"}) -> timing"""


@dataclass
class Result:
    name: str
    description: str
    sample: Sample | None = None
    stub: dict[str, Any] = field(default_factory=dict)
    phase_start: float = 0.0
    skipped: str | None = None
    unfinished: int = 0
    """Runs still going at the deadline (cancelled by the load client)."""
    notes: list[str] = field(default_factory=list)
    stored_runs: dict[str, dict[str, Any]] | None = None
    """relaygraph only: created/started/ended of each run, from its store."""


# --- one run per stack ---------------------------------------------------------------------


def plain_sleep(base: str) -> RunOnce:
    async def run_once(client: LoadClient, index: int, call: dict[str, str]) -> Timing:
        sent = time.time()
        await client.post(f"{base}/sleep", {})
        return Timing(str(index), sent, time.time())

    return run_once


def plain_call(base: str) -> RunOnce:
    async def run_once(client: LoadClient, index: int, call: dict[str, str]) -> Timing:
        sent = time.time()
        await client.post(f"{base}/call", call)
        return Timing(str(index), sent, time.time())

    return run_once


def _check(values: Any) -> None:
    if not isinstance(values, dict) or values.get("n") != 3 or not values.get("reply"):
        raise RuntimeError(f"unexpected final values {str(values)[:200]}")


def bare_graph(base: str) -> RunOnce:
    async def run_once(client: LoadClient, index: int, call: dict[str, str]) -> Timing:
        sent = time.time()
        values = await client.post(f"{base}/runs/wait", {"input": {"n": 0, **call}})
        received = time.time()
        _check(values)
        return Timing(str(index), sent, received)

    return run_once


def relaygraph_run(api: str, headers: dict[str, str]) -> RunOnce:
    async def run_once(client: LoadClient, index: int, call: dict[str, str]) -> Timing:
        body = {
            "assistant_id": "slow",
            "input": {"n": 0, **call},
            "metadata": {"bench_id": str(index)},
            "on_completion": "keep",
        }
        sent = time.time()
        values = await client.post(f"{api}/runs/wait", body, headers=headers)
        received = time.time()
        _check(values)
        return Timing(str(index), sent, received)

    return run_once


# --- measurement ---------------------------------------------------------------------------


async def stub_stats(client: LoadClient, stub: Server) -> dict[str, Any]:
    return dict(await client.get(f"{stub.base_url}/stats"))


async def measure(
    result: Result, run_once: RunOnce, stub: Server, args: argparse.Namespace, server: Server
) -> None:
    """Warm up (fast stub calls), then start every run at once; runs still going at the
    deadline are cancelled and counted as unfinished. ``server``: the stack's process (the
    CPU it uses)."""
    async with LoadClient(timeout=args.deadline + 30) as client:
        via = args.model_client
        fast = {"stub_url": f"{stub.base_url}/fast/v1", "via": "httpx" if via == "sleep" else via}
        slow = {"stub_url": f"{stub.base_url}/v1", "via": via}
        warm = await asyncio.wait_for(
            asyncio.gather(
                *(run_once(client, -1 - i, fast) for i in range(WARMUP_RUNS)),
                return_exceptions=True,
            ),
            60,
        )
        failed = [item for item in warm if isinstance(item, BaseException)]
        if failed:
            raise RuntimeError(f"warm-up failed: {type(failed[0]).__name__}: {failed[0]}")
        await client.post(f"{stub.base_url}/reset", {})
        result.phase_start = time.time()
        started, cpu_before = time.perf_counter(), server.cpu_seconds()
        tasks = [asyncio.create_task(run_once(client, i, slow)) for i in range(args.runs)]
        done, pending = await asyncio.wait(tasks, timeout=args.deadline)
        wall, cpu = time.perf_counter() - started, server.cpu_seconds() - cpu_before
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        result.stub = await stub_stats(client, stub)
    timings = [task.result() for task in done if task.exception() is None]
    failures = [error for task in done if (error := task.exception()) is not None]
    first_error = f"{type(failures[0]).__name__}: {failures[0]}" if failures else None
    result.unfinished = len(pending)
    result.sample = Sample(
        result.name,
        [timing.latency for timing in timings],
        wall,
        len(failures),
        first_error,
        timings,
        server_cpu=cpu,
    )
    status = f"{len(timings)} ok"
    if failures:
        status += f", {len(failures)} failed"
    if pending:
        status += f", {len(pending)} unfinished at the {args.deadline:.0f} s deadline"
    print(f"  {result.name}: {status} in {wall:.2f} s (server CPU {cpu:.2f} s)", flush=True)
    if first_error:
        print(f"    first error: {first_error[:300]}", flush=True)


async def bench_bare(
    servers: Servers,
    stub: Server,
    root: Path,
    args: argparse.Namespace,
    *,
    name: str,
    description: str,
    saver: str,
    make: Callable[[str], RunOnce],
) -> Result:
    result = Result(name, description)
    server = await start_bare(
        servers, root, name=name, saver=saver, graph="slow", delay=MODEL_SECONDS
    )
    print(f"- {name}: {description}", flush=True)
    try:
        await measure(result, make(server.base_url), stub, args, server)
    finally:
        servers.stop(server)
    return result


async def bench_relaygraph(
    servers: Servers, stub: Server, root: Path, args: argparse.Namespace
) -> Result:
    workers = args.workers or args.runs
    relay = await start_relay(servers, root, workers=workers)
    result = Result(
        "relaygraph",
        f"relaygraph serve --workers {workers}; auth on; SQL queue; event log; SQLite "
        "checkpoints; POST /runs/wait",
    )
    print(f"- relaygraph: {result.description} (started in {relay.server.started_in:.1f} s)")
    try:
        await measure(result, relaygraph_run(relay.api, relay.headers), stub, args, relay.server)
        stored = run_times(relay.data_dir, key="bench_id")
        statuses: dict[str, int] = {}
        for row in stored.values():
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        result.notes.append(f"run rows by status: {statuses}")
        result.stored_runs = stored
    finally:
        servers.stop(relay.server)
    return result


# --- report --------------------------------------------------------------------------------


def _stub_line(result: Result) -> str:
    stats = result.stub
    if not stats or not stats.get("calls"):
        return "no model calls recorded"
    first = stats["first_start"] - result.phase_start
    last = stats["last_start"] - result.phase_start
    end = (stats["last_end"] or 0) - result.phase_start
    return (
        f"{stats['calls']} model calls, up to {stats['max_in_flight']} at once; calls began "
        f"+{first:.2f} s .. +{last:.2f} s after the first request, the last ended at "
        f"+{end:.2f} s"
    )


def report(results: list[Result], args: argparse.Namespace) -> None:
    print_table_head(
        f"{args.runs} concurrent runs, each one {MODEL_SECONDS:.0f} s model call "
        f"(overhead = latency - {MODEL_SECONDS:.0f} s)",
        f"{'stack':<13} {'ok':>5} {'fail':>5} {'unfin':>5} {'wall s':>8} {'runs/s':>7} "
        f"{'p50 ovh ms':>11} {'p90 ovh ms':>11} {'p99 ovh ms':>11} {'max ovh ms':>11} "
        f"{'cpu ms/run':>10}",
    )
    for result in results:
        if result.skipped or result.sample is None:
            print(f"{result.name:<13} skipped: {result.skipped}")
            continue
        sample = result.sample
        overhead = [latency - MODEL_SECONDS for latency in sample.latencies]
        wall = f"{'>' if result.unfinished else ''}{sample.wall:.2f}"
        print(
            f"{result.name:<13} {sample.ok:>5} {sample.errors:>5} {result.unfinished:>5} "
            f"{wall:>8} "
            f"{sample.rate:>7.1f} {fmt_ms(percentile(overhead, 50)):>11} "
            f"{fmt_ms(percentile(overhead, 90)):>11} {fmt_ms(percentile(overhead, 99)):>11} "
            f"{fmt_ms(max(overhead) if overhead else float('nan')):>11} "
            f"{fmt_ms(sample.cpu_per_run):>10}"
        )
    print()
    print("where the time goes")
    for result in results:
        if result.sample is None:
            continue
        print(f"  {result.name}: {_stub_line(result)}")
        timings = result.sample.timings
        if timings:
            sent = [timing.sent - result.phase_start for timing in timings]
            print(
                f"    requests sent +0 .. +{max(sent):.2f} s (load client); "
                f"mean latency {statistics.fmean(result.sample.latencies):.2f} s"
            )
        for note in result.notes:
            print(f"    {note}")
        if result.stored_runs is not None:
            print_breakdown(
                "  relaygraph run rows", timings, result.stored_runs, model_seconds=MODEL_SECONDS
            )
    samples = {r.name: r.sample for r in results if r.sample is not None and r.sample.ok}
    walls = {name: sample.wall for name, sample in samples.items()}
    relay, durable = walls.get("relaygraph"), walls.get("bare sqlite")
    print()
    for name in ("plain sleep", "plain call", "bare memory", "bare sqlite", "relaygraph"):
        if name in walls and durable:
            cpu = ratio(samples[name].cpu_per_run, samples["bare sqlite"].cpu_per_run)
            print(
                f"wall {name:<12} {fmt_ratio(ratio(walls[name], durable)):>7} of bare sqlite "
                f"(server CPU per run {fmt_ratio(cpu)})"
            )
    if relay is not None and durable is not None:
        value = relay / durable
        verdict = "met" if value <= TARGET else "MISSED"
        stretch = "met" if value <= STRETCH else "not met"
        print(
            f"target: relaygraph wall {value:.2f}x of bare sqlite (target <= {TARGET:.2f}x): "
            f"{verdict}; stretch <= {STRETCH:.2f}x: {stretch}"
        )
        mine = next((r for r in results if r.name == "relaygraph"), None)
        if mine and mine.sample and (mine.sample.errors or mine.unfinished):
            print(
                f"  (relaygraph: {mine.sample.errors} failed, {mine.unfinished} unfinished at "
                "the deadline: its wall time is a lower bound)"
            )


async def run_benchmark(args: argparse.Namespace) -> None:
    print(
        f"{environment_note(PACKAGES)}\n"
        f"{args.runs} runs at once per stack; model call {MODEL_SECONDS:.0f} s via "
        f"{args.model_client}"
        + (" (HTTP stub in its own process)" if args.model_client != "sleep" else ""),
        flush=True,
    )
    started = time.monotonic()
    results: list[Result] = []
    async with bench_servers("relaygraph-slow-bench-") as (root, servers):
        stub_port = free_port()
        stub_command = python_module(
            "benchmarks._api_stub", "--port", str(stub_port), "--delay", str(MODEL_SECONDS)
        )
        stub = await servers.start(
            "stub",
            stub_command,
            port=stub_port,
            ready_path="/ok",
            env=base_env(),
        )
        bare = [
            ("plain sleep", "FastAPI endpoint: asyncio.sleep(2)", "none", plain_sleep),
            ("plain call", "FastAPI endpoint: the stub call, no graph", "none", plain_call),
            ("bare memory", "FastAPI + LangGraph + InMemorySaver", "memory", bare_graph),
            ("bare sqlite", "FastAPI + LangGraph + AsyncSqliteSaver", "sqlite", bare_graph),
        ]
        for name, description, saver, make in bare:
            if name in args.skip:
                continue
            try:
                result = await bench_bare(
                    servers, stub, root, args,
                    name=name, description=description, saver=saver, make=make,
                )  # fmt: skip
                results.append(result)
            except (ServerError, RuntimeError, TimeoutError, OSError) as exc:
                print(f"  {name} failed: {exc}", flush=True)
                results.append(Result(name, description, skipped=f"failed: {exc}"))
        if "relaygraph" not in args.skip:
            try:
                results.append(await bench_relaygraph(servers, stub, root, args))
            except (ServerError, RuntimeError, TimeoutError, OSError) as exc:
                print(f"  relaygraph failed: {exc}", flush=True)
                results.append(Result("relaygraph", "", skipped=f"failed: {exc}"))
    report(results, args)
    print(f"(benchmark took {time.monotonic() - started:.0f} s)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.concurrent_slow_runs",
        description="N concurrent runs, each one 2 s model call: relaygraph vs bare stacks.",
    )
    parser.add_argument("--runs", type=int, default=None, help="default 1000 (quick 100)")
    parser.add_argument("--quick", action="store_true", help="100 runs (under a minute)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="relaygraph serve --workers (default: --runs, so every run can execute at once)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=("plain sleep", "plain call", "bare memory", "bare sqlite", "relaygraph"),
        help="leave a stack out (repeatable)",
    )
    parser.add_argument(
        "--model-client",
        choices=("aiohttp", "httpx", "sleep"),
        default=None,
        help="how graph nodes and 'plain call' make the model call: aiohttp (default when "
        "installed), httpx (what the OpenAI SDK uses; its connection pool costs O(open "
        "connections) per request, so at 1,000 calls at once it dominates every stack), or "
        "sleep (no HTTP: asyncio.sleep)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="seconds each stack gets for all its runs; the rest count as unfinished "
        "(default 150, quick 20)",
    )
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 100 if args.quick else 1000
    if args.deadline is None:
        args.deadline = 20.0 if args.quick else 150.0
    if args.model_client is None:
        args.model_client = "aiohttp" if client_kind() == "aiohttp" else "httpx"
    if args.runs < 1 or (args.workers is not None and args.workers < 1):
        parser.error("--runs and --workers must be >= 1")
    if args.deadline <= 0:
        parser.error("--deadline must be > 0")
    return args


if __name__ == "__main__":
    sys.exit(run_main(parse_args(), run_benchmark))
