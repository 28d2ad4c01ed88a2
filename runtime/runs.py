"""Executing one run of a thread: rows, checkpoints, limits, events and the summary.

The CLI calls this directly; the run queue (``runtime.worker``) will call the same code.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import Command
from sqlalchemy import select

from graphs import limits as lim
from graphs.agent import fresh_turn
from graphs.assistants import AssistantConfig, AssistantNotFound
from graphs.context import RunContext
from graphs.interrupts import InvalidDecision, parse_decisions
from graphs.prompts import PromptNotFound, load_prompt
from graphs.registry import GraphEntry, GraphNotFound
from graphs.serialization import to_jsonable
from identity import Principal
from providers import ModelSpecError
from runtime.system import System
from store.models import Run, RunEvent, Thread, utcnow

CliStatus = Literal["success", "interrupted", "limit", "error", "cancelled"]
EVENT_BATCH = 64
EVENT_FLUSH_SECONDS = 0.25
HARD_TIMEOUT_GRACE_SECONDS = 5.0


class RunRequestError(ValueError):
    """The request cannot start a run (unknown assistant, thread, bad decision...).
    Nothing was written."""


@dataclass(frozen=True)
class RunRequest:
    principal: Principal
    assistant_id: str | None = None
    thread_id: str | None = None
    input_text: str | None = None
    """New user input; None with no ``decisions`` means: continue the thread."""
    decisions: Any = None
    """A resume value for a pending interrupt ({"decisions": [...]})."""
    limits: dict[str, Any] | None = None
    durability: Literal["sync", "async", "exit"] | None = None


@dataclass
class RunSummary:
    thread_id: str
    run_id: str
    status: CliStatus
    run_status: str
    stop_reason: str
    interrupt: Any
    final_message: str | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "run_id": self.run_id,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "interrupt": self.interrupt,
            "final_message": self.final_message,
        }


@dataclass
class _Plan:
    """Everything resolved before the first row is written."""

    thread: Thread | None
    thread_id: str
    assistant: AssistantConfig
    entry: GraphEntry
    graph: Pregel
    graph_input: Any
    requester: Principal
    limits: lim.Limits
    prompt_version: str | None
    model_spec: str
    context: dict[str, Any] = field(default_factory=dict)


CLI_STATUS: dict[str, CliStatus] = {
    lim.COMPLETED: "success",
    lim.WAITING_FOR_HUMAN: "interrupted",
    lim.CANCELLED: "cancelled",
    lim.ERROR: "error",
    **{reason: "limit" for reason in lim.LIMIT_REASONS},
}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Runner:
    def __init__(self, system: System) -> None:
        self.system = system

    async def run(self, request: RunRequest) -> RunSummary:
        """Execute the run to its end and return the summary (events are stored, not shown)."""
        summary: RunSummary | None = None
        async for event in self.stream(request):
            if event["event"] == "end":
                summary = event["summary"]
        assert summary is not None
        return summary

    async def stream(self, request: RunRequest) -> AsyncIterator[dict[str, Any]]:
        """Execute a run, yielding ``metadata``, then ``updates`` (one per node step), then
        ``end`` with the ``RunSummary``.

        Raises:
            RunRequestError: the request is invalid; nothing was written.
        """
        plan = await self._plan(request)
        run_id = str(uuid.uuid4())
        await self._start(plan, run_id, request.principal)
        yield {"event": "metadata", "thread_id": plan.thread_id, "run_id": run_id}
        recorder = _EventRecorder(self.system, run_id)
        await recorder.add(
            "metadata", {"run_id": run_id, "thread_id": plan.thread_id, "attempt": 1}
        )
        error: str | None = None
        forced_reason: str | None = None
        steps = 0
        deadline = time.time() + plan.limits.max_wall_seconds
        config: RunnableConfig = {
            "configurable": {"thread_id": plan.thread_id},
            "run_id": uuid.UUID(run_id),
        }
        context = self._context(plan, run_id, request.principal, deadline)
        hard_timeout = plan.limits.max_wall_seconds + (
            HARD_TIMEOUT_GRACE_SECONDS if plan.entry.builtin else 0
        )
        try:
            async with asyncio.timeout(hard_timeout):
                async for update in plan.graph.astream(  # type: ignore[call-overload]
                    plan.graph_input,
                    config,
                    context=context,  # type: ignore[arg-type]
                    stream_mode="updates",
                    durability=request.durability or self.system.settings.durability,
                ):
                    data = to_jsonable(update)
                    await recorder.add("updates", data)
                    yield {"event": "updates", "data": data}
                    steps += 1
                    if not plan.entry.builtin and steps >= plan.limits.max_steps:
                        forced_reason = lim.STEP_LIMIT
                        break
        except TimeoutError:
            forced_reason = lim.TIMEOUT
        except asyncio.CancelledError:
            # Ctrl-C or a cancelled task: record the run as cancelled, then let it propagate.
            await asyncio.shield(self._finish(plan, run_id, None, lim.CANCELLED))
            await asyncio.shield(recorder.flush())
            raise
        except Exception as exc:  # the run ends in error; the checkpoint keeps its progress
            error = f"{type(exc).__name__}: {exc}"
        summary = await self._finish(plan, run_id, error, forced_reason)
        if error:
            await recorder.add("error", {"error": "run_failed", "message": error})
        await recorder.add("end", summary.to_dict())
        await recorder.flush()
        yield {"event": "end", "summary": summary}

    # --- planning ------------------------------------------------------------------------

    async def _plan(self, request: RunRequest) -> _Plan:
        system = self.system
        principal = request.principal
        thread: Thread | None = None
        if request.thread_id is not None:
            async with system.db.session() as session:
                thread = await session.get(Thread, request.thread_id)
            if thread is not None and not _may_use_thread(principal, thread):
                raise RunRequestError(f"there is no thread {request.thread_id!r}")
        assistant_id = request.assistant_id or (thread.assistant_id if thread else None) or "agent"
        try:
            assistant = system.assistants.get(assistant_id)
            entry = system.graphs.get(assistant.graph_id, thread.graph_version if thread else None)
        except (AssistantNotFound, GraphNotFound) as exc:
            raise RunRequestError(str(exc)) from exc
        if thread is not None and thread.graph_id not in (None, assistant.graph_id):
            raise RunRequestError(
                f"thread {thread.thread_id!r} runs graph {thread.graph_id!r}; "
                f"assistant {assistant_id!r} runs {assistant.graph_id!r}"
            )
        try:
            limits = lim.Limits.merged(
                system.settings.default_limits(), assistant.limits, request.limits
            )
        except lim.LimitsError as exc:
            raise RunRequestError(str(exc)) from exc
        model_spec = assistant.model or system.settings.default_model
        try:
            system.model(model_spec)
        except ModelSpecError as exc:
            raise RunRequestError(str(exc)) from exc
        prompt_version = thread.prompt_version if thread else None
        if entry.prompt and prompt_version is None:
            try:
                prompt_version = load_prompt(entry.prompt, assistant.prompt_version).version
            except PromptNotFound as exc:
                raise RunRequestError(str(exc)) from exc
        graph = entry.compile(system.checkpointer)
        thread_id = request.thread_id or str(uuid.uuid4())
        requester = principal
        if thread is not None and request.input_text is None:
            requester = await self._requester(thread, principal)
        graph_input = await self._graph_input(request, graph, thread_id, entry, thread)
        return _Plan(
            thread=thread,
            thread_id=thread_id,
            assistant=assistant,
            entry=entry,
            graph=graph,
            graph_input=graph_input,
            requester=requester,
            limits=limits,
            prompt_version=prompt_version,
            model_spec=model_spec,
        )

    async def _requester(self, thread: Thread, principal: Principal) -> Principal:
        """A resumed run keeps acting as the principal who started the thread's last run."""
        async with self.system.db.session() as session:
            last = (
                await session.execute(
                    select(Run)
                    .where(Run.thread_id == thread.thread_id)
                    .order_by(Run.created_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        if last is None or last.requester == principal.user:
            return principal
        try:
            return Principal.with_roles(thread.tenant, last.requester, last.requester_roles)
        except ValueError:
            return Principal(tenant=thread.tenant, user=last.requester)

    async def _graph_input(
        self,
        request: RunRequest,
        graph: Pregel,
        thread_id: str,
        entry: GraphEntry,
        thread: Thread | None,
    ) -> Any:
        state = None
        if thread is not None:
            state = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        pending = list(state.interrupts) if state is not None else []
        if request.input_text is not None:
            if request.decisions is not None:
                raise RunRequestError("give either new input or a decision, not both")
            if pending:
                raise RunRequestError(
                    f"thread {thread_id} is waiting for a decision; resume it with "
                    "approve, edit or reject first"
                )
            message = HumanMessage(content=request.input_text, id=str(uuid.uuid4()))
            if entry.builtin:
                return {"messages": [message], **fresh_turn()}
            return {"messages": [message]}
        if thread is None or state is None:
            raise RunRequestError(
                f"there is no thread {request.thread_id!r} to resume"
                if request.thread_id
                else "nothing to run: give input text or a thread to resume"
            )
        if request.decisions is not None:
            if not pending:
                raise RunRequestError(f"thread {thread_id} has no pending decision")
            if len(pending) > 1:
                raise RunRequestError(
                    f"thread {thread_id} has {len(pending)} pending interrupts; "
                    "answer them through the API with a map of interrupt ids"
                )
            value = pending[0].value
            expected = len(value.get("action_requests", [])) if isinstance(value, dict) else 1
            try:
                parse_decisions(request.decisions, expected=expected)
            except InvalidDecision as exc:
                raise RunRequestError(str(exc)) from exc
            return Command(resume=request.decisions)
        if pending:
            raise RunRequestError(
                f"thread {thread_id} is waiting for a decision: approve, edit or reject it"
            )
        if state.next:
            return None  # a run died mid-way: continue from the last checkpoint
        values = state.values or {}
        if values.get("stop_reason") in lim.LIMIT_REASONS and values.get("resume_at"):
            return Command(goto=values["resume_at"])
        raise RunRequestError(f"thread {thread_id} has nothing to resume: its last run completed")

    def _context(
        self, plan: _Plan, run_id: str, caller: Principal, deadline: float
    ) -> RunContext | None:
        if not plan.entry.uses_run_context:
            return None
        system = self.system
        prompt = load_prompt(plan.entry.prompt, plan.prompt_version) if plan.entry.prompt else None
        names = plan.assistant.tools if plan.assistant.tools is not None else system.tools.names()
        return RunContext(
            run_id=run_id,
            principal=plan.requester,
            decided_by=caller.user,
            model=system.model(plan.model_spec),
            tools=system.executor,
            tool_names=tuple(names),
            allowed_scopes=(
                frozenset(plan.assistant.allowed_scopes)
                if plan.assistant.allowed_scopes is not None
                else None
            ),
            limits=plan.limits,
            deadline=deadline,
            prompt=prompt,
        )

    # --- rows ----------------------------------------------------------------------------

    async def _start(self, plan: _Plan, run_id: str, caller: Principal) -> None:
        """Create the thread (if new) and the run row, marking the thread busy.

        Raises:
            RunRequestError: another live process is running this thread.
        """
        now = utcnow()
        async with self.system.db.transaction() as session:
            thread = await session.get(Thread, plan.thread_id)
            if thread is None:
                thread = Thread(
                    thread_id=plan.thread_id,
                    tenant=caller.tenant,
                    owner=caller.user,
                    assistant_id=plan.assistant.assistant_id,
                    graph_id=plan.entry.graph_id,
                    graph_version=plan.entry.version,
                    prompt_version=plan.prompt_version,
                    status="busy",
                    metadata_={
                        "graph_id": plan.entry.graph_id,
                        "assistant_id": plan.assistant.assistant_id,
                    },
                )
                session.add(thread)
                await session.flush()
            else:
                await self._claim_thread(session, thread)
                thread.status = "busy"
            session.add(
                Run(
                    run_id=run_id,
                    thread_id=plan.thread_id,
                    tenant=thread.tenant,
                    requester=plan.requester.user,
                    requester_roles=sorted(plan.requester.roles),
                    assistant_id=plan.assistant.assistant_id,
                    graph_id=plan.entry.graph_id,
                    graph_version=plan.entry.version,
                    prompt_version=plan.prompt_version,
                    model=plan.model_spec,
                    limits=plan.limits.to_dict(),
                    status="running",
                    metadata_={
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "decided_by": caller.user if plan.requester != caller else None,
                    },
                    started_at=now,
                )
            )

    async def _claim_thread(self, session: Any, thread: Thread) -> None:
        active = (
            (
                await session.execute(
                    select(Run).where(
                        Run.thread_id == thread.thread_id, Run.status.in_(("pending", "running"))
                    )
                )
            )
            .scalars()
            .all()
        )
        host = socket.gethostname()
        for run in active:
            meta = run.metadata_ or {}
            if meta.get("host") == host and _process_alive(int(meta.get("pid", 0))):
                raise RunRequestError(
                    f"thread {thread.thread_id} is busy: run {run.run_id} is in progress "
                    f"(process {meta.get('pid')})"
                )
            run.status = "error"
            run.stop_reason = lim.ERROR
            run.error = "the process running this run died; the thread was resumed"
            run.ended_at = utcnow()

    async def _finish(
        self, plan: _Plan, run_id: str, error: str | None, forced_reason: str | None
    ) -> RunSummary:
        config: RunnableConfig = {"configurable": {"thread_id": plan.thread_id}}
        interrupts: list[dict[str, Any]] = []
        values: dict[str, Any] = {}
        try:
            state = await plan.graph.aget_state(config)
            interrupts = [{"value": to_jsonable(i.value), "id": i.id} for i in state.interrupts]
            values = state.values if isinstance(state.values, dict) else {}
        except Exception as exc:  # state unreadable: report the run as failed
            error = error or f"cannot read the thread's state: {exc}"
        if error:
            reason = lim.ERROR
        elif forced_reason:
            reason = forced_reason
        elif interrupts:
            reason = lim.WAITING_FOR_HUMAN
        else:
            reason = values.get("stop_reason") or lim.COMPLETED
        run_status = {lim.ERROR: "error", lim.TIMEOUT: "timeout", lim.CANCELLED: "interrupted"}.get(
            reason, "success"
        )
        thread_status = "error" if error else ("interrupted" if interrupts else "idle")
        final = values.get("final_message")
        if final is None and not interrupts:
            final = _last_ai_text(values)
        if forced_reason == lim.CANCELLED:
            final = "Cancelled; `relaygraph resume` continues from the last checkpoint."
        elif forced_reason and not final:
            final = f"Stopped: {forced_reason.replace('_', ' ')}; raise the limit and resume."
        async with self.system.db.transaction() as session:
            run = await session.get(Run, run_id)
            thread = await session.get(Thread, plan.thread_id)
            assert run is not None and thread is not None
            run.status = run_status
            run.stop_reason = reason
            run.error = error
            run.ended_at = utcnow()
            thread.status = thread_status
        return RunSummary(
            thread_id=plan.thread_id,
            run_id=run_id,
            status=CLI_STATUS[reason],
            run_status=run_status,
            stop_reason=reason,
            interrupt=interrupts[0]["value"] if interrupts else None,
            final_message=final if not error else error,
            error=error,
        )


def _may_use_thread(principal: Principal, thread: Thread) -> bool:
    if thread.tenant != principal.tenant:
        return False
    return thread.owner == principal.user or principal.has_scope("reviews:decide")


def _last_ai_text(values: dict[str, Any]) -> str | None:
    for message in reversed(values.get("messages") or []):
        if isinstance(message, AIMessage):
            return message.text
    return None


class _EventRecorder:
    """Appends a run's events to ``run_events`` in batches (one row per event)."""

    def __init__(self, system: System, run_id: str) -> None:
        self.system = system
        self.run_id = run_id
        self.seq = 0
        self.pending: list[RunEvent] = []
        self.last_flush = time.monotonic()

    async def add(self, event: str, data: Any) -> None:
        self.seq += 1
        self.pending.append(RunEvent(run_id=self.run_id, seq=self.seq, event=event, data=data))
        if (
            len(self.pending) >= EVENT_BATCH
            or time.monotonic() - self.last_flush >= EVENT_FLUSH_SECONDS
        ):
            await self.flush()

    async def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        async with self.system.db.transaction() as session:
            session.add_all(batch)
        self.last_flush = time.monotonic()
