"""The tool-using agent: model → gate → act → model …, with limits and human interrupts.

State holds messages and JSON-able values only. Dependencies (model, tools,
principal, limits) come from ``RunContext``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graphs import limits as lim
from graphs.context import RunContext
from graphs.interrupt_review import InterruptReview, Proposal, propose
from graphs.interrupts import Decision, decider_of, parse_decisions
from identity import Principal
from memory.minimisation import minimise_new_input
from memory.thread_pseudonyms import pseudonymise_history, restore_message, saved_update
from providers.errors import BudgetExceeded
from providers.router import CallInfo, RouterChatModel
from providers.websearch import citations, search_used
from tools import CallContext, CallKey, ToolCall, ToolError
from tools.audit import AuditRecord
from tools.policy import PolicyDecision

GRAPH_ID = "agent"
NOT_EXECUTED = "Error (not_executed)"
GRAPH_VERSION = "1"
PROMPT = "agent"


class AgentOutput(TypedDict):
    """The state as the graph shows it (values and updates streams, thread state, output):
    ``AgentState`` without its private channels."""

    messages: Annotated[list[AnyMessage], add_messages]
    approved: NotRequired[list[dict[str, Any]]]
    """Calls cleared by the gate for ``act``: {id, name, args, approved_by}."""
    stop_reason: NotRequired[str | None]
    final_message: NotRequired[str | None]
    resume_at: NotRequired[str | None]
    """After a limit stop: the node to continue at (``resume``, which re-checks limits)."""
    tainted: NotRequired[bool]
    """The thread has read untrusted content (web, files, documents, external tools):
    from then on write and destructive calls need approval. Checkpointed with the
    messages, so it survives interrupts, resumes and restarts, and never resets while
    that content is still in the history the model sees."""
    recalled_memories: NotRequired[list[dict[str, Any]]]
    """Ids and scores (never the text) of the long-term memories the last model call was
    given, when the assistant's ``memory`` option is on: the trace of what it saw."""


class AgentState(AgentOutput):
    pseudonyms: NotRequired[dict[str, dict[str, dict[str, str]]]]
    """Private (issue 5): {tenant: {user: {token: value}}}, what minimisation replaced for
    the model, so stored answers show the values while the model sees tokens
    (``memory.thread_pseudonyms``). Never in the graph's output, events or API state."""


def fresh_turn() -> dict[str, Any]:
    """State reset that goes with new user input: counters are per run."""
    return {
        "approved": [],
        "stop_reason": None,
        "final_message": None,
        "resume_at": None,
    }


def turn_counts(state: AgentState) -> tuple[int, int]:
    """Model steps and tool calls of the current turn (since the last user message),
    counted from the messages themselves: no counter channels to checkpoint each step."""
    steps = tool_calls = 0
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, AIMessage):
            steps += 1
        elif isinstance(message, ToolMessage):
            tool_calls += 1
    return steps, tool_calls


def _last_ai(state: AgentState) -> AIMessage | None:
    for message in reversed(state.get("messages") or []):
        if isinstance(message, AIMessage):
            return message
    return None


def model_view(messages: list[AnyMessage]) -> list[AnyMessage]:
    """The conversation as providers require it: every tool call answered right after the
    message that made it. Calls a stopped run never made get a ``not_executed`` answer
    (not stored), and answers stored later (after new user input) move up to their call."""
    answers = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    view: list[AnyMessage] = []
    for message in messages:
        if isinstance(message, ToolMessage):
            continue
        view.append(message)
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                view.append(
                    answers.get(call["id"] or "")
                    or ToolMessage(
                        content=f"{NOT_EXECUTED}: the run stopped before this call was made",
                        tool_call_id=call["id"] or "",
                        name=call["name"],
                        status="error",
                    )
                )
    return view


def turn_tokens(state: AgentState) -> int:
    """Model tokens (in + out) used since the last user message, from the replies' usage."""
    used = 0
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, AIMessage) and message.usage_metadata:
            used += int(message.usage_metadata.get("total_tokens", 0))
    return used


