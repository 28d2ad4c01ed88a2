"""BFCL v4 (Berkeley Function Calling Leaderboard): simple_python, multiple, irrelevance.

Read from the directory given with ``--data`` (``../shared/datasets/bfcl``; Apache-2.0,
never copied here). Each record is one question and the functions offered. The tool calls
are scored with BFCL's AST rules as the dataset README describes them (our own
implementation): exactly one call of the expected function, required arguments present, no
unknown ones, values among the acceptable ones (strings compared after BFCL's
normalisation), left-out arguments optional; for ``irrelevance``, no call at all.

Two modes:

- ``agent`` (suite ``bfcl``, the default): each record runs through the ``agent`` graph, its
  functions registered as tools (read-only fixtures that echo their arguments) behind the
  gate, on an assistant allowed exactly those tools; the calls the agent's model made
  (refused ones included) are what the AST rules and the trajectory evaluator judge. This
  measures what ships: our prompt, our strict tool schemas, the gate. Function names recur
  across records with different parameters, so a record holds its names while it runs
  (records that share a name run one after the other). Strict tool schemas spell a
  left-out optional argument as ``null``; such arguments count as left out.
- ``model`` (suite ``bfcl_model``): the model is called once through our model router with
  the functions bound, as the leaderboard does, comparable with its figures.

The ``oracle`` model answers with the first acceptable value of every argument: it checks
this adapter, the router and (agent mode) the graph and gate, not a model.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from evals.adapters._fixture_tools import Result, fixture_tool
from evals.cases import Case, SuiteError
from evals.evaluators import Score, trajectory_match
from evals.harness import tenant_usage
from evals.models import CURRENT, CaseContext
from tools import ToolContext, ToolRegistry, ToolSpec
from tools.external import input_model_for

if TYPE_CHECKING:
    from evals.runner import CaseResult
    from runtime.runs import Runner
    from runtime.system import System

Mode = Literal["agent", "model"]

CATEGORIES = ("simple_python", "multiple", "irrelevance")
_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": "string"}
_STRIP = re.compile(r"[\s,./\-_*^]")


def tool_name(name: str) -> str:
    return name.replace(".", "_")


def json_schema(node: Any) -> Any:
    """BFCL's parameter vocabulary as JSON Schema (dict→object, float→number, …)."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: json_schema(value) for key, value in node.items() if key != "optional"}
    if isinstance(out.get("type"), str):
        out["type"] = _TYPES.get(out["type"], out["type"])
    if "properties" in node:
        out["properties"] = {k: json_schema(v) for k, v in node["properties"].items()}
    return out


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return _STRIP.sub("", value).lower().replace("'", '"')
    if isinstance(value, list | tuple):
        return [_norm(item) for item in value]
    return value


def _value_ok(value: Any, candidates: list[Any]) -> bool:
    for candidate in candidates:
        if candidate == "":
            continue
        if isinstance(candidate, dict) and isinstance(value, dict):
            if all(
                key in candidate and _value_ok(item, candidate[key]) for key, item in value.items()
            ) and all(key in value or "" in vals for key, vals in candidate.items()):
                return True
        elif isinstance(value, bool) or isinstance(candidate, bool):
            if value is candidate:
                return True
        elif isinstance(value, int | float) and isinstance(candidate, int | float):
            if value == candidate:
                return True
        elif _norm(value) == _norm(candidate):
            return True
    return False


def check_calls(
    calls: list[dict[str, Any]], functions: list[dict[str, Any]], truth: list[dict[str, Any]]
) -> tuple[bool, str]:
    """BFCL's AST check of the model's ``calls`` (``{"tool", "args"}``); ``truth`` empty
    means the irrelevance rule (no call is right)."""
    if not truth:
        return (not calls, "" if not calls else f"made {len(calls)} call(s) to an unfit function")
    if len(calls) != 1:
        return False, f"wrong count: {len(calls)} calls"
    (expected_name, answer), call = next(iter(truth[0].items())), calls[0]
    if call["tool"] != tool_name(expected_name):
        return False, f"called {call['tool']}, expected {tool_name(expected_name)}"
    schema = next((f for f in functions if f["name"] == expected_name), {}).get("parameters", {})
    args = call.get("args") or {}
    missing = [p for p in schema.get("required", []) if p not in args]
    if missing:
        return False, f"missing required {missing}"
    unknown = [a for a in args if a not in answer or a not in schema.get("properties", {})]
    if unknown:
        return False, f"unknown arguments {unknown}"
    for name, value in args.items():
        if not _value_ok(value, answer[name]):
            return False, f"{name}={json.dumps(value)} not in {json.dumps(answer[name])[:120]}"
    left_out = [p for p, vals in answer.items() if p not in args and "" not in vals]
    if left_out:
        return False, f"left out {left_out}"
    return True, ""


