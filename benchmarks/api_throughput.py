"""API throughput: relaygraph vs a bare FastAPI + LangGraph app vs ``langgraph dev``.

``python -m benchmarks.api_throughput [--quick] [--no-langgraph-dev]``

One "run" is what a LangGraph Server client does for a fresh conversation:
``POST /threads`` then ``POST /threads/{id}/runs/wait`` on a trivial 3-node graph
(``benchmarks._api_graph:graph``, state ``{"n": int}``). Each stack serves it from
its own subprocess on 127.0.0.1:

- relaygraph: ``relaygraph serve`` with auth on (an API key made beforehand), its
  SQL run queue with in-process workers, the event log, SQLite checkpoints, and
  a rate limit set high enough not to interfere;
- bare: FastAPI + LangGraph + ``AsyncSqliteSaver`` (``benchmarks._api_bare``), the
  run executed inside the request; ``POST /threads`` only makes an id;
- ``langgraph dev`` (``langgraph-cli[inmem]``, installed into a throwaway venv): its
  in-memory queue and checkpointer.

Latency is per run (both requests). The sequential phase runs one at a time, relaygraph
and bare in alternating blocks of ``BLOCK`` runs (ABBA order), so that both meet the
same machine: on these shared machines the load drifts within seconds, and measuring
one stack after the other moved the ratio between 1.3x and 2.1x from run to run. The
concurrent phase starts all its runs at once, one stack at a time (the others idle).
``langgraph dev`` (about a second per run) is measured alone after them. For
relaygraph the store's run rows give where the time went (submit, queue, execute,
return). Exits 0 whether or not
the target is met; every subprocess is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._api_load import (
    LoadClient,
    Sample,
    Timing,
    fmt_ms,
    fmt_ratio,
    print_table_head,
    ratio,
)
from benchmarks._api_proc import (
    REPO_ROOT,
    Server,
    ServerError,
    Servers,
    base_env,
    bench_servers,
    environment_note,
    free_port,
    run_main,
    start_bare,
)
from benchmarks._api_relay import print_breakdown, run_times, start_relay

TARGET = 1.5  # relaygraph latency within 1.5x of the bare baseline's
BLOCK = 20  # sequential runs per stack before switching to the other
LANGGRAPH_DEV_SPEC = "langgraph-cli[inmem]"
PACKAGES = ("langgraph", "langgraph-checkpoint-sqlite", "fastapi", "uvicorn")
REQUEST_TIMEOUT = 120.0
PHASE_TIMEOUT = 240.0


@dataclass
class Stack:
    name: str
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""
    samples: dict[str, Sample] = field(default_factory=dict)
    timings: dict[str, list[Timing]] = field(default_factory=dict)
    skipped: str | None = None
    server: Server | None = None
    """Its process, for the CPU it uses."""
    data_dir: Path | None = None
    """relaygraph's data directory, for the per-run breakdown from its store."""


RunOnce = Callable[[LoadClient], Awaitable[Timing]]


def run_once_for(stack: Stack) -> RunOnce:
    async def run_once(client: LoadClient) -> Timing:
        sent = time.time()
        thread = await client.post(f"{stack.base_url}/threads", {}, headers=stack.headers)
        thread_id = thread["thread_id"]
        wait_sent = time.time()
        values = await client.post(
            f"{stack.base_url}/threads/{thread_id}/runs/wait",
            {"assistant_id": "trivial", "input": {"n": 0}},
            headers=stack.headers,
        )
        received = time.time()
        if not isinstance(values, dict) or values.get("n") != 3:
            raise RuntimeError(f"unexpected final values {str(values)[:200]}")
        # Latency is the whole run (both requests); the breakdown starts at runs/wait.
        return Timing(thread_id, wait_sent, received, begun=sent)

    return run_once


