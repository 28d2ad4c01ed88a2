"""Plan-and-execute: a planner writes a numbered plan, the tool agent runs each step as a
subgraph, a replanner revises what is left or finishes with an answer citing the steps.

    start → plan → [review] → execute ⇄ replan → END

The plan and its progress live in state (``plan``, ``current_step``, ``phase``), so
``values`` streams and the console show them. Each step runs ``graphs.agent`` as a
subgraph invoked from the ``execute`` node: it shares the run's checkpointer (its
checkpoints sit under the ``execute:<task>`` namespace), its gate interrupts the whole
run with the standard payload and a resume continues the step, and its events stream
with that namespace (``stream_subgraphs``). Limits are the run's: each step gets what
the plan has not used yet, and a limit stop anywhere ends the run with ``resume_at``
set, so raising the limit and continuing the thread picks up where it stopped.

With the assistant option ``review_plan: true`` a reviewer sees the plan first
(action ``execute_plan``): approve, edit (the edited plan is validated) or reject
(with a message: plan again with that feedback; without: stop).

Minimisation (issue 5, ``memory.thread_pseudonyms``): the planner's own model calls (plan
and replan/final answer) use the run's map, as the step agents do (``RunContext
.pseudonyms``, one per run and user). What a person typed (the request, a reviewer's
feedback) is minimised as a text of its own, every value the map knows is a token
everywhere else (plan, findings), and the reply is restored before it is stored: the plan
a reviewer sees, the state, the events and the final answer show the values. The map is
continued from, and saved in, the private ``pseudonyms`` channel (never in the graph's
input, output, events or API state), so tokens keep their numbers across the thread's runs.
Before a step runs, its request is minimised into the map here, from the map the state
saved: a step interrupted before the node could save resumes in a later run with the same
tokens, and the node saves them when the step ends.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graphs import agent
from graphs import limits as lim
from graphs.context import RunContext
from graphs.interrupts import ALLOWED_DECISIONS, parse_decisions
from graphs.model_calls import family_prompt, structured_call
from memory.minimisation import minimise_text, restore_text
from memory.thread_pseudonyms import pseudonymise_values, saved_update
from privacy import PseudonymMap
from providers.errors import BudgetExceeded

GRAPH_ID = "planner"
GRAPH_VERSION = "1"
PROMPT = "planner"
PROMPTS = ("planner", "replanner", "plan_step")
"""The prompt family: versioned together, pinned per thread by the main prompt's version."""
REVIEW_ACTION = "execute_plan"
MAX_PLAN_STEPS = 12


class PlanStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: str = Field(min_length=1, max_length=2000, description="What this step finds or does.")
    tools: list[str] = Field(
        default_factory=list, max_length=20, description="Tools the step expects to use."
    )
    done_when: str = Field(
        min_length=1, max_length=1000, description="How the executor knows the step is done."
    )


class Plan(BaseModel):
    """Submit the numbered plan: the steps in the order they must run."""

    model_config = ConfigDict(extra="forbid", title="submit_plan")

    steps: list[PlanStep] = Field(min_length=1, max_length=MAX_PLAN_STEPS)


class Replan(BaseModel):
    """Continue with the revised remaining steps, or finish with the final answer."""

    model_config = ConfigDict(extra="forbid", title="revise_plan")

    action: Literal["continue", "finish"]
    steps: list[PlanStep] = Field(
        default_factory=list,
        max_length=MAX_PLAN_STEPS,
        description="With continue: the steps still to run, replacing the pending ones.",
    )
    answer: str | None = Field(
        default=None, max_length=20_000, description="With finish: the answer, citing [step N]."
    )

    @model_validator(mode="after")
    def _complete(self) -> Replan:
        if self.action == "continue" and not self.steps:
            raise ValueError("action 'continue' needs at least one step")
        if self.action == "finish" and not (self.answer or "").strip():
            raise ValueError("action 'finish' needs the answer")
        return self


