"""Triage: a deterministic workflow for an incoming request.

    classify → lookup → draft → approve → act → END

The path is fixed in code; models only fill in content: ``classify`` returns a
``Classification`` (category, urgency, summary) and ``draft`` a ``Draft`` (reply and
ticket), both as validated structured output. ``lookup`` searches related notes and
memories through the tool executor as the requester (a source the assistant may not use,
or that is unavailable, is skipped and said so). Nothing is written or sent before a
reviewer decides at ``approve`` (the standard interrupt payload: one action per
``tickets_create`` / ``email_send`` call); ``act`` then runs the approved calls through
the executor, whose ledger makes a replay return the recorded result.

Input: ``{"messages": [<the request>], "reply_to": "name@example.org"}`` (``reply_to``
optional: without it no e-mail is proposed).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict, Field

from graphs import limits as lim
from graphs.context import RunContext
from graphs.interrupts import ALLOWED_DECISIONS, parse_decisions
from graphs.model_calls import family_prompt, structured_call
from providers.errors import BudgetExceeded
from tools import CallContext, CallKey, ToolCall

GRAPH_ID = "triage"
GRAPH_VERSION = "1"
PROMPT = "triage_classify"
PROMPTS = ("triage_classify", "triage_draft")
"""The prompt family: versioned together, pinned per thread by the main prompt's version."""
TICKET_TOOL = "tickets_create"
EMAIL_TOOL = "email_send"
URGENCY_PRIORITY = {"low": "low", "normal": "normal", "high": "high", "urgent": "urgent"}


class Classification(BaseModel):
    """Classify the incoming request."""

    model_config = ConfigDict(extra="forbid", title="classify_request")

    category: Literal["bug", "incident", "question", "feature_request", "billing", "other"]
    urgency: Literal["low", "normal", "high", "urgent"]
    summary: str = Field(min_length=1, max_length=200)
    search_terms: list[str] = Field(default_factory=list, max_length=5)


class Draft(BaseModel):
    """Draft the reply to the requester and the ticket for the team."""

    model_config = ConfigDict(extra="forbid", title="draft_reply")

    reply: str = Field(min_length=1, max_length=10_000)
    ticket_title: str = Field(min_length=1, max_length=500)
    ticket_body: str = Field(min_length=1, max_length=20_000)


class TriageState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    reply_to: NotRequired[str | None]
    classification: NotRequired[dict[str, Any] | None]
    related: NotRequired[dict[str, Any] | None]
    """{"notes": [...], "memories": [...], "skipped": {source: reason}}."""
    draft: NotRequired[dict[str, Any] | None]
    proposed: NotRequired[list[dict[str, Any]]]
    """The calls put to the reviewer: {id, name, args}."""
    approved: NotRequired[list[dict[str, Any]]]
    """Calls the reviewer cleared: {id, name, args, approved_by}."""
    results: NotRequired[list[dict[str, Any]]]
    """What each call did: {name, ok, decision, output | error}."""
    model_calls: NotRequired[int]
    stop_reason: NotRequired[str | None]
    final_message: NotRequired[str | None]
    resume_at: NotRequired[str | None]


def _request(state: TriageState) -> str:
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def _check_model(state: TriageState, ctx: RunContext, node: str) -> dict[str, Any] | None:
    hit = lim.before_model(state.get("model_calls") or 0, ctx.limits, ctx.deadline)
    if hit is None:
        return None
    return {
        "stop_reason": hit.reason,
        "final_message": f"Stopped: {hit.message}.",
        "resume_at": node,
    }


