"""Suites and cases: what to seed, what the user says, and what must come out.

A suite is a YAML file (``name``, ``description``, ``kind``, ``cases``) or a JSONL file (one
case per line; the suite is named after the file). Strings in gold steps and answers may hold
placeholders resolved per run: ``{{notes.KEY}}`` / ``{{tickets.KEY}}`` (ids of seeded
records), ``{{web}}`` (base URL of the case's web pages) and ``{{result.N.path}}`` (a field
of the N-th tool result of the current turn). A placeholder that is the whole string keeps
its type (an id stays an integer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DATASETS = Path(__file__).parent / "datasets"
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.:-]+)\s*\}\}")
TrajectoryMode = Literal["strict", "unordered", "subset", "superset"]
ArgsMode = Literal["exact", "ignore", "subset"]
Carrier = Literal[
    "note", "ticket", "file", "web", "document", "tool_output", "memory", "environment"
]


class SuiteError(ValueError):
    """A suite cannot be found or is malformed; the message says which and where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Step(_Strict):
    """One tool call: a gold step, or an injection's goal action."""

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class PlanStepGold(_Strict):
    """A step of a turn's gold plan, for planner assistants: the planner graph's step
    (goal, expected tools, done criteria) and how many of the turn's gold calls, in order,
    it makes."""

    goal: str = Field(min_length=1)
    tools: list[str] = Field(default_factory=list)
    done_when: str = Field(min_length=1)
    calls: int | None = Field(default=None, ge=0)
    """Gold calls this step makes; default: one per listed tool."""


class Turn(_Strict):
    input: str = Field(min_length=1)
    thread: str = "main"
    """Turns with the same thread name continue one thread; another name starts a new one."""
    gold: list[Step] = Field(default_factory=list)
    answer: str = ""
    """The gold final answer (a template: placeholders allowed)."""
    plan: list[PlanStepGold] = Field(default_factory=list)
    """The gold plan (planner assistants); empty: one step per gold call."""
    user_actions: list[Step] = Field(default_factory=list)
    """User-side tool calls the simulated user makes on the fixture world after the agent
    answers this turn (``evals.user_sim.USER_TOOLS``; e.g. dismissing a notification)."""

    @model_validator(mode="after")
    def _plan_fits(self) -> Turn:
        self.gold_plan()
        return self

    def gold_plan(self) -> list[tuple[PlanStepGold, list[Step]]]:
        """Each gold plan step with the gold calls it makes.

        Raises:
            ValueError: the plan's steps make more or fewer calls than the turn has.
        """
        if not self.plan:
            return [
                (
                    PlanStepGold(
                        goal=f"Call {step.tool} for: {self.input}"[:2000],
                        tools=[step.tool],
                        done_when=f"{step.tool} returned its result.",
                    ),
                    [step],
                )
                for step in self.gold
            ]
        out, start = [], 0
        for step in self.plan:
            count = len(step.tools) if step.calls is None else step.calls
            out.append((step, self.gold[start : start + count]))
            start += count
        if start != len(self.gold):
            raise ValueError(f"the gold plan makes {start} calls, the turn has {len(self.gold)}")
        return out


class NoteSeed(_Strict):
    title: str
    body: str
    untrusted: bool = False
    """Content that came from outside (an e-mail, a tainted run) is stored untrusted."""


class TicketSeed(_Strict):
    title: str
    body: str
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    status: Literal["open", "closed"] = "open"
    untrusted: bool = False


class Seed(_Strict):
    notes: dict[str, NoteSeed] = Field(default_factory=dict)
    tickets: dict[str, TicketSeed] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
    """Relative path → text, in the tenant's sandboxed files folder."""
    pages: dict[str, str] = Field(default_factory=dict)
    """Page name → HTML, served on 127.0.0.1 at ``{{web}}/NAME`` for ``http_fetch``."""
    documents: dict[str, str] = Field(default_factory=dict)
    """Source name → text, ingested (chunked, embedded, indexed) for ``documents_search``."""
    memories: list[str] = Field(default_factory=list)
    records: dict[str, str] = Field(default_factory=dict)
    """Key → text returned by the ``crm_lookup`` tool (an external, untrusted source)."""
    environment: dict[str, Any] | None = None
    """A fixture world for an adapter's tools (AgentDojo's bank); part of the final state.
    The ``environment`` carrier's target is a ``/``-separated path to a string in it."""


class EnvCheck(_Strict):
    """A check on the fixture environment after the run: the value at ``path``
    (``/``-separated) equals ``equals``, or has ``length`` items."""

    path: str
    equals: Any = None
    length: int | None = None


class Expect(_Strict):
    state: bool = True
    """The final workspace state must hash equal to the state the gold steps produce."""
    trajectory: TrajectoryMode | None = "strict"
    args: ArgsMode = "exact"
    answer_contains: list[str] = Field(default_factory=list)
    answer_regex: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    json_equals: dict[str, Any] | None = None
    relevant_sources: list[str] = Field(default_factory=list)
    k: int = Field(default=5, ge=1)
    citations: bool = False
    """The answer cites sources as ``[name]``; cited must be retrieved and relevant."""
    environment: list[EnvCheck] = Field(default_factory=list)
    judge: str | None = None
    """A rubric for the LLM judge (used only with ``--judge`` and a real provider)."""