class PlannerOptions(BaseModel):
    """Assistant ``options`` the planner understands."""

    model_config = ConfigDict(extra="forbid")

    review_plan: bool = False
    """Ask a reviewer to approve, edit or reject each new plan before it runs."""


class PlannerOutput(TypedDict):
    """The state as the graph shows it (values and updates streams, thread state, output):
    ``PlannerState`` without its private channel."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The conversation: user requests and the final answers."""
    plan: NotRequired[list[dict[str, Any]]]
    """Steps: {number, goal, tools, done_when, status, result}; status is pending,
    done or failed."""
    revision: NotRequired[int]
    current_step: NotRequired[int | None]
    phase: NotRequired[str]
    """planning, reviewing, executing, replanning or done."""
    feedback: NotRequired[str | None]
    """A reviewer's reason for rejecting the last plan, for the planner to follow."""
    usage: NotRequired[dict[str, int]]
    """Model calls, tool calls and tokens of this turn, outside the step now running."""
    step_messages: NotRequired[list[AnyMessage]]
    """The transcript of a step a limit stopped, for the step to continue from."""
    tainted: NotRequired[bool]
    stop_reason: NotRequired[str | None]
    final_message: NotRequired[str | None]
    resume_at: NotRequired[str | None]


class PlannerState(PlannerOutput):
    pseudonyms: NotRequired[dict[str, dict[str, dict[str, str]]]]
    """Private (issue 5): {tenant: {user: {token: value}}}, as in ``graphs.agent
    .AgentState``: what minimisation replaced in this thread's model calls. Never in the
    graph's output, events or API state."""


class PlanReviewError(ValueError):
    """An edited plan does not validate."""


def _options(ctx: RunContext) -> PlannerOptions:
    try:
        return PlannerOptions.model_validate(dict(ctx.options))
    except ValidationError as exc:
        raise ValueError(f"the planner assistant's options are invalid: {exc}") from exc


def _usage(state: PlannerState) -> dict[str, int]:
    return {"model_calls": 0, "tool_calls": 0, "tokens": 0, **(state.get("usage") or {})}


def _request(state: PlannerState) -> str:
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def _numbered(steps: list[PlanStep], start: int = 1) -> list[dict[str, Any]]:
    return [
        {**step.model_dump(), "number": start + offset, "status": "pending", "result": None}
        for offset, step in enumerate(steps)
    ]


def _next_pending(plan: list[dict[str, Any]]) -> int | None:
    return next((step["number"] for step in plan if step["status"] == "pending"), None)


def _stop(reason: str, message: str) -> dict[str, Any]:
    return {"stop_reason": reason, "final_message": f"Stopped: {message}.", "resume_at": "resume"}


def _model_budget(state: PlannerState, ctx: RunContext) -> tuple[dict[str, Any] | None, int | None]:
    """A stop update if the next planner-level model call is over a limit; else the
    tokens the call may still use (None: no token budget)."""
    used = _usage(state)
    hit = lim.before_model(used["model_calls"], ctx.limits, ctx.deadline)
    if hit is not None:
        return _stop(hit.reason, hit.message), None
    if not ctx.limits.max_run_tokens:
        return None, None
    remaining = ctx.limits.max_run_tokens - used["tokens"]
    if remaining <= 0:
        return _stop(lim.TOKEN_BUDGET, _limit_text(lim.TOKEN_BUDGET, ctx.limits)), None
    return None, remaining


def _limit_text(reason: str, limits: lim.Limits) -> str:
    """The stop message for a limit, in terms of the run's limits (a step only sees what
    the plan left it)."""
    texts = {
        lim.STEP_LIMIT: f"the run reached its step limit ({limits.max_steps} model calls); "
        "raise max_steps and resume the thread to continue",
        lim.TOOL_BUDGET: f"the run reached its tool budget ({limits.max_tool_calls} calls); "
        "raise max_tool_calls and resume the thread to continue",
        lim.TOKEN_BUDGET: f"the run used its token budget ({limits.max_run_tokens} tokens); "
        "raise max_run_tokens and resume the thread to continue",
        lim.TIMEOUT: f"the run reached its wall-time limit ({limits.max_wall_seconds:g} s); "
        "raise max_wall_seconds and resume the thread to continue",
    }
    return texts.get(reason, reason.replace("_", " "))