async def sequential(client: LoadClient, run_once: RunOnce, count: int, label: str) -> Sample:
    latencies: list[float] = []
    timings: list[Timing] = []
    errors = 0
    first_error = None
    started = time.perf_counter()
    for _ in range(count):
        try:
            timing = await asyncio.wait_for(run_once(client), REQUEST_TIMEOUT)
        except Exception as exc:  # counted and shown, the phase goes on
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
            continue
        timings.append(timing)
        latencies.append(timing.latency)
    return Sample(label, latencies, time.perf_counter() - started, errors, first_error, timings)


async def concurrent(client: LoadClient, run_once: RunOnce, count: int, label: str) -> Sample:
    async def guarded() -> Timing:
        return await asyncio.wait_for(run_once(client), REQUEST_TIMEOUT)

    started = time.perf_counter()
    results = await asyncio.gather(*(guarded() for _ in range(count)), return_exceptions=True)
    wall = time.perf_counter() - started
    timings = [result for result in results if isinstance(result, Timing)]
    failures = [result for result in results if isinstance(result, BaseException)]
    first_error = f"{type(failures[0]).__name__}: {failures[0]}" if failures else None
    latencies = [timing.latency for timing in timings]
    return Sample(label, latencies, wall, len(failures), first_error, timings)


def _cpu(stack: Stack) -> Callable[[], float]:
    return stack.server.cpu_seconds if stack.server else (lambda: math.nan)


def _print_sample(stack: Stack, sample: Sample) -> None:
    stack.timings[sample.label] = sample.timings
    status = f"{sample.ok} ok" + (f", {sample.errors} failed" if sample.errors else "")
    print(
        f"  {stack.name} {sample.label}: {status} in {sample.wall:.2f} s "
        f"(p50 {fmt_ms(sample.p(50))} ms; server CPU {fmt_ms(sample.cpu_per_run)} ms/run)",
        flush=True,
    )
    if sample.first_error:
        print(f"    first error: {sample.first_error}")


async def warm_up(stack: Stack, client: LoadClient, args: argparse.Namespace) -> None:
    for _ in range(args.warmup):
        await asyncio.wait_for(run_once_for(stack)(client), REQUEST_TIMEOUT)


async def measure_sequential(stacks: list[Stack], count: int) -> None:
    """``count`` sequential runs per stack, the stacks taking turns in blocks of ``BLOCK``
    (order reversed every block), so that a change of machine load meets them alike."""
    merged: dict[str, Sample] = {
        stack.name: Sample("sequential", [], 0.0, server_cpu=0.0) for stack in stacks
    }
    async with LoadClient(timeout=REQUEST_TIMEOUT) as client:
        for index, first in enumerate(range(0, count, BLOCK)):
            size = min(BLOCK, count - first)
            for stack in stacks if index % 2 == 0 else stacks[::-1]:
                cpu = _cpu(stack)
                before = cpu()
                block = await asyncio.wait_for(
                    sequential(client, run_once_for(stack), size, "sequential"), PHASE_TIMEOUT
                )
                total = merged[stack.name]
                total.server_cpu += cpu() - before
                total.wall += block.wall
                total.latencies += block.latencies
                total.timings += block.timings
                total.errors += block.errors
                total.first_error = total.first_error or block.first_error
    for stack in stacks:
        stack.samples["sequential"] = merged[stack.name]
        _print_sample(stack, merged[stack.name])


async def measure_concurrent(stack: Stack, args: argparse.Namespace) -> None:
    async with LoadClient(timeout=REQUEST_TIMEOUT) as client:
        cpu = _cpu(stack)
        before = cpu()
        sample = await asyncio.wait_for(
            concurrent(client, run_once_for(stack), args.concurrent, "concurrent"),
            PHASE_TIMEOUT,
        )
        sample.server_cpu = cpu() - before
    stack.samples["concurrent"] = sample
    _print_sample(stack, sample)


async def measure_alone(stack: Stack, args: argparse.Namespace, *, sequential_count: int) -> None:
    async with LoadClient(timeout=REQUEST_TIMEOUT) as client:
        await warm_up(stack, client, args)
    await measure_sequential([stack], sequential_count)
    await measure_concurrent(stack, args)


# --- the stacks ----------------------------------------------------------------------------


