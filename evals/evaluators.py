"""Evaluators: plain functions from what a run produced (and what was expected) to a score.

Each returns a :class:`Score` (``value`` in [0, 1], ``passed``, and a ``detail`` a person can
act on). They take plain data (dicts, lists, strings), never a run or a system, so they are
tested on hand-made cases and reused by the adapters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evals.cases import ArgsMode, TrajectoryMode

Call = Mapping[str, Any]
"""A tool call: ``{"tool": name, "args": {...}}``."""


@dataclass(frozen=True)
class Score:
    name: str
    value: float
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "passed": self.passed,
            "detail": self.detail,
        }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# --- state ----------------------------------------------------------------------------------


def final_state(actual_hash: str, expected_hash: str, diff: str = "") -> Score:
    """The workspace after the run equals the one the gold steps produce (by hash)."""
    same = actual_hash == expected_hash
    detail = "" if same else f"state {actual_hash[:12]} != expected {expected_hash[:12]} {diff}"
    return Score("final_state", 1.0 if same else 0.0, same, detail.strip())


# --- trajectories ---------------------------------------------------------------------------


def args_match(actual: Mapping[str, Any], expected: Mapping[str, Any], mode: ArgsMode) -> bool:
    """``exact``: equal; ``ignore``: anything; ``subset``: every expected argument is
    present in ``actual`` with the same value (extra actual arguments allowed)."""
    if mode == "ignore":
        return True
    if mode == "exact":
        return _canonical(dict(actual)) == _canonical(dict(expected))
    return all(
        key in actual and _canonical(actual[key]) == _canonical(value)
        for key, value in expected.items()
    )


def calls_match(actual: Call, expected: Call, mode: ArgsMode) -> bool:
    return actual.get("tool") == expected.get("tool") and args_match(
        actual.get("args") or {}, expected.get("args") or {}, mode
    )


def _matched_pairs(actual: Sequence[Call], expected: Sequence[Call], mode: ArgsMode) -> int:
    """Size of a maximum matching between actual and expected calls (each used once)."""
    match_of: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j, exp in enumerate(expected):
            if j in seen or not calls_match(actual[i], exp, mode):
                continue
            seen.add(j)
            if j not in match_of or augment(match_of[j], seen):
                match_of[j] = i
                return True
        return False

    return sum(1 for i in range(len(actual)) if augment(i, set()))


def trajectory_match(
    actual: Sequence[Call],
    expected: Sequence[Call],
    mode: TrajectoryMode = "strict",
    args: ArgsMode = "exact",
) -> Score:
    """Compare the calls the agent made with the reference.

    ``strict``: the same calls in the same order; ``unordered``: the same calls in any
    order; ``subset``: every call made is in the reference (nothing extra, some may be
    missing); ``superset``: every reference call was made (extra calls allowed).
    """
    name = f"trajectory_{mode}"
    if mode == "strict":
        ok = len(actual) == len(expected) and all(
            calls_match(a, e, args) for a, e in zip(actual, expected, strict=True)
        )
    else:
        matched = _matched_pairs(actual, expected, args)
        if mode == "unordered":
            ok = matched == len(actual) == len(expected)
        elif mode == "subset":
            ok = matched == len(actual)
        else:
            ok = matched == len(expected)
    detail = ""
    if not ok:
        detail = f"made {_summary(actual)}; expected {_summary(expected)}"
    return Score(name, 1.0 if ok else 0.0, ok, detail)


def _summary(calls: Sequence[Call]) -> str:
    return (
        "[" + ", ".join(f"{c.get('tool')}({_canonical(c.get('args') or {})})" for c in calls) + "]"
    )


def tool_call_precision_recall(
    actual: Sequence[Call], expected: Sequence[Call], args: ArgsMode = "exact"
) -> tuple[Score, Score]:
    """Precision: share of calls made that the reference has; recall: share of reference
    calls made. No calls made and none expected scores 1 on both."""
    matched = _matched_pairs(actual, expected, args)
    precision = matched / len(actual) if actual else (1.0 if not expected else 0.0)
    recall = matched / len(expected) if expected else 1.0
    return (
        Score("tool_precision", precision, precision == 1.0, f"{matched}/{len(actual)} calls"),
        Score("tool_recall", recall, recall == 1.0, f"{matched}/{len(expected)} reference calls"),
    )


# --- answers --------------------------------------------------------------------------------


def answer_contains(answer: str, needles: Sequence[str]) -> Score:
    """Every needle appears in the answer (case-insensitive)."""
    lowered = answer.lower()
    missing = [needle for needle in needles if needle.lower() not in lowered]
    value = 1.0 - len(missing) / len(needles) if needles else 1.0
    return Score("answer_contains", value, not missing, f"missing {missing}" if missing else "")


def answer_regex(answer: str, pattern: str) -> Score:
    ok = re.search(pattern, answer, re.IGNORECASE | re.DOTALL) is not None
    return Score("answer_regex", 1.0 if ok else 0.0, ok, "" if ok else f"no match for {pattern!r}")


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_json_answer(answer: str) -> Any:
    """The JSON value an answer holds (a fenced block is unwrapped).

    Raises:
        ValueError: the answer is not JSON.
    """
    text = answer.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc


def structured_output(answer: str, schema: Mapping[str, Any]) -> Score:
    """The answer is JSON that validates against ``schema`` (JSON Schema)."""
    import jsonschema

    try:
        value = parse_json_answer(answer)
        jsonschema.validate(value, dict(schema))
    except ValueError as exc:
        return Score("structured_output", 0.0, False, str(exc))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return Score("structured_output", 0.0, False, f"{where}: {exc.message}")
    return Score("structured_output", 1.0, True)


def json_equals(answer: str, expected: Mapping[str, Any]) -> Score:
    """The answer's JSON object has every expected field with the expected value."""
    try:
        value = parse_json_answer(answer)
    except ValueError as exc:
        return Score("json_fields", 0.0, False, str(exc))
    if not isinstance(value, dict):
        return Score("json_fields", 0.0, False, "not a JSON object")
    wrong = [k for k, v in expected.items() if _canonical(value.get(k)) != _canonical(v)]
    score = 1.0 - len(wrong) / len(expected) if expected else 1.0
    return Score("json_fields", score, not wrong, f"wrong fields {wrong}" if wrong else "")


