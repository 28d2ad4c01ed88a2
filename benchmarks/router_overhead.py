"""What the model router adds per call, against the same client library calling the same
stub directly, measured in the same run.

* Sequential: ``--calls`` calls per side to the stub's instant endpoint, interleaved in
  rounds so machine drift hits every side alike; the median per-call latency and the
  median added by the router (routing, token estimate, budget check, cache lookup,
  usage row) are printed.
* Concurrent: ``--concurrent`` calls at once, each taking ``--delay`` s at the stub; wall
  time through the router versus direct (target ≤ 1.2x; langchain-openai itself is
  CPU-heavy on 2 cores, so compare rather than assume ``--delay``).

Sides: ``direct`` (``ChatOpenAI``, its retries off), ``router`` (usage rows batched into
SQLite, spend budgets on) and ``router+cache`` (also the SQL response cache: a lookup
and, on a miss, a write per call). The stub (``benchmarks._api_stub``) runs in its own
process so that it does not share this one's GIL.

    python -m benchmarks.router_overhead [--calls 200] [--concurrent 1000] [--delay 2]

A benchmark, not a test: it exits 0 whatever the ratios are.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from providers.budgets import SpendBudgets, SpendLimits
from providers.cache import ResponseCache
from providers.factory import ProviderSettings, build_router
from providers.retry import RetryPolicy
from providers.router import CallInfo, RouterChatModel, RouterServices
from providers.usage import UsageRecorder
from store import Database, migrate

Call = Callable[[int], Awaitable[Any]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_stub(port: int, delay: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "benchmarks._api_stub", "--port", str(port)]
    process = subprocess.Popen([*command, "--delay", str(delay)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ok", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the stub did not start")


def direct_model(base_url: str) -> ChatOpenAI:
    return ChatOpenAI(
        model="stub",
        base_url=base_url,
        api_key="not-needed",  # type: ignore[arg-type]
        max_retries=0,
        timeout=120,
        http_async_client=openai.DefaultAsyncHttpxClient(),
    )


def router_model(base_url: str, db: Database, *, cache: bool) -> RouterChatModel:
    recorder = UsageRecorder(db)
    services = RouterServices(
        recorder=recorder,
        budgets=SpendBudgets(db, SpendLimits(user_daily=1e6, tenant_monthly=1e6), recorder),
        cache=ResponseCache(db, ttl_seconds=3600) if cache else None,
        retry=RetryPolicy(max_retries=0),
        attempt_timeout_seconds=120,
    )
    return build_router(
        f"openai-compatible:stub@{base_url}", {}, ProviderSettings(timeout_seconds=120),
        services=services,
    )  # fmt: skip


def caller(model: Any, routed: bool, tag: str) -> Call:
    async def call(i: int) -> Any:
        messages = [HumanMessage(f"{tag} question {i}")]  # distinct: every cache lookup misses
        if routed:
            info = CallInfo(tenant="bench", user=f"user-{i % 50}", run_id=f"run-{i}", node="model")
            return await model.ainvoke(messages, call=info)
        return await model.ainvoke(messages)

    return call


async def sequential(sides: dict[str, Call], calls: int, rounds: int = 5) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in sides}
    per_round = max(calls // rounds, 1)
    counter = 0
    for _ in range(rounds):
        for name, call in sides.items():
            for _ in range(per_round):
                counter += 1
                started = time.perf_counter()
                await call(counter)
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


async def concurrent(call: Call, count: int, offset: int) -> tuple[float, float]:
    """Wall seconds, and this process's CPU ms per call (less disturbed by other load on
    the machine than wall time; the stub runs in another process)."""
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(call(offset + i) for i in range(count)))
    return time.perf_counter() - started, (time.process_time() - cpu) * 1000 / count


async def main(args: argparse.Namespace) -> None:
    fast_port, slow_port = free_port(), free_port()
    stubs = [start_stub(fast_port, 0.0), start_stub(slow_port, args.delay)]
    fast_url = f"http://127.0.0.1:{fast_port}/fast/v1"
    slow_url = f"http://127.0.0.1:{slow_port}/v1"
    print(
        f"router overhead: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"langchain-openai {_version('langchain-openai')}; stub in its own process",
        flush=True,
    )
    models: list[Any] = []
    try:
        with tempfile.TemporaryDirectory(prefix="relaygraph-router-bench-") as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            migrate(url)
            db = Database(url)
            try:
                fast = {
                    "direct": caller(direct_model(fast_url), False, "d"),
                    "router": caller(router_model(fast_url, db, cache=False), True, "r"),
                    "router+cache": caller(router_model(fast_url, db, cache=True), True, "c"),
                }
                for call in fast.values():  # warm-up: imports, pools, SQLite pages
                    for i in range(20):
                        await call(-1 - i)
                medians = await sequential(fast, args.calls)
                base = medians["direct"]
                print(f"\nsequential, {args.calls} calls per side (median ms per call):")
                for name, value in medians.items():
                    extra = (
                        ""
                        if name == "direct"
                        else f"  (+{value - base:.2f} ms, {value / base:.2f}x)"
                    )
                    print(f"  {name:13s} {value:7.2f}{extra}")

                print(f"\n{args.concurrent} concurrent calls, {args.delay:g} s each at the stub:")
                slow = {
                    "direct": caller(direct_model(slow_url), False, "D"),
                    "router": caller(router_model(slow_url, db, cache=False), True, "R"),
                    "router+cache": caller(router_model(slow_url, db, cache=True), True, "C"),
                }
                walls: dict[str, float] = {}
                cpus: dict[str, float] = {}
                for position, (name, call) in enumerate(slow.items()):
                    await call(10_000_000 + position)  # warm the slow pool's first connection
                    walls[name], cpus[name] = await concurrent(
                        call, args.concurrent, position * 100_000
                    )
                    ratio = walls[name] / walls["direct"]
                    cpu_ratio = cpus[name] / cpus["direct"]
                    note = (
                        ""
                        if name == "direct"
                        else f"  ratio {ratio:.2f}x (target <= 1.2x), CPU {cpu_ratio:.2f}x"
                    )
                    print(
                        f"  {name:13s} {walls[name]:6.2f} s wall, {cpus[name]:5.2f} ms CPU/call"
                        f"{note}",
                        flush=True,
                    )
                models.extend([*fast.values(), *slow.values()])
            finally:
                await db.dispose()
    finally:
        for process in stubs:
            process.terminate()
            process.wait(10)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.router_overhead")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=2.0)
    asyncio.run(main(parser.parse_args()))