async def start_relaygraph(servers: Servers, root: Path, args: argparse.Namespace) -> Stack:
    relay = await start_relay(servers, root, workers=args.workers)
    stack = Stack(
        "relaygraph",
        relay.api,
        relay.headers,
        note=f"relaygraph serve --workers {args.workers}; auth on (API key); SQLite store "
        "+ checkpoints; started in "
        f"{relay.server.started_in:.1f} s",
        server=relay.server,
        data_dir=relay.data_dir,
    )
    print(f"- {stack.note}", flush=True)
    return stack


async def start_bare_stack(servers: Servers, root: Path, args: argparse.Namespace) -> Stack:
    server = await start_bare(servers, root, name="bare", saver="sqlite", graph="trivial")
    stack = Stack(
        "bare",
        server.base_url,
        note=f"FastAPI + LangGraph + AsyncSqliteSaver in one uvicorn process; started in "
        f"{server.started_in:.1f} s",
        server=server,
    )
    print(f"- {stack.note}", flush=True)
    return stack


async def bench_against_bare(servers: Servers, root: Path, args: argparse.Namespace) -> list[Stack]:
    """relaygraph and bare: sequential interleaved, then each one's concurrent phase."""
    stacks: list[Stack] = []
    for name, start in (("relaygraph", start_relaygraph), ("bare", start_bare_stack)):
        try:
            stacks.append(await start(servers, root, args))
        except (ServerError, RuntimeError, TimeoutError, OSError) as exc:
            print(f"  {name} failed to start: {exc}", flush=True)
            stacks.append(Stack(name, "", skipped=f"failed: {str(exc)[:200]}"))
    running = [stack for stack in stacks if not stack.skipped]
    try:
        async with LoadClient(timeout=REQUEST_TIMEOUT) as client:
            for stack in running:
                await warm_up(stack, client, args)
        print(
            f"  sequential: {' and '.join(stack.name for stack in running)} in turns of "
            f"{BLOCK} runs",
            flush=True,
        )
        await measure_sequential(running, args.sequential)
        for stack in running:
            await measure_concurrent(stack, args)
        for stack in running:
            if stack.data_dir is None:
                continue
            stored = run_times(stack.data_dir)
            for label, timings in stack.timings.items():
                print_breakdown(
                    f"{stack.name} {label}: where runs/wait spent its time", timings, stored
                )
    except (ServerError, RuntimeError, TimeoutError, OSError) as exc:
        print(f"  measuring failed: {exc}", flush=True)
        for stack in running:
            stack.skipped = stack.skipped or f"failed: {str(exc)[:200]}"
    finally:
        for stack in running:
            if stack.server is not None:
                servers.stop(stack.server)
    return stacks


def _install_langgraph_dev(venv: Path) -> str | None:
    """Make ``venv`` with ``langgraph-cli[inmem]``; None on success, else why not."""
    langgraph = venv / "bin" / "langgraph"
    if langgraph.exists():
        return None
    started = time.monotonic()
    print(f"  installing {LANGGRAPH_DEV_SPEC} into {venv} (about a minute)...", flush=True)
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
             "--disable-pip-version-check", LANGGRAPH_DEV_SPEC],
            check=True,
            capture_output=True,
            timeout=600,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-5:]
        return f"installing {LANGGRAPH_DEV_SPEC} failed: {' / '.join(tail) or exc}"
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"installing {LANGGRAPH_DEV_SPEC} failed: {exc}"
    if not langgraph.exists():
        return f"{LANGGRAPH_DEV_SPEC} installed no `langgraph` command"
    print(f"  installed in {time.monotonic() - started:.0f} s", flush=True)
    return None


def _langgraph_dev_versions(venv: Path) -> str:
    try:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c",
             "from importlib.metadata import version as v; "
             "print(f\"langgraph-cli {v('langgraph-cli')}, langgraph-api {v('langgraph-api')}\")"],
            capture_output=True,
            timeout=60,
            check=True,
        )  # fmt: skip
        return done.stdout.decode().strip()
    except (subprocess.SubprocessError, OSError):
        return "versions unknown"