def _budget_stop(reason: str, message: str) -> dict[str, Any]:
    return {"stop_reason": reason, "final_message": f"Stopped: {message}.", "resume_at": "resume"}


async def call_model(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    history = model_view(state["messages"])
    prompt = [SystemMessage(ctx.prompt.text)] if ctx.prompt else []
    remaining: int | None = None
    if ctx.limits.max_run_tokens:
        remaining = ctx.limits.max_run_tokens - turn_tokens(state)
        if remaining <= 0:
            return _budget_stop(
                lim.TOKEN_BUDGET,
                f"the run used its token budget ({ctx.limits.max_run_tokens} tokens); "
                "raise max_run_tokens and resume the thread to continue",
            )
    recalled: dict[str, Any] = {}
    if ctx.memory is not None:
        block, traced = await ctx.memory.context_block(dict(state), runtime)
        if block:
            prompt.append(SystemMessage(block))
        if traced or state.get("recalled_memories"):  # each step's trace shows what it saw
            recalled["recalled_memories"] = traced
    # Issue 5: answers (text and tool-call arguments) are stored restored; their values,
    # also in tool results and user messages, are tokens again for the provider.
    # One map per run and user, with or without memory (the recalled block's map when
    # there is one). Personal data the user typed that the map does not know yet gets
    # tokens in it (the run's events and stored answers are restored with it).
    mapping = ctx.pseudonyms.map_for(
        state, ctx.principal, ctx.memory.pseudonyms_of(ctx.principal) if ctx.memory else None
    )
    history = minimise_new_input(history, ctx.pseudonyms.policy, mapping)
    history = pseudonymise_history(history, mapping)
    kwargs: dict[str, Any] = {}
    if isinstance(getattr(ctx.model, "bound", ctx.model), RouterChatModel):
        metadata = get_config().get("metadata") or {}
        kwargs["call"] = CallInfo(
            tenant=ctx.principal.tenant,
            user=ctx.principal.user,
            run_id=ctx.run_id,
            assistant_id=metadata.get("assistant_id"),
            node=str(metadata.get("langgraph_node") or "model"),
            prompt_name=ctx.prompt.name if ctx.prompt else None,
            prompt_version=ctx.prompt.version if ctx.prompt else None,
            max_tokens=remaining,
            web_search=bool(ctx.options.get("web_search")),
        )
    try:
        reply = await ctx.model.ainvoke([*prompt, *history], **kwargs)
    except BudgetExceeded as exc:
        return _budget_stop(exc.reason, str(exc))
    # Issue 5: restored text and tool-call arguments, so the gate, approval previews and
    # interrupts, the ledger, the audit and the tools all see the user's values.
    reply = restore_message(reply, mapping)
    update: dict[str, Any] = {"messages": [reply], **recalled}
    if saved := saved_update(state, ctx.principal, mapping):
        update["pseudonyms"] = saved
    if search_used(reply):
        # Search results are untrusted content the model has now read: the run is tainted
        # (later writes need approval) and the search is audited like a tool call.
        update["tainted"] = True
        await _audit_web_search(ctx, runtime, reply)
    return update


async def _audit_web_search(
    ctx: RunContext, runtime: Runtime[RunContext], reply: BaseMessage
) -> None:
    info = runtime.execution_info
    searched = reply.response_metadata.get("web_search") or {}
    await ctx.tools.audit.append(
        AuditRecord(
            event="web_search",
            tenant=ctx.principal.tenant,
            actor=ctx.principal.user,
            tool="web_search",
            decision="allow",
            status="ok",
            run_id=ctx.run_id,
            thread_id=info.thread_id if info is not None else None,
            args={"queries": searched.get("queries") or []},
            result={"citations": citations(reply)},
        )
    )


async def gate(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Check every proposed call; ask a human (``interrupt``) for those that need it."""
    ctx = runtime.context
    ai = _last_ai(state)
    assert ai is not None
    errors: list[ToolMessage] = []
    approved: list[dict[str, Any]] = []
    pending: list[tuple[ToolCall, str]] = []
    proposals: list[Proposal] = []
    tainted = bool(state.get("tainted"))
    for raw in ai.tool_calls:
        call = _as_call(raw)
        decision = _check(ctx, call, tainted)
        if decision.verdict == "deny":
            assert decision.error is not None
            errors.append(_error_message(call, decision.error.code, decision.error.message))
        elif decision.verdict == "approve":
            pending.append((call, decision.reason))
            proposals.append(await propose(ctx, call, decision))
        else:
            approved.append(_cleared(call, None))
    update: dict[str, Any] = {}
    if pending:
        review = InterruptReview(ctx, runtime, proposals)
        request = await review.request()
        answer = interrupt(request)
        while True:
            while refusal := _decider_refusal(ctx, pending, answer):
                # Answered by someone the approval policy refuses (runs.py refuses them
                # before this; a replay re-checks each stored answer): keep waiting.
                answer = interrupt(_with_refusal(request, refusal))
            decisions = parse_decisions(answer, expected=len(pending))
            reviewer = _decider(ctx, answer).user
            if await review.still_as_shown(decisions, reviewer):
                break
            # A target changed after the reviewer saw its dry run: nothing runs; the
            # reviewer decides again on the fresh dry run (graphs.interrupt_review).
            request = await review.request()
            answer = interrupt(request)
        edited_args: dict[str, dict[str, Any]] = {}
        for (call, _reason), choice in zip(pending, decisions, strict=True):
            outcome = _apply_decision(ctx, call, choice, tainted, reviewer)
            await _audit_decision(ctx, runtime, call, choice, reviewer)
            if isinstance(outcome, ToolMessage):
                errors.append(outcome)
            else:
                approved.append(outcome)
                if outcome["args"] != call.args:
                    edited_args[call.id] = outcome["args"]
        if edited_args:
            update["messages"] = [_with_edited_args(ai, edited_args)]
    messages = [*update.get("messages", []), *errors]
    if messages:  # an empty list would still re-serialise the whole history
        update["messages"] = messages
    update["approved"] = approved
    return update


def _decider(ctx: RunContext, answer: Any) -> Principal:
    """Who gave ``answer``: the server's stamp (``runtime.runs``); an answer given in
    process without one counts as the run's own ``decided_by`` (roles known only when
    that is the requester)."""
    stamped = decider_of(answer)
    if stamped is not None:
        return stamped
    if ctx.decided_by in (None, ctx.principal.user):
        return ctx.principal
    return Principal(tenant=ctx.principal.tenant, user=ctx.decided_by or "")


def _decider_refusal(ctx: RunContext, pending: list[tuple[ToolCall, str]], answer: Any) -> str:
    """Why the approval policy (roles per risk, four-eyes) refuses whoever gave ``answer``
    for one of the ``pending`` calls; "" when it does not."""
    decider = _decider(ctx, answer)
    policy = ctx.tools.approvals.policy
    for call, _reason in pending:
        tool = ctx.tools.registry.get(call.name)
        refusal = tool and policy.refusal(
            decider, risk=tool.risk, requester=ctx.principal.user, door="interrupt"
        )
        if refusal:
            return refusal
    return ""


def _with_refusal(request: dict[str, Any], refusal: str) -> dict[str, Any]:
    actions = [
        {
            **action,
            "description": f"The last decision was refused ({refusal}). {action['description']}",
        }
        for action in request["action_requests"]
    ]
    return {**request, "action_requests": actions}


async def _audit_decision(
    ctx: RunContext,
    runtime: Runtime[RunContext],
    call: ToolCall,
    choice: Decision,
    reviewer: str,
) -> None:
    info = runtime.execution_info
    await ctx.tools.record_decision(
        call,
        ctx.principal,
        decided_by=reviewer,
        decision={"approve": "approved", "edit": "edited", "reject": "rejected"}[choice.type],
        run_id=ctx.run_id,
        thread_id=info.thread_id if info is not None else None,
        note=choice.message,
    )


def _check(ctx: RunContext, call: ToolCall, tainted: bool = False) -> PolicyDecision:
    if call.name not in ctx.tool_names and ctx.tools.registry.get(call.name) is not None:
        return PolicyDecision(
            "deny",
            error=ToolError(
                "unknown_tool", f"tool {call.name!r} is not available to this assistant"
            ),
        )
    return ctx.tools.policy.check(
        call, ctx.principal, allowed_scopes=ctx.allowed_scopes, tainted=tainted
    )


def _apply_decision(
    ctx: RunContext, call: ToolCall, choice: Decision, tainted: bool, reviewer: str
) -> dict[str, Any] | ToolMessage:
    if choice.type == "reject":
        text = choice.message or "no reason given"
        return _error_message(call, "rejected", f"a reviewer rejected this call: {text}")
    if choice.type == "edit":
        edited = ToolCall(name=choice.name or call.name, args=choice.args or {}, id=call.id)
        if edited.name != call.name:
            return _error_message(
                call, "invalid_edit", "an edit may change the arguments, not the tool"
            )
        recheck = _check(ctx, edited, tainted)
        if recheck.verdict == "deny":
            assert recheck.error is not None
            return _error_message(call, recheck.error.code, recheck.error.message)
        return _cleared(edited, reviewer)
    return _cleared(call, reviewer)


def _cleared(call: ToolCall, approved_by: str | None) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "args": call.args, "approved_by": approved_by}


def _error_message(call: ToolCall, code: str, text: str) -> ToolMessage:
    return ToolMessage(
        content=f"Error ({code}): {text}", tool_call_id=call.id, name=call.name, status="error"
    )


def _with_edited_args(ai: AIMessage, edited: dict[str, dict[str, Any]]) -> AIMessage:
    calls = [{**call, "args": edited.get(call["id"] or "", call["args"])} for call in ai.tool_calls]
    return ai.model_copy(update={"tool_calls": calls})


async def act(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Run the cleared calls through the executor; the ledger makes a replay return the
    recorded result instead of acting again."""
    ctx = runtime.context
    info = runtime.execution_info
    assert info is not None and info.thread_id is not None
    results: list[ToolMessage] = []
    tainted = bool(state.get("tainted"))
    read_untrusted = False
    cleared = state.get("approved")
    if not cleared:  # routed here directly: every call of the last message was allowed
        ai = _last_ai(state)
        cleared = [_cleared(_as_call(raw), None) for raw in (ai.tool_calls if ai else [])]
    for item in cleared:
        call = ToolCall(name=item["name"], args=item["args"], id=item["id"])
        outcome = await ctx.tools.execute(
            call,
            ctx.principal,
            CallContext(
                key=CallKey(info.thread_id, info.task_id, call.id),
                run_id=ctx.run_id,
                approved_by=item.get("approved_by"),
                allowed_scopes=ctx.allowed_scopes,
                tainted=tainted,
            ),
        )
        read_untrusted = read_untrusted or not outcome.trusted
        results.append(
            ToolMessage(
                content=outcome.content(),
                tool_call_id=call.id,
                name=call.name,
                status="success" if outcome.ok else "error",
            )
        )
    update: dict[str, Any] = {"messages": results}
    if read_untrusted and not tainted:
        update["tainted"] = True
    if state.get("approved"):  # writing an unchanged channel still costs a checkpoint write
        update["approved"] = []
    return update


async def finish(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    if runtime.context is not None and runtime.context.memory is not None:
        # In the background (the answer is not held up); idempotent if this node reruns.
        await runtime.context.memory.remember(dict(state), runtime)
    ai = _last_ai(state)
    text = ai.text if ai is not None else ""
    if runtime.context is not None and runtime.context.memory is not None:
        # The user sees their own recalled values; the history keeps the pseudonyms.
        text = runtime.context.memory.restore_answer(text, runtime)
    return {"stop_reason": lim.COMPLETED, "final_message": text, "resume_at": None}


async def stop(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """End the run at a limit; resuming (``Command(goto="resume")``) re-checks the limits."""
    hit = _limit_hit(state, runtime.context)
    assert hit is not None, "stop reached without a limit being hit"
    return {
        "stop_reason": hit.reason,
        "final_message": f"Stopped: {hit.message}.",
        "resume_at": "resume",
    }


async def resume(state: AgentState) -> dict[str, Any]:
    """Entry point for continuing a thread that a limit stopped."""
    return {"stop_reason": None, "final_message": None, "resume_at": None}


def _pending_calls(state: AgentState) -> int:
    """Tool calls of the last message that were proposed but never answered."""
    last = state["messages"][-1] if state["messages"] else None
    if not isinstance(last, AIMessage) or not last.tool_calls:
        return 0
    return len(last.tool_calls)


def _limit_hit(state: AgentState, ctx: RunContext) -> lim.LimitHit | None:
    proposed = _pending_calls(state)
    if proposed:
        return lim.before_tools(turn_counts(state)[1], proposed, ctx.limits, ctx.deadline)
    return lim.before_model(turn_counts(state)[0], ctx.limits, ctx.deadline)


def route_after_model(
    state: AgentState, runtime: Runtime[RunContext]
) -> Literal["gate", "act", "finish", "stop", "__end__"]:
    if state.get("stop_reason") in (lim.TOKEN_BUDGET, lim.SPEND_BUDGET):
        return "__end__"  # the model node stopped the run at a budget (its message says which)
    ai = _last_ai(state)
    if ai is None or not ai.tool_calls:
        return "finish"
    ctx = runtime.context
    if lim.before_tools(turn_counts(state)[1], len(ai.tool_calls), ctx.limits, ctx.deadline):
        return "stop"
    # Calls the policy allows outright go straight to act (whose executor checks them
    # again); the gate step runs only when a call is refused or needs a human.
    tainted = bool(state.get("tainted"))
    if all(_check(ctx, _as_call(raw), tainted).verdict == "allow" for raw in ai.tool_calls):
        return "act"
    return "gate"


def _as_call(raw: Any) -> ToolCall:
    return ToolCall(name=raw["name"], args=raw["args"], id=raw["id"] or "")


def route_after_gate(
    state: AgentState, runtime: Runtime[RunContext]
) -> Literal["act", "model", "stop"]:
    if state.get("approved"):
        return "act"
    return route_to_model(state, runtime)


def route_to_model(state: AgentState, runtime: Runtime[RunContext]) -> Literal["model", "stop"]:
    ctx = runtime.context
    if lim.before_model(turn_counts(state)[0], ctx.limits, ctx.deadline):
        return "stop"
    return "model"


def route_resume(
    state: AgentState, runtime: Runtime[RunContext]
) -> Literal["gate", "model", "stop"]:
    if _limit_hit(state, runtime.context):
        return "stop"
    return "gate" if _pending_calls(state) else "model"


def build_agent_graph() -> StateGraph[AgentState, RunContext, AgentOutput, AgentOutput]:
    builder = StateGraph(
        AgentState, context_schema=RunContext, input_schema=AgentOutput, output_schema=AgentOutput
    )
    builder.add_node("model", call_model)
    builder.add_node("gate", gate)
    builder.add_node("act", act)
    builder.add_node("finish", finish)
    builder.add_node("stop", stop)
    builder.add_node("resume", resume)
    builder.add_conditional_edges(START, route_to_model)
    builder.add_conditional_edges("resume", route_resume)
    builder.add_conditional_edges("model", route_after_model)
    builder.add_conditional_edges("gate", route_after_gate)
    builder.add_conditional_edges("act", route_to_model)
    builder.add_edge("finish", END)
    builder.add_edge("stop", END)
    return builder


def compile_agent(
    checkpointer: BaseCheckpointSaver | None,
) -> CompiledStateGraph[AgentState, RunContext, AgentOutput, AgentOutput]:
    return build_agent_graph().compile(checkpointer=checkpointer, name=GRAPH_ID)