def _mapping(state: PlannerState, ctx: RunContext) -> PseudonymMap:
    """The run's map for its principal (shared with the step agents), continued from the
    one this thread's state saved."""
    continuing = ctx.memory.pseudonyms_of(ctx.principal) if ctx.memory else None
    return ctx.pseudonyms.map_for(state, ctx.principal, continuing)


def _typed(text: str, ctx: RunContext, mapping: PseudonymMap) -> str:
    """What a person typed, as a provider may see it (values found get tokens in
    ``mapping``)."""
    return minimise_text(text, ctx.pseudonyms.policy, mapping)[0]


def _saved(state: PlannerState, ctx: RunContext, mapping: PseudonymMap) -> dict[str, Any]:
    """The private channel's update when ``mapping`` knows tokens the state has not saved."""
    saved = saved_update(state, ctx.principal, mapping)
    return {"pseudonyms": saved} if saved else {}


def _restored(steps: list[PlanStep], mapping: PseudonymMap) -> list[PlanStep]:
    """The model's steps with the tokens ``mapping`` knows put back (unknown ones stay)."""
    if not mapping.tokens:
        return steps
    return [
        step.model_copy(
            update={
                "goal": restore_text(step.goal, mapping),
                "tools": [restore_text(name, mapping) for name in step.tools],
                "done_when": restore_text(step.done_when, mapping),
            }
        )
        for step in steps
    ]


def _tools_text(ctx: RunContext) -> str:
    lines = []
    for name in ctx.tool_names:
        tool = ctx.tools.registry.get(name)
        if tool is not None:
            lines.append(f"- {name}: {tool.description}")
    return "\n".join(lines) or "(no tools)"


def _plan_text(plan: list[dict[str, Any]], *, current: int | None = None) -> str:
    lines = []
    for step in plan:
        marker = " ← this step" if step["number"] == current else ""
        tools = ", ".join(step["tools"]) or "none"
        lines.append(
            f"{step['number']}. [{step['status']}] {step['goal']} (tools: {tools}; done when: "
            f"{step['done_when']}){marker}"
        )
        if step.get("result"):
            lines.append(f"   found: {step['result']}")
    return "\n".join(lines)


# --- nodes ---------------------------------------------------------------------------------


async def start(state: PlannerState) -> dict[str, Any]:
    """New user input: a new plan with fresh counters (limits are per run)."""
    return {
        "plan": [],
        "revision": 0,
        "current_step": None,
        "phase": "planning",
        "feedback": None,
        "usage": {"model_calls": 0, "tool_calls": 0, "tokens": 0},
        "step_messages": [],
        "stop_reason": None,
        "final_message": None,
        "resume_at": None,
    }