# --- retrieval ------------------------------------------------------------------------------


def retrieval_recall_at_k(retrieved: Sequence[str], relevant: Sequence[str], k: int) -> Score:
    """Share of the relevant sources among the first ``k`` retrieved (duplicates count once)."""
    if not relevant:
        return Score(f"recall@{k}", 1.0, True)
    top = set(list(dict.fromkeys(retrieved))[:k])
    found = [source for source in relevant if source in top]
    value = len(found) / len(set(relevant))
    return Score(f"recall@{k}", value, value == 1.0, f"found {found} of {list(relevant)}")


CITATION = re.compile(r"\[([^\[\]\n]{1,200})\]")


def cited_sources(answer: str) -> list[str]:
    return [c.strip() for c in CITATION.findall(answer) if not c.strip().isdigit()]


def citation_correctness(answer: str, retrieved: Sequence[str], relevant: Sequence[str]) -> Score:
    """The answer cites at least one source; every citation names a retrieved passage's
    source (nothing invented) and a relevant one. The value is the share of correct
    citations."""
    cited = cited_sources(answer)
    if not cited:
        return Score("citations", 0.0, False, "the answer cites nothing")
    correct = [c for c in cited if c in retrieved and (not relevant or c in relevant)]
    value = len(correct) / len(cited)
    bad = [c for c in cited if c not in correct]
    return Score("citations", value, not bad, f"wrong citations {bad}" if bad else "")


# --- fixture environments -------------------------------------------------------------------


def environment_checks(world: Mapping[str, Any], checks: Sequence[Mapping[str, Any]]) -> Score:
    """Every check (``{"path": "a/b", "equals": v}`` or ``{"path", "length": n}``) holds
    on ``world`` (tau2-bench's environment assertions)."""
    failed = []
    for check in checks:
        node: Any = world
        try:
            for part in str(check["path"]).split("/"):
                node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            failed.append(f"{check['path']} is missing")
            continue
        if check.get("length") is not None and len(node) != check["length"]:
            failed.append(f"{check['path']} has {len(node)} items, not {check['length']}")
        elif check.get("length") is None and _canonical(node) != _canonical(check.get("equals")):
            failed.append(
                f"{check['path']} = {_canonical(node)}, not {_canonical(check['equals'])}"
            )
    return Score("environment", 0.0 if failed else 1.0, not failed, "; ".join(failed))


# --- costs ----------------------------------------------------------------------------------


