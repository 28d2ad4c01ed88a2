"""Per-step overhead of relaygraph's agent loop against bare LangGraph.

Both sides run the same conversation: one user message, then N iterations of
"model proposes one tool call → the tool answers", then a final model answer.
A run therefore does 2N+1 *steps* (N+1 model calls + N tool executions); that
count is the denominator on both sides. Our graph also runs a ``gate`` node per
iteration and a ``finish`` node; that is part of our overhead, not extra steps.

* baseline: a bare ``StateGraph`` (messages with ``add_messages``, trivial async
  model and tool nodes producing the same AIMessage/ToolMessage shapes), compiled
  once with ``AsyncSqliteSaver`` from ``graphs.checkpointer.sqlite_checkpointer``
  on a file in a temp dir; ``ainvoke`` on a new thread per run.
* ours: ``Runner(system).run(RunRequest(...))`` on a system whose data dir is a
  temp dir, with the scripted model ``scripted:benchmarks._turns:turn``. Variants:
  the read tool ``notes_search`` (no ledger row, one SQL query), the write tool
  ``notes_create`` (ledger row + note in one transaction), and ``bench_noop``, a
  read tool registered by this benchmark that does no I/O: it isolates the
  runtime's own cost (gate, executor, checkpoints, events, run rows) from the
  work of a real tool, which the trivial baseline tool does not do either.

Each configuration is warmed up, then the repetitions are interleaved (one run of
every configuration per round) so that machine drift hits all of them alike.
Reported: the median wall time per run, ms/step, and the ratio ours / baseline
for each variant and durability. Unless ``--no-fixed`` is given it also times
N=0 runs (a single model call) to split the per-run fixed cost from the marginal
cost per step.

    python -m benchmarks.step_overhead [--iterations 20] [--repeats 7] [--quick]

It is a benchmark, not a test: it exits 0 whatever the ratios are.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import BaseModel, ConfigDict

from benchmarks._turns import bench_input
from graphs.checkpointer import sqlite_checkpointer
from identity import local_principal
from providers.scripted import build_scripted_model
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import System, open_system
from tools import ToolContext, ToolSpec

TARGET = 1.30
MODEL_SPEC = "scripted:benchmarks._turns:turn"
DURABILITIES: tuple[Literal["async", "sync"], ...] = ("async", "sync")
VARIANTS = {"read-tool": "notes_search", "write-tool": "notes_create", "noop-tool": "bench_noop"}

RunOnce = Callable[[int], Awaitable[None]]


class NoopInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    i: int = 0


class NoopOutput(BaseModel):
    ok: bool


async def bench_noop(ctx: ToolContext, args: NoopInput) -> NoopOutput:
    return NoopOutput(ok=True)


NOOP_TOOL = ToolSpec(
    name="bench_noop",
    description="Benchmark tool: does nothing.",
    input_model=NoopInput,
    output_model=NoopOutput,
    handler=bench_noop,
    risk="read",
    scope="notes:read",
    idempotent=True,
)


# --- baseline: bare LangGraph ------------------------------------------------------------


class BareState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


BARE_MODEL = build_scripted_model("benchmarks._turns:turn")


async def bare_model(state: BareState) -> dict[str, Any]:
    """The same chat model, called the same way (the model is not the loop's overhead)."""
    return {"messages": [await BARE_MODEL.ainvoke(state["messages"])]}


async def bare_tool(state: BareState) -> dict[str, Any]:
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    return {
        "messages": [
            ToolMessage(
                content=json.dumps({"notes": []}),
                tool_call_id=call["id"],
                name=call["name"],
                status="success",
            )
            for call in last.tool_calls
        ]
    }


def bare_route(state: BareState) -> Literal["tool", "__end__"]:
    last = state["messages"][-1]
    return "tool" if isinstance(last, AIMessage) and last.tool_calls else "__end__"


def build_bare_graph(checkpointer: Any) -> Any:
    builder = StateGraph(BareState)
    builder.add_node("model", bare_model)
    builder.add_node("tool", bare_tool)
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", bare_route)
    builder.add_edge("tool", "model")
    return builder.compile(checkpointer=checkpointer, name="bare")


# --- configurations ----------------------------------------------------------------------


@dataclass
class Config:
    side: Literal["baseline", "ours"]
    variant: str  # "bare", "read-tool" or "write-tool"
    durability: Literal["async", "sync"]
    run_once: RunOnce
    times: dict[int, list[float]] = field(default_factory=dict)
    cpu: dict[int, list[float]] = field(default_factory=dict)
    nodes: int | None = None  # node executions of one run at --iterations (ours only)

    @property
    def label(self) -> str:
        return f"{self.side} {self.variant} {self.durability}"


def baseline_runner(graph: Any, durability: Literal["async", "sync"]) -> RunOnce:
    async def run_once(iterations: int) -> None:
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        message = HumanMessage(bench_input("notes_search", iterations), id=str(uuid.uuid4()))
        result = await graph.ainvoke({"messages": [message]}, config, durability=durability)
        expected = 2 * iterations + 2  # human + (ai, tool) * N + final ai
        if len(result["messages"]) != expected:
            raise RuntimeError(f"baseline: {len(result['messages'])} messages, not {expected}")

    return run_once


def ours_runner(system: System, tool: str, durability: Literal["async", "sync"]) -> RunOnce:
    runner = Runner(system)
    principal = local_principal()

    async def run_once(iterations: int) -> None:
        request = RunRequest(
            principal=principal,
            input_text=bench_input(tool, iterations),
            limits={
                "max_steps": iterations + 10,
                "max_tool_calls": iterations + 10,
                "max_wall_seconds": 600,
            },
            durability=durability,
        )
        summary = await runner.run(request)
        if summary.status != "success":
            raise RuntimeError(f"ours ({tool}): run ended {summary.status}: {summary.error}")

    return run_once


async def check_ours(system: System, tool: str, iterations: int) -> int:
    """One run through ``Runner.stream``: count node executions and check every tool call
    succeeded (a gate refusal or approval would make the benchmark meaningless)."""
    runner = Runner(system)
    request = RunRequest(
        principal=local_principal(),
        input_text=bench_input(tool, iterations),
        limits={"max_steps": iterations + 10, "max_tool_calls": iterations + 10},
    )
    nodes = 0
    summary = None
    async for event in runner.stream(request):
        if event["event"] == "updates":
            nodes += 1
        elif event["event"] == "end":
            summary = event["summary"]
    assert summary is not None
    if summary.status != "success":
        raise RuntimeError(f"ours ({tool}): check run ended {summary.status}: {summary.error}")
    graph = system.graphs.get("agent").compile(system.checkpointer)
    state = await graph.aget_state({"configurable": {"thread_id": summary.thread_id}})
    results = [m for m in state.values["messages"] if isinstance(m, ToolMessage)]
    failed = [m for m in results if m.status != "success"]
    if len(results) != iterations or failed:
        detail = failed[0].content if failed else f"{len(results)} tool results"
        raise RuntimeError(f"ours ({tool}): tool calls did not all succeed: {detail}")
    return nodes


# --- measurement -------------------------------------------------------------------------


async def timed(run_once: RunOnce, iterations: int) -> tuple[float, float]:
    """Wall time and this process's CPU time (all threads: SQLite work included). CPU
    time is far less disturbed by other load on a shared machine."""
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    await run_once(iterations)
    return time.perf_counter() - start, time.process_time() - cpu


async def measure(
    configs: list[Config], iterations: int, repeats: int, warmup: int, fixed: bool
) -> None:
    sizes = [iterations, 0] if fixed else [iterations]
    for config in configs:
        for _ in range(warmup):
            for size in sizes:
                await config.run_once(size)
    for round_ in range(repeats):
        # Rotate the order every round so no configuration always runs first.
        shift = round_ % len(configs)
        for config in configs[shift:] + configs[:shift]:
            for size in sizes:
                wall, cpu = await timed(config.run_once, size)
                config.times.setdefault(size, []).append(wall)
                config.cpu.setdefault(size, []).append(cpu)


def versions() -> str:
    names = ("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite", "langchain-core")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} ?")
    return ", ".join(found)