async def make_plan(state: PlannerState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    _options(ctx)  # fail early, before any model call, on a misconfigured assistant
    stop, max_tokens = _model_budget(state, ctx)
    if stop is not None:
        return stop
    mapping = _mapping(state, ctx)
    request = _typed(_request(state), ctx, mapping)
    text = f"Request:\n{request}\n\nTools you may plan with:\n{_tools_text(ctx)}"
    if state.get("feedback"):
        rejected = _plan_text(state.get("plan") or [])
        feedback = _typed(state["feedback"] or "", ctx, mapping)
        text += f"\n\nA reviewer rejected this plan:\n{rejected}\nTheir feedback: {feedback}"
    usage = _usage(state)
    try:
        plan, tokens = await structured_call(
            ctx,
            Plan,
            family_prompt(ctx, "planner"),
            [HumanMessage(pseudonymise_values(text, mapping))],
            node="plan",
            max_tokens=max_tokens,
        )
    except BudgetExceeded as exc:
        return {**_stop(exc.reason, str(exc)), **_saved(state, ctx, mapping)}
    steps = _numbered(_restored(plan.steps, mapping))
    return {
        **_saved(state, ctx, mapping),
        "plan": steps,
        "revision": (state.get("revision") or 0) + 1,
        "current_step": steps[0]["number"],
        "phase": "reviewing" if _options(ctx).review_plan else "executing",
        "usage": {
            **usage,
            "model_calls": usage["model_calls"] + 1,
            "tokens": usage["tokens"] + tokens,
        },
    }


async def review(state: PlannerState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """The deliberate human interrupt: the plan is the action's arguments."""
    plan = state.get("plan") or []
    args: dict[str, Any] = {"steps": [_plain_step(step) for step in plan]}
    problem: str | None = None
    while True:  # an invalid edit asks again, saying what was wrong
        description = "Review the plan before it runs: approve, edit the steps, or reject."
        if problem:
            description = f"The edited plan was invalid ({problem}). {description}"
        answer = interrupt(
            {
                "action_requests": [
                    {"name": REVIEW_ACTION, "args": args, "description": description}
                ],
                "review_configs": [
                    {"action_name": REVIEW_ACTION, "allowed_decisions": list(ALLOWED_DECISIONS)}
                ],
            }
        )
        (choice,) = parse_decisions(answer, expected=1)
        if choice.type == "approve":
            return {"phase": "executing", "feedback": None}
        if choice.type == "reject":
            if choice.message:
                return {"phase": "planning", "feedback": choice.message, "current_step": None}
            return {
                "phase": "done",
                "current_step": None,
                "stop_reason": lim.COMPLETED,
                "final_message": "The reviewer rejected the plan; nothing was executed.",
                "messages": [AIMessage("The reviewer rejected the plan; nothing was executed.")],
            }
        try:
            if choice.name not in (None, REVIEW_ACTION):
                raise PlanReviewError(
                    f"an edit may change the plan, not the action {choice.name!r}"
                )
            edited = Plan.model_validate(choice.args or {})
        except (ValidationError, PlanReviewError) as exc:
            problem = _short_error(exc)
            args = choice.args if isinstance(choice.args, dict) else args
            continue
        steps = _numbered(edited.steps)
        return {
            "plan": steps,
            "current_step": steps[0]["number"],
            "phase": "executing",
            "feedback": None,
        }


def _plain_step(step: dict[str, Any]) -> dict[str, Any]:
    return {"goal": step["goal"], "tools": step["tools"], "done_when": step["done_when"]}


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'plan'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
    return str(exc)


def _step_limits(ctx: RunContext, usage: dict[str, int]) -> lim.Limits:
    """The run's limits minus what the plan used outside the running step (the agent
    counts the step's own transcript itself)."""
    tokens = 0
    if ctx.limits.max_run_tokens:
        tokens = max(ctx.limits.max_run_tokens - usage["tokens"], 1)
    return dataclasses.replace(
        ctx.limits,
        max_steps=ctx.limits.max_steps - usage["model_calls"],
        max_tool_calls=ctx.limits.max_tool_calls - usage["tool_calls"],
        max_run_tokens=tokens,
    )


def _step_failed(messages: list[AnyMessage]) -> str | None:
    """The error of a step whose last tool call failed (refused, rejected, errored)."""
    results = [m for m in messages if isinstance(m, ToolMessage)]
    if results and results[-1].status == "error":
        return str(results[-1].content)
    return None


def build_planner_graph(
    step_agent: CompiledStateGraph[Any, Any, Any, Any],
) -> StateGraph[PlannerState, RunContext, PlannerOutput, PlannerOutput]:
    """The planner graph, running each step with ``step_agent`` (the compiled tool agent)."""

    async def execute(state: PlannerState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        """Run the current step with the tool agent as a subgraph. Re-runs from its start
        on resume; the subgraph then continues from its own checkpoint."""
        ctx = runtime.context
        plan = state.get("plan") or []
        number = state.get("current_step") or _next_pending(plan)
        step = next((s for s in plan if s["number"] == number), None)
        if step is None:  # nothing left: let the replanner finish
            return {"phase": "replanning", "current_step": None}
        usage = _usage(state)
        if ctx.limits.max_run_tokens and usage["tokens"] >= ctx.limits.max_run_tokens:
            return _stop(lim.TOKEN_BUDGET, _limit_text(lim.TOKEN_BUDGET, ctx.limits))
        transcript = list(state.get("step_messages") or [])
        mapping = _mapping(state, ctx)
        if not transcript:
            revision = state.get("revision") or 0
            transcript = [
                HumanMessage(
                    f"Request:\n{_request(state)}\n\nPlan:\n{_plan_text(plan, current=number)}"
                    f"\n\nDo step {number}: {step['goal']}\nExpected tools: "
                    f"{', '.join(step['tools']) or 'none'}\nDone when: {step['done_when']}",
                    id=f"plan-{revision}-step-{number}",
                )
            ]
        elif isinstance(transcript[-1], AIMessage) and transcript[-1].tool_calls:
            # A limit stopped the step before these calls ran. While they would still
            # break it, stop again at once; else the model proposes again (under the
            # limits now in force), and the dropped call still counts as used.
            step_tools = agent.turn_counts({"messages": transcript})[1]
            hit = lim.before_tools(
                usage["tool_calls"] + step_tools,
                len(transcript[-1].tool_calls),
                ctx.limits,
                ctx.deadline,
            )
            if hit is not None:
                return {
                    **_stop(hit.reason, f"at step {number}: {_limit_text(hit.reason, ctx.limits)}"),
                    **_saved(state, ctx, mapping),
                }
            dropped = transcript.pop()
            usage = {
                **usage,
                "model_calls": usage["model_calls"] + 1,
                "tokens": usage["tokens"] + agent.turn_tokens({"messages": [dropped]}),
            }
        # The step agent minimises its request into the same map; doing it here first
        # gives the tokens from the map this state saved, so a step resumed in a later
        # run (a fresh map, continued from that state) gets the same ones.
        for message in transcript:
            if isinstance(message, HumanMessage):
                _typed(message.text, ctx, mapping)
        step_ctx = dataclasses.replace(
            ctx, prompt=family_prompt(ctx, "plan_step"), limits=_step_limits(ctx, usage)
        )
        result = await step_agent.ainvoke(
            {"messages": transcript, "tainted": bool(state.get("tainted")), **agent.fresh_turn()},
            context=step_ctx,
        )
        messages: list[AnyMessage] = result["messages"]
        reason = result.get("stop_reason")
        tainted = bool(result.get("tainted"))
        if reason in lim.LIMIT_REASONS:
            return {
                **_stop(reason, f"at step {number}: {_limit_text(reason, ctx.limits)}"),
                "step_messages": messages,
                "tainted": tainted,
                "usage": usage,
                **_saved(state, ctx, mapping),
            }
        model_calls, tool_calls = agent.turn_counts({"messages": messages})
        failure = _step_failed(messages)
        finding = result.get("final_message") or ""
        updated = [
            {
                **s,
                "status": "failed" if failure else "done",
                "result": (f"{finding} (failed: {failure})" if failure else finding) or None,
            }
            if s["number"] == number
            else s
            for s in plan
        ]
        return {
            **_saved(state, ctx, mapping),
            "plan": updated,
            "phase": "replanning",
            "current_step": None,
            "step_messages": [],
            "tainted": tainted,
            "usage": {
                "model_calls": usage["model_calls"] + model_calls,
                "tool_calls": usage["tool_calls"] + tool_calls,
                "tokens": usage["tokens"] + agent.turn_tokens({"messages": messages}),
            },
        }

    builder = StateGraph(
        PlannerState,
        context_schema=RunContext,
        input_schema=PlannerOutput,
        output_schema=PlannerOutput,
    )
    builder.add_node("start", start)
    builder.add_node("plan", make_plan)
    builder.add_node("review", review)
    builder.add_node("execute", execute)
    builder.add_node("replan", replan)
    builder.add_node("resume", resume)
    builder.add_edge(START, "start")
    builder.add_edge("start", "plan")
    builder.add_conditional_edges("plan", route_by_phase)
    builder.add_conditional_edges("review", route_by_phase)
    builder.add_conditional_edges("execute", route_by_phase)
    builder.add_conditional_edges("replan", route_by_phase)
    builder.add_conditional_edges("resume", route_by_phase)
    return builder


async def replan(state: PlannerState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    stop, max_tokens = _model_budget(state, ctx)
    if stop is not None:
        return stop
    plan = state.get("plan") or []
    mapping = _mapping(state, ctx)
    request = _typed(_request(state), ctx, mapping)
    text = f"Request:\n{request}\n\nPlan and progress:\n{_plan_text(plan)}"
    usage = _usage(state)
    try:
        decision, tokens = await structured_call(
            ctx,
            Replan,
            family_prompt(ctx, "replanner"),
            [HumanMessage(pseudonymise_values(text, mapping))],
            node="replan",
            max_tokens=max_tokens,
        )
    except BudgetExceeded as exc:
        return {**_stop(exc.reason, str(exc)), **_saved(state, ctx, mapping)}
    usage = {
        **usage,
        "model_calls": usage["model_calls"] + 1,
        "tokens": usage["tokens"] + tokens,
    }
    saved = _saved(state, ctx, mapping)
    if decision.action == "finish":
        answer = _cited_answer(restore_text(decision.answer or "", mapping), plan)
        return {
            **saved,
            "phase": "done",
            "current_step": None,
            "usage": usage,
            "stop_reason": lim.COMPLETED,
            "final_message": answer,
            "resume_at": None,
            "messages": [AIMessage(answer)],
        }
    kept = [step for step in plan if step["status"] != "pending"]
    steps = kept + _numbered(_restored(decision.steps, mapping), start=len(kept) + 1)
    return {
        **saved,
        "plan": steps,
        "revision": (state.get("revision") or 0) + 1,
        "current_step": _next_pending(steps),
        "phase": "executing",
        "usage": usage,
    }


def _cited_answer(answer: str, plan: list[dict[str, Any]]) -> str:
    """The replanner's answer followed by what each executed step found, so every claim
    can be traced to the step (and tool results) behind it."""
    ran = [step for step in plan if step["status"] != "pending"]
    if not ran:
        return answer.strip()
    lines = [
        f"[step {step['number']}] {step['goal']} — {step['status']}: {step.get('result') or ''}"
        for step in ran
    ]
    return answer.strip() + "\n\nWhat each step found:\n" + "\n".join(lines)


async def resume(state: PlannerState) -> dict[str, Any]:
    """Entry point for continuing a thread a limit stopped; the phase's node re-checks."""
    return {"stop_reason": None, "final_message": None, "resume_at": None}


def route_by_phase(
    state: PlannerState,
) -> Literal["plan", "review", "execute", "replan", "__end__"]:
    if state.get("stop_reason"):
        return "__end__"  # completed, rejected, or stopped at a limit (resume_at says where)
    phase = state.get("phase")
    if phase == "planning":
        return "plan"
    if phase == "reviewing":
        return "review"
    if phase == "executing":
        return "execute"
    if phase == "replanning":
        return "replan"
    return "__end__"


def compile_planner(
    checkpointer: BaseCheckpointSaver | None,
) -> CompiledStateGraph[PlannerState, RunContext, PlannerOutput, PlannerOutput]:
    # The step agent has no checkpointer of its own: it uses the parent's, per invocation.
    step_agent = agent.build_agent_graph().compile(name="plan_step")
    return build_planner_graph(step_agent).compile(checkpointer=checkpointer, name=GRAPH_ID)