def without_nulls(args: dict[str, Any]) -> dict[str, Any]:
    """``args`` without ``null`` values: how strict tool schemas spell a left-out optional
    argument."""
    return {key: value for key, value in args.items() if value is not None}


def input_model(name: str, parameters: dict[str, Any]) -> type[BaseModel]:
    """A model that validates arguments against the function's parameters (as JSON Schema)
    and reports that schema as its own, so the model sees BFCL's function as BFCL wrote it
    (the gate reads a strict model's ``null`` for a left-out argument as absent).

    Raises:
        ValueError: the parameters are not a valid JSON schema.
    """
    return input_model_for(name, json_schema(parameters or {"type": "dict"}))


def function_tool(function: dict[str, Any]) -> ToolSpec:
    """A BFCL function as a read-only fixture tool that echoes the call (it computes
    nothing: BFCL judges the call, not its result).

    Raises:
        ValueError: the function's name or parameters cannot be a tool.
    """
    name = tool_name(function["name"])

    async def echo(ctx: ToolContext, args: BaseModel) -> Result:
        return Result(result={"function": name, "arguments": args.model_dump(), "status": "ok"})

    return fixture_tool(
        name,
        echo,
        input_model(name, function.get("parameters") or {}),
        "read",
        str(function.get("description") or name)[:4000],
        idempotent=True,
    )


@asynccontextmanager
async def _registered(registry: ToolRegistry, specs: list[ToolSpec]) -> AsyncIterator[None]:
    """``specs`` in ``registry`` for the duration (:meth:`ToolRegistry.registered`), only
    under names no other tool holds."""
    taken = [spec.name for spec in specs if spec.name in registry]
    if taken:
        raise ValueError(f"functions {taken} have the names of registered tools")
    unique = {spec.name: spec for spec in specs}  # two functions may map to one name
    with registry.registered(unique.values()):
        yield


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise SuiteError(f"cannot read BFCL file {path}: {exc}") from exc


@dataclass
class BfclSuite:
    """A suite of BFCL records; the runner calls :meth:`run_case` for each."""

    name: str
    cases: list[Case]
    functions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    truth: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    kind: str = "bfcl"
    assistant: str = "agent"
    mode: Mode = "agent"
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)
    _runners: dict[int, Runner] = field(default_factory=dict, repr=False)
    _nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:6], repr=False)

    async def run_case(self, system: System, model: str, case: Case, trial: int) -> CaseResult:
        if self.mode == "agent":
            return await self._run_agent(system, case, trial)
        return await self._run_model(system, model, case, trial)

    async def _run_agent(self, system: System, case: Case, trial: int) -> CaseResult:
        """The record through the agent graph, its functions as tools behind the gate."""
        from evals.harness import EVAL_USER
        from evals.runner import CaseResult, _calls_and_results
        from identity import local_principal
        from runtime.assistants import AssistantService
        from runtime.runs import RunRequest, RunSummary
        from runtime.threads import ThreadService

        result = CaseResult(self.name, case.id, trial)
        functions = self.functions[case.id]
        tenant = f"bfcl-{self._nonce}-{case.id}-t{trial}"[:128]
        principal = local_principal(tenant=tenant, user=EVAL_USER)
        runner = self._runner(system)
        started = time.perf_counter()
        token = CURRENT.set(CaseContext(case, {}))
        try:
            specs = [function_tool(f) for f in functions]
            names = sorted({spec.name for spec in specs})
            async with AsyncExitStack() as stack:
                for name in names:  # sorted: two records never wait for each other in a cycle
                    await stack.enter_async_context(self._locks.setdefault(name, asyncio.Lock()))
                await stack.enter_async_context(_registered(system.tools, specs))
                assistant = await AssistantService(system).create(
                    tenant,
                    graph_id="agent",
                    assistant_id=None,
                    config={"configurable": {"tools": names}},
                    context={},
                    metadata={"bfcl": case.id},
                    name=f"bfcl {case.id}",
                    description=None,
                )
                summary: RunSummary = await runner.run(
                    RunRequest(
                        principal=principal,
                        assistant_id=assistant["assistant_id"],
                        input_text=case.turns[0].input,
                    )
                )
                state = await ThreadService(runner).state(principal, summary.thread_id)
        except Exception as exc:  # a provider, script or schema failure is this case's failure
            result.error = f"{type(exc).__name__}: {exc}"
            return result
        finally:
            CURRENT.reset(token)
        if summary.status == "error":
            result.error = summary.error or "the run failed"
        made, outputs = _calls_and_results(state["values"].get("messages", []))
        calls = [{"tool": c["tool"], "args": without_nulls(c["args"])} for c in made]
        ok, detail = check_calls(calls, functions, self.truth[case.id])
        gold = [{"tool": s.tool, "args": s.args} for s in case.turns[0].gold]
        result.calls, result.answer = calls, summary.final_message or ""
        result.scores = [
            Score("bfcl_ast", 1.0 if ok else 0.0, ok, detail),
            trajectory_match(calls, gold, "strict", "ignore"),
        ]
        result.passed = result.error is None and all(s.passed for s in result.scores)
        refused = sum(1 for o in outputs if not isinstance(o, dict) or "result" not in o)
        result.metrics = {
            "latency_s": time.perf_counter() - started,
            "tool_calls": float(len(calls)),
            "refused_calls": float(refused),
            **await tenant_usage(system, tenant),
        }
        return result

    def _runner(self, system: System) -> Runner:
        from runtime.runs import Runner

        if id(system) not in self._runners:
            self._runners[id(system)] = Runner(system)
        return self._runners[id(system)]

    async def _run_model(self, system: System, model: str, case: Case, trial: int) -> CaseResult:
        """One model call with the functions bound (the leaderboard's set-up)."""
        from evals.runner import CaseResult

        result = CaseResult(self.name, case.id, trial)
        functions = self.functions[case.id]
        tools = [
            {
                "type": "function",
                "function": {
                    "name": tool_name(f["name"]),
                    "description": f.get("description", ""),
                    "parameters": json_schema(f.get("parameters", {"type": "dict"})),
                },
            }
            for f in functions
        ]
        started = time.perf_counter()
        token = CURRENT.set(CaseContext(case, {}))
        try:
            bound = system.model(model).bind_tools(tools)
            reply = await bound.ainvoke([HumanMessage(case.turns[0].input)])
        except Exception as exc:  # a provider or script failure is this case's failure
            result.error = f"{type(exc).__name__}: {exc}"
            return result
        finally:
            CURRENT.reset(token)
        calls = [{"tool": c["name"], "args": c["args"]} for c in getattr(reply, "tool_calls", [])]
        ok, detail = check_calls(calls, functions, self.truth[case.id])
        result.calls, result.answer = calls, str(getattr(reply, "content", ""))
        result.scores = [Score("bfcl_ast", 1.0 if ok else 0.0, ok, detail)]
        result.passed = ok
        usage = getattr(reply, "usage_metadata", None) or {}
        result.metrics = {
            "latency_s": time.perf_counter() - started,
            "tokens": float(usage.get("total_tokens", 0)),
            "model_calls": 1.0,
            "tool_calls": float(len(calls)),
        }
        return result


