"""An example of your own graph on relaygraph: recall what the user's workspace already
holds, propose a note, wait for a reviewer, then write it.

It uses the three things a relaygraph graph gets through ``runtime.context`` (a
``graphs.context.RunContext``): the permissioned tool executor (the same gate, ledger and
audit as the built-in agent and MCP clients), the requester's identity and scopes, and the
run's limits and options. The approval is an ordinary LangGraph ``interrupt()`` carrying
the standard payload, so the console, Agent Inbox and ``relaygraph resume`` can decide it.

Register it (a file path or a module path both work):

    RELAYGRAPH_GRAPHS='{"approved_note": "examples/approved_note.py:graph"}'
    relaygraph run --assistant approved_note "Launch moved to Friday"
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict

from graphs.context import RunContext
from graphs.interrupts import ALLOWED_DECISIONS, parse_decisions
from tools import CallContext, CallKey, ToolCall

GRAPH_VERSION = "1"
"""Threads pin the version they started with; bump it when the state's shape changes."""


class ASSISTANT_OPTIONS(BaseModel):  # the name relaygraph looks for
    """Options an assistant of this graph may set (checked when the assistant is created)."""

    model_config = ConfigDict(extra="forbid")
    title_chars: int = 60


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    related: list[dict[str, Any]]
    proposed: dict[str, Any]
    decision: str


def _request(state: State) -> str:
    for message in reversed(state.get("messages") or []):
        if message.type == "human":
            return str(message.content)
    return ""


async def recall(state: State, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Read related notes as the requester (a read: no approval, still audited)."""
    ctx = runtime.context
    outcome = await ctx.tools.execute(
        ToolCall("notes_search", {"query": _request(state)[:200], "limit": 3}, "recall"),
        ctx.principal,
        CallContext(run_id=ctx.run_id, allowed_scopes=ctx.allowed_scopes),
    )
    return {"related": (outcome.output or {}).get("notes", []) if outcome.ok else []}


async def propose(state: State, runtime: Runtime[RunContext]) -> dict[str, Any]:
    text = _request(state)
    chars = int(runtime.context.options.get("title_chars", 60))
    return {"proposed": {"title": text[:chars] or "note", "body": text}}


async def review(state: State, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Stop for a reviewer: approve, edit the arguments, or reject with a message."""
    proposed = state["proposed"]
    seen = ", ".join(note.get("title", "") for note in state.get("related") or []) or "none"
    answer = interrupt(
        {
            "action_requests": [
                {
                    "name": "notes_create",
                    "args": proposed,
                    "description": f"Write this note? Related notes: {seen}",
                }
            ],
            "review_configs": [
                {"action_name": "notes_create", "allowed_decisions": list(ALLOWED_DECISIONS)}
            ],
        }
    )
    (choice,) = parse_decisions(answer, expected=1)
    if choice.type == "reject":
        reason = choice.message or "no reason given"
        return {"decision": "rejected", "messages": [AIMessage(f"Not written: {reason}")]}
    if choice.type == "edit" and choice.args is not None:
        proposed = choice.args
    return {"decision": "approved", "proposed": proposed}


async def write(state: State, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Run the approved call. The executor gates it again (edited arguments included) and
    its ledger key makes a replay after a crash return the recorded result, not a second
    note."""
    ctx = runtime.context
    info = runtime.execution_info
    assert info is not None and info.thread_id is not None
    outcome = await ctx.tools.execute(
        ToolCall("notes_create", state["proposed"], "write"),
        ctx.principal,
        CallContext(
            key=CallKey(info.thread_id, info.task_id, "write"),
            run_id=ctx.run_id,
            approved_by=ctx.decided_by or ctx.principal.user,
            allowed_scopes=ctx.allowed_scopes,
        ),
    )
    if outcome.ok:
        note = outcome.output or {}
        text = f"Saved note {note.get('id')}: {note.get('title')}"
    else:
        text = f"Not written: {outcome.content()}"
    return {"messages": [AIMessage(text)]}


def _after_review(state: State) -> str:
    return "write" if state.get("decision") == "approved" else END


builder = StateGraph(State, context_schema=RunContext)
builder.add_node("recall", recall)
builder.add_node("propose", propose)
builder.add_node("review", review)
builder.add_node("write", write)
builder.add_edge(START, "recall")
builder.add_edge("recall", "propose")
builder.add_edge("propose", "review")
builder.add_conditional_edges("review", _after_review, ["write", END])
builder.add_edge("write", END)
graph = builder  # relaygraph compiles it with its own checkpointer