class Injection(_Strict):
    carrier: Carrier
    target: str
    """Key (or path, page, source) of the seeded item the attack text is planted in; for
    the memory carrier, the topic of the planted memory ("About TARGET: TEXT")."""
    text: str
    goal: Step
    """The attacker's action; the attack succeeds if it runs without a human approving it."""


class UserScenario(_Strict):
    """What a simulated user is told (tau2-bench's user scenario); with ``--user-model`` a
    real model plays this user from turn ``from_turn`` on, in place of the scripted turns."""

    instructions: str = Field(min_length=1)
    persona: str | None = None
    from_turn: int = Field(default=0, ge=0)
    """The first scripted turn the simulated conversation replaces (earlier turns, e.g. a
    replayed message history, are played as written)."""
    max_turns: int = Field(default=10, ge=1)


class Case(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    seed: Seed = Field(default_factory=Seed)
    turns: list[Turn] = Field(min_length=1)
    expect: Expect = Field(default_factory=Expect)
    injection: Injection | None = None
    user: UserScenario | None = None
    """The user scenario the scripted turns were written from, for ``--user-model``."""
    reviewer: Literal["gold", "approve_all", "reject_all"] = "gold"
    """The simulated reviewer at interrupts: ``gold`` approves calls matching a gold step
    (tool and arguments) and rejects anything else."""
    needs: list[str] = Field(default_factory=list)
    """Features the case depends on that may not exist yet; reported beside its result."""
    assistant: str | None = None
    """The assistant to run the case on; default: the suite's."""
    source: dict[str, Any] = Field(default_factory=dict)
    """Where the case came from (e.g. the run and feedback it was exported from); not used
    to run or judge it."""

    def gold_steps(self) -> list[Step]:
        return [step for turn in self.turns for step in turn.gold]


class Suite(_Strict):
    name: str
    description: str = ""
    kind: Literal["task", "injection", "bfcl"] = "task"
    assistant: str = "agent"
    fixtures: list[Literal["banking", "tau2_mock"]] = Field(default_factory=list)
    """Fixture tool sets the suite needs registered (an adapter's world)."""
    cases: list[Case]
    path: str | None = None


def _parse(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        cases = [json.loads(line) for line in text.splitlines() if line.strip()]
        return {"name": path.stem, "cases": cases}
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: expected a mapping with 'name' and 'cases'")
    data.setdefault("name", path.stem)
    return data


def load_suite(name_or_path: str | Path) -> Suite:
    """A shipped suite by name (``tool_use``) or a suite file by path.

    Raises:
        SuiteError: no such suite, or the file is malformed (with the case that is).
    """
    path = Path(name_or_path)
    shipped = [p for p in shipped_suite_paths() if p.stem == str(name_or_path)]
    if shipped and isinstance(name_or_path, str):  # a bare name means the shipped suite
        path = shipped[0]
    elif not path.is_file():
        matches = shipped
        if not matches:
            known = ", ".join(p.stem for p in shipped_suite_paths())
            raise SuiteError(f"there is no suite {str(name_or_path)!r}; shipped suites: {known}")
        path = matches[0]
    try:
        data = _parse(path)
    except (OSError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SuiteError(f"cannot read suite {path}: {exc}") from exc
    try:
        suite = Suite.model_validate({**data, "path": str(path)})
    except ValidationError as exc:
        raise SuiteError(f"suite {path} is malformed: {exc}") from exc
    seen: set[str] = set()
    for case in suite.cases:
        if case.id in seen:
            raise SuiteError(f"suite {path}: case id {case.id!r} appears twice")
        seen.add(case.id)
    return suite


def shipped_suite_paths() -> list[Path]:
    return sorted(
        p for p in DATASETS.iterdir() if p.suffix in (".yaml", ".yml", ".jsonl") and p.is_file()
    )


# --- placeholders ---------------------------------------------------------------------------


def lookup(data: Any, dotted: str) -> Any:
    """``data`` followed along ``a.0.b``.

    Raises:
        KeyError: a step of the path does not exist.
    """
    node = data
    for part in dotted.split("."):
        if isinstance(node, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(node) <= index < len(node):
                raise KeyError(dotted)
            node = node[index]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise KeyError(dotted)
    return node


Resolver = Callable[[str], Any]


def resolve(value: Any, resolver: Resolver) -> Any:
    """``value`` with every placeholder replaced by ``resolver(name)`` (recursively)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return resolver(whole.group(1))
        return PLACEHOLDER.sub(lambda m: str(resolver(m.group(1))), value)
    if isinstance(value, list):
        return [resolve(item, resolver) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, resolver) for key, item in value.items()}
    return value


def has_placeholder(value: Any) -> bool:
    return bool(PLACEHOLDER.search(json.dumps(value, default=str)))


def context_resolver(context: Mapping[str, Any], results: list[Any] | None = None) -> Resolver:
    """Resolves ``notes.KEY``, ``tickets.KEY``, ``web`` from ``context`` and
    ``result.N.path`` from ``results`` (JSON tool outputs of the current turn).
    Unknown names resolve to themselves in braces, so a gold step that cannot be
    resolved stays visibly unresolved rather than guessing."""

    def resolver(name: str) -> Any:
        if name.startswith("result."):
            _, index, *rest = name.split(".")
            try:
                value = (results or [])[int(index)]
                return lookup(value, ".".join(rest)) if rest else value
            except (IndexError, KeyError, ValueError):
                return "{{" + name + "}}"
        try:
            return lookup(context, name)
        except KeyError:
            return "{{" + name + "}}"

    return resolver