def load_bfcl(data: Path, *, limit: int | None = None, mode: Mode = "agent") -> BfclSuite:
    """The three categories from ``data`` (each cut to ``limit`` records), run in ``mode``.

    Raises:
        SuiteError: the directory does not hold the BFCL files.
    """
    suite = BfclSuite(name="bfcl" if mode == "agent" else "bfcl_model", cases=[], mode=mode)
    for category in CATEGORIES:
        questions = _read_jsonl(data / f"BFCL_v4_{category}.json")[:limit]
        answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
        answers = (
            {a["id"]: a["ground_truth"] for a in _read_jsonl(answer_file)}
            if answer_file.exists()
            else {}
        )
        for record in questions:
            truth = answers.get(record["id"], []) if category != "irrelevance" else []
            gold = [
                {"tool": tool_name(name), "args": _first_values(params)}
                for entry in truth[:1]
                for name, params in entry.items()
            ]
            question = record["question"][0][-1]["content"]
            case_id = re.sub(r"[^A-Za-z0-9_.-]", "_", record["id"])[:80]
            suite.cases.append(
                Case.model_validate(
                    {
                        "id": case_id,
                        "tags": [category],
                        "turns": [
                            {
                                "input": question,
                                "gold": gold,
                                "answer": "Done." if gold else "None of the functions fits.",
                            }
                        ],
                    }
                )
            )
            suite.functions[case_id] = record["function"]
            suite.truth[case_id] = truth
    if not suite.cases:
        raise SuiteError(f"no BFCL records under {data}")
    return suite


def _first_values(params: dict[str, list[Any]]) -> dict[str, Any]:
    """The first acceptable value of every argument that is not left out by default."""
    out: dict[str, Any] = {}
    for name, values in params.items():
        first = next((v for v in values if v != ""), None)
        if first is None:
            continue
        if isinstance(first, dict):
            first = _first_values(first)
        out[name] = first
    return out


def load_bfcl_model(data: Path, *, limit: int | None = None) -> BfclSuite:
    """:func:`load_bfcl` in ``model`` mode (one bound model call per record)."""
    return load_bfcl(data, limit=limit, mode="model")