async def bench_langgraph_dev(servers: Servers, root: Path, args: argparse.Namespace) -> Stack:
    venv = Path(args.langgraph_dev_venv) if args.langgraph_dev_venv else root / "lgdev-venv"
    why_not = await asyncio.to_thread(_install_langgraph_dev, venv)
    if why_not:
        print(f"  skipping langgraph dev: {why_not}", flush=True)
        return Stack("langgraph dev", "", skipped=why_not)
    project = root / "lgdev-project"
    project.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "benchmarks" / "_api_graph.py", project / "_api_graph.py")
    (project / "langgraph.json").write_text(
        json.dumps({"dependencies": ["."], "graphs": {"trivial": "./_api_graph.py:graph"}})
    )
    port = free_port()
    env = base_env(
        {
            "LANGSMITH_TRACING": "false",
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv / 'bin'}:{base_env().get('PATH', '')}",
        }
    )
    env.pop("PYTHONPATH", None)  # its own venv; nothing of relaygraph's
    command = [
        str(venv / "bin" / "langgraph"), "dev", "--no-browser", "--no-reload",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    try:
        server = await servers.start(
            "langgraph-dev", command, port=port, ready_path="/ok", env=env, cwd=project,
            ready_timeout=120,
        )  # fmt: skip
    except ServerError as exc:
        print(f"  skipping langgraph dev: it did not start: {exc}", flush=True)
        return Stack("langgraph dev", "", skipped="it did not start")
    stack = Stack(
        "langgraph dev",
        server.base_url,
        note=f"{_langgraph_dev_versions(venv)}; in-memory queue; started in "
        f"{server.started_in:.1f} s",
        server=server,
    )
    print(f"- langgraph dev: {stack.note}", flush=True)
    if args.lgdev_sequential < args.sequential:
        print(
            f"  (sequential sample cut to {args.lgdev_sequential} runs: ~0.75 s each; "
            "--lgdev-sequential N for more)",
            flush=True,
        )
    try:
        await measure_alone(stack, args, sequential_count=args.lgdev_sequential)
    finally:
        servers.stop(server)
    return stack


# --- report --------------------------------------------------------------------------------


def report(stacks: list[Stack], args: argparse.Namespace) -> None:
    print_table_head(
        f"create thread + runs/wait on a trivial 3-node graph; sequential: one at a time, "
        f"concurrent: {args.concurrent} at once",
        f"{'stack':<14} {'phase':<11} {'runs':>5} {'fail':>5} {'wall s':>7} {'runs/s':>8} "
        f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'cpu ms/run':>10}",
    )
    for stack in stacks:
        if stack.skipped:
            print(f"{stack.name:<14} skipped: {stack.skipped}")
            continue
        for label in ("sequential", "concurrent"):
            sample = stack.samples.get(label)
            if sample is None:
                continue
            print(
                f"{stack.name:<14} {label:<11} {sample.ok:>5} {sample.errors:>5} "
                f"{sample.wall:>7.2f} {sample.rate:>8.1f} {fmt_ms(sample.p(50)):>8} "
                f"{fmt_ms(sample.p(90)):>8} {fmt_ms(sample.p(99)):>8} "
                f"{fmt_ms(sample.cpu_per_run):>10}"
            )
    by_name = {stack.name: stack for stack in stacks if not stack.skipped and stack.samples}
    bare = by_name.get("bare")
    if bare is None:
        return
    print_table_head(
        "ratios against bare (latency: higher is slower; runs/s: bare / stack; server CPU "
        "per run, which a busy machine disturbs least)",
        f"{'stack':<14} {'phase':<11} {'p50':>7} {'p90':>7} {'p99':>7} {'runs/s':>7} {'cpu':>7}",
    )
    for name in ("relaygraph", "langgraph dev"):
        other = by_name.get(name)
        if other is None:
            continue
        for label in ("sequential", "concurrent"):
            mine, base = other.samples[label], bare.samples[label]
            print(
                f"{name:<14} {label:<11} {fmt_ratio(ratio(mine.p(50), base.p(50))):>7} "
                f"{fmt_ratio(ratio(mine.p(90), base.p(90))):>7} "
                f"{fmt_ratio(ratio(mine.p(99), base.p(99))):>7} "
                f"{fmt_ratio(ratio(base.rate, mine.rate)):>7} "
                f"{fmt_ratio(ratio(mine.cpu_per_run, base.cpu_per_run)):>7}"
            )
    relay = by_name.get("relaygraph")
    if relay is not None:
        print()
        for label in ("sequential", "concurrent"):
            value = ratio(relay.samples[label].p(50), bare.samples[label].p(50))
            verdict = "met" if value <= TARGET else "MISSED"
            print(
                f"target {label}: relaygraph p50 latency {fmt_ratio(value)} of bare "
                f"(target <= {TARGET:.1f}x): {verdict}"
            )