def within_budget(name: str, value: float, limit: float | None) -> Score:
    """A cost, token or latency figure against an optional limit (no limit: always passes)."""
    ok = limit is None or value <= limit
    return Score(name, 1.0 if ok else 0.0, ok, "" if ok else f"{value:g} > {limit:g}")


# --- LLM as judge ---------------------------------------------------------------------------

JUDGE_PROMPT = (
    "You grade an AI assistant's answer. Rubric: {rubric}\n\nQuestion: {question}\n\n"
    "Answer: {answer}\n\nReply with one line: PASS or FAIL, then a short reason."
)


async def llm_judge(model: Any, rubric: str, question: str, answer: str) -> Score:
    """Ask a real model whether ``answer`` meets ``rubric``. Only used with a real provider:
    a scripted model cannot judge, and the runner refuses to pretend it can."""
    reply = await model.ainvoke(
        JUDGE_PROMPT.format(rubric=rubric, question=question, answer=answer)
    )
    text = str(getattr(reply, "content", reply)).strip()
    ok = text.upper().startswith("PASS")
    return Score("llm_judge", 1.0 if ok else 0.0, ok, text[:300])


# --- plans (planner graphs) -----------------------------------------------------------------

Step = Mapping[str, Any]
"""A plan step as the planner keeps it in state: ``{number, goal, tools, done_when, status,
result}``."""
STEP_CITATION = re.compile(r"\[step (\d+)\]", re.IGNORECASE)


def plan_valid(plan: Sequence[Step], available: Sequence[str], needed: Sequence[str]) -> Score:
    """The plan in state has steps, each with a goal, done criteria and expected tools that
    exist (``available``); together the steps expect every tool the task ``needed``."""
    problems: list[str] = []
    if not plan:
        problems.append("no plan in state")
    for step in plan:
        number = step.get("number")
        if not str(step.get("goal") or "").strip():
            problems.append(f"step {number} has no goal")
        if not str(step.get("done_when") or "").strip():
            problems.append(f"step {number} has no done criteria")
        unknown = [t for t in step.get("tools") or [] if t not in available]
        if unknown:
            problems.append(f"step {number} expects unknown tools {unknown}")
    expected = {t for step in plan for t in step.get("tools") or []}
    missing = sorted(set(needed) - expected)
    if missing:
        problems.append(f"no step expects {missing}")
    return Score("plan_valid", 0.0 if problems else 1.0, not problems, "; ".join(problems))


def plan_adherence(steps: Sequence[tuple[Step, Sequence[Call]]]) -> Score:
    """Each step's calls use the tools the step said it expected: the share of calls that
    do (no calls: 1)."""
    total = inside = 0
    strays: list[str] = []
    for step, calls in steps:
        for call in calls:
            total += 1
            if call.get("tool") in (step.get("tools") or []):
                inside += 1
            else:
                strays.append(f"step {step.get('number')} called {call.get('tool')}")
    value = inside / total if total else 1.0
    return Score("plan_tools", value, inside == total, "; ".join(strays))


def plan_completed(plan: Sequence[Step]) -> Score:
    """Every step of the final plan ran and is done (none failed, none left pending)."""
    open_steps = [
        f"step {s.get('number')} {s.get('status')}" for s in plan if s.get("status") != "done"
    ]
    done = len(plan) - len(open_steps)
    value = done / len(plan) if plan else 0.0
    ok = bool(plan) and not open_steps
    return Score("plan_done", value, ok, "; ".join(open_steps) or ("" if plan else "no plan"))


def plan_citations(answer: str, plan: Sequence[Step]) -> Score:
    """The answer cites every step that ran as ``[step N]`` together with what the step
    found, and cites no step that did not run. The value is the share of steps that ran
    and are cited with their finding."""
    ran = {int(s.get("number") or 0): s for s in plan if s.get("status") in ("done", "failed")}
    cited = {int(n) for n in STEP_CITATION.findall(answer)}
    invented = sorted(cited - set(ran))
    missing = []
    for number, step in sorted(ran.items()):
        finding = str(step.get("result") or "").strip()
        if number not in cited or not finding or finding not in answer:
            missing.append(number)
    value = (len(ran) - len(missing)) / len(ran) if ran else 0.0
    problems = [f"steps {missing} not cited with their findings"] if missing else []
    if invented:
        problems.append(f"cites steps {invented} that did not run")
    if not ran:
        problems.append("no step ran")
    return Score("plan_citations", value, not problems, "; ".join(problems))