def core_count() -> str:
    total = os.cpu_count()
    usable: int | None = total
    if hasattr(os, "sched_getaffinity"):
        usable = len(os.sched_getaffinity(0))
    return f"{total} (usable: {usable})"


def report(configs: list[Config], iterations: int, repeats: int, fixed: bool) -> None:
    steps = 2 * iterations + 1
    median = {c.label: statistics.median(c.times[iterations]) for c in configs}
    spread = {c.label: (min(c.times[iterations]), max(c.times[iterations])) for c in configs}
    print()
    print(
        f"N={iterations} iterations -> {steps} steps per run (N+1 model calls + N tool runs); "
        f"median of {repeats} runs after warm-up"
    )
    header = f"{'configuration':<30} {'run ms':>9} {'min-max ms':>15} {'ms/step':>8}"
    if fixed:
        header += f" {'N=0 run ms':>11} {'marginal ms/step':>17}"
    header += f" {'nodes/run':>10} {'vs baseline':>12}"
    print(header)
    print("-" * len(header))
    for config in configs:
        run_ms = median[config.label] * 1000
        low, high = spread[config.label]
        line = (
            f"{config.label:<30} {run_ms:>9.1f} {f'{low * 1000:.1f}-{high * 1000:.1f}':>15} "
            f"{run_ms / steps:>8.3f}"
        )
        if fixed:
            zero_ms = statistics.median(config.times[0]) * 1000
            marginal = (run_ms - zero_ms) / (steps - 1) if steps > 1 else float("nan")
            line += f" {zero_ms:>11.1f} {marginal:>17.3f}"
        nodes = config.nodes if config.nodes is not None else steps
        base = median[f"baseline bare {config.durability}"]
        line += f" {nodes:>10} {median[config.label] / base:>11.2f}x"
        print(line)
    print()
    for config in configs:
        if config.side != "ours":
            continue
        baseline = next(c for c in configs if c.label == f"baseline bare {config.durability}")
        ratio = median[config.label] / median[baseline.label]
        line = f"ratio {config.variant} {config.durability}: whole run {ratio:.2f}x"
        if fixed:
            per_step = {
                kind: _marginal(config, kind, iterations) / _marginal(baseline, kind, iterations)
                for kind in ("wall", "cpu")
            }
            line += (
                f"; per step (marginal) wall {per_step['wall']:.2f}x, cpu {per_step['cpu']:.2f}x"
            )
        print(f"{line} (target per step <= {TARGET:.2f}x)")