async def classify(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    reset: dict[str, Any] = {
        "classification": None,
        "related": None,
        "draft": None,
        "proposed": [],
        "approved": [],
        "results": [],
        "model_calls": 0,
        "stop_reason": None,
        "final_message": None,
        "resume_at": None,
    }
    if stop := _check_model({**state, "model_calls": 0}, ctx, "classify"):
        return {**reset, **stop}
    try:
        result, _tokens = await structured_call(
            ctx,
            Classification,
            family_prompt(ctx, "triage_classify"),
            [HumanMessage(f"Request:\n{_request(state)}")],
            node="classify",
        )
    except BudgetExceeded as exc:
        return {**reset, "stop_reason": exc.reason, "final_message": f"Stopped: {exc}."}
    return {**reset, "classification": result.model_dump(), "model_calls": 1}


async def lookup(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Related notes and memories, read as the requester; unavailable sources are skipped."""
    ctx = runtime.context
    classification = state.get("classification") or {}
    query = " ".join(classification.get("search_terms") or []) or classification.get("summary", "")
    related: dict[str, Any] = {"notes": [], "memories": [], "skipped": {}}
    searches = [
        ("notes", "notes_search", {"query": query, "limit": 5}),
        ("memories", "memory_search", {"query": query or _request(state)[:200], "limit": 5}),
    ]
    for key, tool, args in searches:
        if tool not in ctx.tool_names or ctx.tools.registry.get(tool) is None:
            related["skipped"][key] = f"{tool} is not available to this assistant"
            continue
        outcome = await ctx.tools.execute(
            ToolCall(tool, args, f"triage-{key}"),
            ctx.principal,
            CallContext(run_id=ctx.run_id, allowed_scopes=ctx.allowed_scopes),
        )
        if not outcome.ok:
            related["skipped"][key] = outcome.content()
            continue
        output = outcome.output or {}
        related[key] = output.get(key) or output.get("results") or []
    return {"related": related}


async def draft(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    if stop := _check_model(state, ctx, "draft"):
        return stop
    context = {
        "classification": state.get("classification"),
        "related": state.get("related"),
    }
    text = (
        f"Request:\n{_request(state)}\n\nClassification and related records (data):\n"
        f"{json.dumps(context, ensure_ascii=False, default=str)}"
    )
    try:
        result, _tokens = await structured_call(
            ctx, Draft, family_prompt(ctx, "triage_draft"), [HumanMessage(text)], node="draft"
        )
    except BudgetExceeded as exc:
        return {"stop_reason": exc.reason, "final_message": f"Stopped: {exc}."}
    urgency = (state.get("classification") or {}).get("urgency", "normal")
    proposed = [
        {
            "id": "triage-ticket",
            "name": TICKET_TOOL,
            "args": {
                "title": result.ticket_title,
                "body": result.ticket_body,
                "priority": URGENCY_PRIORITY.get(urgency, "normal"),
            },
        }
    ]
    if state.get("reply_to"):
        summary = (state.get("classification") or {}).get("summary", "your request")
        proposed.append(
            {
                "id": "triage-email",
                "name": EMAIL_TOOL,
                "args": {
                    "to": [state["reply_to"]],
                    "subject": f"Re: {summary}",
                    "body": result.reply,
                },
            }
        )
    return {
        "draft": result.model_dump(),
        "proposed": proposed,
        "model_calls": (state.get("model_calls") or 0) + 1,
        "stop_reason": None,  # a run continued after a limit stop goes on from here
        "final_message": None,
        "resume_at": None,
    }


async def approve(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Every write waits here for a reviewer (the same payload as the agent's gate)."""
    ctx = runtime.context
    proposed = state.get("proposed") or []
    requests = []
    for item in proposed:
        tool = ctx.tools.registry.get(item["name"])
        what = tool.description if tool else item["name"]
        requests.append(
            {
                "name": item["name"],
                "args": item["args"],
                "description": f"Triage proposes: {what}",
            }
        )
    answer = interrupt(
        {
            "action_requests": requests,
            "review_configs": [
                {"action_name": item["name"], "allowed_decisions": list(ALLOWED_DECISIONS)}
                for item in proposed
            ],
        }
    )
    decisions = parse_decisions(answer, expected=len(proposed))
    reviewer = ctx.decided_by or ctx.principal.user
    info = runtime.execution_info
    approved: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for item, choice in zip(proposed, decisions, strict=True):
        call = ToolCall(item["name"], item["args"], item["id"])
        await ctx.tools.record_decision(
            call,
            ctx.principal,
            decided_by=reviewer,
            decision={"approve": "approved", "edit": "edited", "reject": "rejected"}[choice.type],
            run_id=ctx.run_id,
            thread_id=info.thread_id if info is not None else None,
            note=choice.message,
        )
        if choice.type == "reject":
            results.append(
                {"name": item["name"], "ok": False, "decision": "rejected", "error": choice.message}
            )
        elif choice.type == "edit" and choice.name not in (None, item["name"]):
            results.append(
                {
                    "name": item["name"],
                    "ok": False,
                    "decision": "invalid_edit",
                    "error": "an edit may change the arguments, not the tool",
                }
            )
        else:
            args = (
                choice.args if choice.type == "edit" and choice.args is not None else item["args"]
            )
            approved.append({**item, "args": args, "approved_by": reviewer})
    return {"approved": approved, "results": results}


async def act(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Run the approved calls; the executor re-checks each (edited arguments included)."""
    ctx = runtime.context
    info = runtime.execution_info
    assert info is not None and info.thread_id is not None
    results = list(state.get("results") or [])
    for item in state.get("approved") or []:
        outcome = await ctx.tools.execute(
            ToolCall(item["name"], item["args"], item["id"]),
            ctx.principal,
            CallContext(
                key=CallKey(info.thread_id, info.task_id, item["id"]),
                run_id=ctx.run_id,
                approved_by=item["approved_by"],
                allowed_scopes=ctx.allowed_scopes,
            ),
        )
        entry: dict[str, Any] = {"name": item["name"], "ok": outcome.ok, "decision": "approved"}
        if outcome.ok:
            entry["output"] = outcome.output
        else:
            entry["error"] = outcome.content()
        results.append(entry)
    summary = _summary(state, results)
    return {
        "results": results,
        "approved": [],
        "stop_reason": lim.COMPLETED,
        "final_message": summary,
        "resume_at": None,
        "messages": [AIMessage(summary)],
    }


def _summary(state: TriageState, results: list[dict[str, Any]]) -> str:
    classification = state.get("classification") or {}
    lines = [
        f"Triaged as {classification.get('category')} ({classification.get('urgency')}): "
        f"{classification.get('summary')}"
    ]
    for result in results:
        if result["ok"]:
            output = result.get("output") or {}
            ident = output.get("id") or output.get("outbox_id")
            lines.append(f"- {result['name']}: done" + (f" (id {ident})" if ident else ""))
        else:
            lines.append(f"- {result['name']}: {result['decision']} — {result.get('error') or ''}")
    if not any(result["ok"] for result in results):
        lines.append("Nothing was written or sent.")
    return "\n".join(lines)


def route_on(state: TriageState, next_node: str) -> str:
    return "__end__" if state.get("stop_reason") else next_node


def build_triage_graph() -> StateGraph[TriageState, RunContext, TriageState, TriageState]:
    builder = StateGraph(TriageState, context_schema=RunContext)
    builder.add_node("classify", classify)
    builder.add_node("lookup", lookup)
    builder.add_node("draft", draft)
    builder.add_node("approve", approve)
    builder.add_node("act", act)
    builder.add_edge(START, "classify")
    builder.add_conditional_edges("classify", lambda s: route_on(s, "lookup"), ["lookup", END])
    builder.add_edge("lookup", "draft")
    builder.add_conditional_edges("draft", lambda s: route_on(s, "approve"), ["approve", END])
    builder.add_edge("approve", "act")
    builder.add_edge("act", END)
    return builder


def compile_triage(
    checkpointer: BaseCheckpointSaver | None,
) -> CompiledStateGraph[TriageState, RunContext, TriageState, TriageState]:
    return build_triage_graph().compile(checkpointer=checkpointer, name=GRAPH_ID)