async def run_benchmark(args: argparse.Namespace) -> None:
    print(
        f"{environment_note(PACKAGES)}\n"
        f"runs: {args.sequential} sequential, {args.concurrent} concurrent, "
        f"{args.warmup} warm-up per stack",
        flush=True,
    )
    started = time.monotonic()
    stacks: list[Stack] = []
    async with bench_servers("relaygraph-api-bench-") as (root, servers):
        stacks += await bench_against_bare(servers, root, args)
        if args.langgraph_dev:
            try:
                stacks.append(await bench_langgraph_dev(servers, root, args))
            except (ServerError, RuntimeError, TimeoutError, OSError) as exc:
                print(f"  langgraph dev failed: {exc}", flush=True)
                stacks.append(Stack("langgraph dev", "", skipped=f"failed: {exc}"))
        else:
            stacks.append(Stack("langgraph dev", "", skipped=args.lgdev_skip_reason))
    report(stacks, args)
    print(f"(benchmark took {time.monotonic() - started:.0f} s)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.api_throughput",
        description="HTTP runs/s and latency: relaygraph vs bare FastAPI+LangGraph vs "
        "langgraph dev.",
    )
    parser.add_argument("--quick", action="store_true", help="small counts (under a minute)")
    parser.add_argument("--sequential", type=int, default=None, help="default 200 (quick 30)")
    parser.add_argument("--concurrent", type=int, default=None, help="default 100 (quick 30)")
    parser.add_argument("--warmup", type=int, default=None, help="default 5 (quick 2)")
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="relaygraph serve --workers (in-process run concurrency; default 4, its own default)",
    )
    parser.add_argument(
        "--no-langgraph-dev",
        dest="langgraph_dev",
        action="store_false",
        help="skip the langgraph dev baseline (and its ~1 minute install)",
    )
    parser.add_argument(
        "--langgraph-dev-venv",
        default=None,
        help="reuse (or create and keep) this venv for langgraph dev instead of a "
        "throwaway one; with --quick, langgraph dev runs only when this is given",
    )
    parser.add_argument(
        "--lgdev-sequential",
        type=int,
        default=None,
        help="sequential runs against langgraph dev (default 50, quick 10): each takes "
        "~0.75 s there",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "sequential": 30 if quick else 200,
        "concurrent": 30 if quick else 100,
        "warmup": 2 if quick else 5,
        "lgdev_sequential": 10 if quick else 50,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.lgdev_sequential = min(args.lgdev_sequential, args.sequential)
    args.lgdev_skip_reason = "--no-langgraph-dev"
    if quick and args.langgraph_dev and not args.langgraph_dev_venv:
        args.langgraph_dev = False
        args.lgdev_skip_reason = (
            "--quick without --langgraph-dev-venv (its install alone takes about a minute)"
        )
    if min(args.sequential, args.concurrent, args.lgdev_sequential) < 1 or args.warmup < 0:
        parser.error("counts must be >= 1, --warmup >= 0")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    return args


if __name__ == "__main__":
    sys.exit(run_main(parse_args(), run_benchmark))