def _marginal(config: Config, kind: str, iterations: int) -> float:
    """Median cost of one more loop iteration (model step + tool step), per-run costs
    (creating the run, its rows and final state) taken out with the N=0 runs."""
    series = config.times if kind == "wall" else config.cpu
    full = statistics.median(series[iterations])
    zero = statistics.median(series[0])
    return (full - zero) / iterations


async def run_benchmark(args: argparse.Namespace) -> None:
    iterations, repeats = args.iterations, args.repeats
    print(
        f"cores: {core_count()}; Python {platform.python_version()} "
        f"({platform.python_implementation()}, {sys.platform})"
    )
    print(f"versions: {versions()}")
    with tempfile.TemporaryDirectory(prefix="relaygraph-bench-") as tmp:
        root = Path(tmp)
        async with AsyncExitStack() as stack:
            saver = await stack.enter_async_context(sqlite_checkpointer(root / "baseline.db"))
            graph = build_bare_graph(saver)
            configs = [
                Config("baseline", "bare", durability, baseline_runner(graph, durability))
                for durability in DURABILITIES
            ]
            for variant, tool in VARIANTS.items():
                settings = Settings(
                    data_dir=root / variant,
                    model=MODEL_SPEC,
                    database_url=None,
                    checkpoint_url=None,
                    graphs={},
                    graphs_file=None,
                    assistants={},
                )
                system = await stack.enter_async_context(
                    open_system(settings, extra_tools=[NOOP_TOOL] if tool == NOOP_TOOL.name else [])
                )
                nodes = await check_ours(system, tool, iterations)
                for durability in DURABILITIES:
                    run_once = ours_runner(system, tool, durability)
                    configs.append(Config("ours", variant, durability, run_once, nodes=nodes))
            started = time.perf_counter()
            await measure(configs, iterations, repeats, args.warmup, args.fixed)
            elapsed = time.perf_counter() - started
    report(configs, iterations, repeats, args.fixed)
    print(f"(measured in {elapsed:.1f} s)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.step_overhead",
        description="Per-step cost of relaygraph's agent loop vs bare LangGraph + SQLite saver.",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="tool-call iterations per run (default 20; --quick: 3)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per configuration (default 7; --quick: 3)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed runs per configuration first (default 2; --quick: 1)",
    )
    parser.add_argument("--quick", action="store_true", help="small numbers for a smoke run")
    parser.add_argument(
        "--no-fixed",
        dest="fixed",
        action="store_false",
        help="skip the N=0 runs that split fixed from marginal cost",
    )
    args = parser.parse_args(argv)
    defaults = (3, 3, 1) if args.quick else (20, 7, 2)
    for name, default in zip(("iterations", "repeats", "warmup"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.iterations < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--iterations and --repeats must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    asyncio.run(run_benchmark(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
