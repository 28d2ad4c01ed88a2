"""Runs of a thread: submitted as a ``pending`` row, claimed with a lease, executed.

``Runner.submit`` validates a request and writes the thread and run rows;
``Runner.execute`` runs a claimed run (checkpoints, limits, events, summary). The
CLI does both inline (``Runner.stream``); ``runtime.worker`` claims runs from the
queue for the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

import structlog
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import Command
from opentelemetry import propagate, trace
from opentelemetry.trace import Status, StatusCode
from sqlalchemy import bindparam, delete, insert, select, update
from structlog.contextvars import bound_contextvars

from graphs import limits as lim
from graphs.agent import fresh_turn
from graphs.assistants import AssistantConfig, AssistantNotFound
from graphs.context import RunContext
from graphs.interrupts import InvalidDecision, parse_decisions, stamp_decider
from graphs.prompts import PromptNotFound, load_prompt
from graphs.registry import GraphEntry, GraphNotFound
from graphs.serialization import message_to_dict, to_jsonable
from graphs.tool_schemas import tool_definitions
from identity import Principal
from memory.minimisation import MinimisationPolicy
from memory.nodes import AgentMemory
from memory.restore_stream import event_restorer
from memory.thread_pseudonyms import STATE_KEY as PSEUDONYMS_KEY
from memory.thread_pseudonyms import RunPseudonyms
from providers import ModelSpecError
from runtime import metrics
from runtime.assistants import AssistantService
from runtime.endings import Ending, Endings
from runtime.events import EventBus, EventLog
from runtime.observability import tracing_enabled
from runtime.submissions import Submissions
from runtime.system import System
from runtime.tracing import RunTracer, StepTrace
from runtime.webhooks import (
    WebhookError,
    check_webhook_url,
    deliver,
    deployment_secret,
    tenant_secret,
)
from store.models import Run, Thread, column_values, utcnow
from tools.fencing import LeaseLostError, RunLease, bind_lease
from tools.policy import validated_args
from tools.types import ToolError

CliStatus = Literal["success", "interrupted", "limit", "error", "cancelled"]
MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]
HARD_TIMEOUT_GRACE_SECONDS = 5.0
LEASE_SECONDS = 30.0
ABANDON_SECONDS = 10.0
"""How long a closing system waits for the runs it hands back to record that."""
ACTIVE = ("pending", "running")
STREAM_MODES = {"values", "updates", "messages", "messages-tuple", "custom", "debug"}


class RunRequestError(ValueError):
    """The request cannot start a run; nothing was written. ``status`` is the HTTP status."""

    status = 400
    code = "invalid_request"


class RunNotFound(RunRequestError):
    status = 404
    code = "not_found"


class RunForbidden(RunRequestError):
    status = 403
    code = "forbidden"


class RunConflict(RunRequestError):
    status = 409
    code = "conflict"


@dataclass(frozen=True)
class RunRequest:
    """What to run. ``input_text`` is a shorthand for one user message, ``decisions`` for
    ``command={"resume": decisions}``; with neither input nor command the thread continues."""

    principal: Principal
    assistant_id: str | None = None
    thread_id: str | None = None
    input: Any = None
    input_text: str | None = None
    command: Mapping[str, Any] | None = None
    decisions: Any = None
    checkpoint_id: str | None = None
    config: Mapping[str, Any] | None = None
    context: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None
    limits: Mapping[str, Any] | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    stream_mode: tuple[str, ...] = ("updates",)
    stream_subgraphs: bool = False
    interrupt_before: Any = None
    interrupt_after: Any = None
    multitask_strategy: MultitaskStrategy = "reject"
    if_not_exists: Literal["create", "reject"] = "create"
    idempotency_key: str | None = None
    on_completion: Literal["delete", "keep"] = "keep"
    webhook: str | None = None


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
    """Everything a run needs, resolved from its rows before it executes."""

    thread_id: str
    assistant: AssistantConfig
    entry: GraphEntry
    graph: Pregel[Any, Any, Any, Any]
    requester: Principal
    limits: lim.Limits
    prompt_version: str | None
    model_spec: str
    extra: dict[str, Any] = field(default_factory=dict)


CLI_STATUS: dict[str, CliStatus] = {
    lim.COMPLETED: "success",
    lim.WAITING_FOR_HUMAN: "interrupted",
    lim.CANCELLED: "cancelled",
    lim.ERROR: "error",
    **{reason: "limit" for reason in lim.LIMIT_REASONS},
}
RUN_STATUS = {lim.ERROR: "error", lim.TIMEOUT: "timeout", lim.CANCELLED: "interrupted"}


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_dead(owner: str | None) -> bool:
    """True when ``owner`` is a process on this host that no longer exists."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def may_change_thread(principal: Principal, thread: Thread) -> bool:
    """Owners and admins change a thread (new input, state, metadata, deletion); a
    reviewer of the tenant may only answer its interrupts."""
    return thread.tenant == principal.tenant and (
        thread.owner == principal.user or principal.has_scope("tenant:read")
    )


def may_read_thread(principal: Principal, thread: Thread) -> bool:
    """Users see their own threads; reviewers and admins see their tenant's."""
    if thread.tenant != principal.tenant:
        return False
    return (
        thread.owner == principal.user
        or principal.has_scope("reviews:decide")
        or principal.has_scope("tenant:read")
    )


class Runner:
    def __init__(self, system: System, events: EventBus | None = None) -> None:
        self.system = system
        self.events = events or EventBus(system.db)
        self.assistants = AssistantService(system)
        self._graphs: dict[tuple[str, str], Pregel[Any, Any, Any, Any]] = {}
        self._tasks: dict[str, asyncio.Task[RunSummary]] = {}
        self._handing_back: set[str] = set()
        self._handed_back: set[str] = set()
        self._streaming: set[str] = set()
        """Runs whose graph is streaming here: a cancel interrupts them at once."""
        self._deferred_cancels: set[str] = set()
        """Runs cancelled before their graph started: the cancel takes effect when it
        starts, so that it ends the run (recorded as cancelled) rather than its set-up."""
        self._background: set[asyncio.Task[bool]] = set()
        self._queued_hint = False
        self.endings = Endings(system.db, self.events)
        self.submissions: Submissions[tuple[Run, list[str]]] = Submissions(
            system.db, self._queued_writer
        )
        system.track(self)
        configured = system.settings.webhook_secret
        self._webhook_secret = deployment_secret(
            configured.get_secret_value() if configured else None, system.settings.data_dir
        )

    # --- the CLI's inline path ------------------------------------------------------------

    async def run(self, request: RunRequest) -> RunSummary:
        """Submit and execute a run in this process; return its summary."""
        summary: RunSummary | None = None
        async for event in self.stream(request):
            if event["event"] == "end":
                summary = event["summary"]
        assert summary is not None
        return summary

    async def stream(self, request: RunRequest) -> AsyncIterator[dict[str, Any]]:
        """Submit and execute a run here, yielding ``metadata``, one event per streamed
        part (``updates`` by default), then ``end`` with the ``RunSummary``.

        Raises:
            RunRequestError: the request is invalid; nothing was written.
        """
        owner = lease_owner()
        run = await self.submit(request, claim_for=owner, must_claim=True)
        yield {"event": "metadata", "thread_id": run.thread_id, "run_id": run.run_id}
        log = await self.events.open(run.run_id, fresh=True)
        task = asyncio.create_task(self.execute(run.run_id, owner, log=log))
        try:
            async for event in self.events.follow(run.run_id):
                if event.event in ("metadata", "end"):
                    continue
                yield {"event": event.event, "data": event.data}
            summary = await task
        finally:
            if not task.done():  # the caller went away (Ctrl-C): the run is cancelled
                self.cancel_local(run.run_id)
                await asyncio.gather(task, return_exceptions=True)
        yield {"event": "end", "summary": summary}

    # --- submission -----------------------------------------------------------------------

    async def submit(
        self, request: RunRequest, *, claim_for: str | None = None, must_claim: bool = False
    ) -> Run:
        """Validate ``request`` and write a ``pending`` run (and the thread, if new);
        with ``claim_for``, the run is leased to that owner in the same transaction when
        its thread has nothing running (else it stays queued, or with ``must_claim`` the
        submission fails).

        Raises:
            RunNotFound: the thread does not exist (or is not visible to the caller).
            RunConflict: the thread has a run in flight and the strategy is ``reject``.
            RunRequestError: anything else about the request is invalid.
        """
        principal = request.principal
        if request.idempotency_key:
            existing = await self._idempotent(principal, request.idempotency_key)
            if existing is not None:
                return existing
        thread = await self._visible_thread(request.thread_id, principal)
        if request.thread_id is not None and thread is None and request.if_not_exists != "create":
            raise RunNotFound(f"there is no thread {request.thread_id!r}")
        assistant_id = request.assistant_id or (thread.assistant_id if thread else None) or "agent"
        assistant, entry = await self._resolve(principal.tenant, assistant_id, thread)
        limits = self._limits(assistant, request.limits)
        model_spec = assistant.model or self.system.settings.default_model
        try:
            self.system.model(model_spec)
        except ModelSpecError as exc:
            raise RunRequestError(str(exc)) from exc
        prompt_version = thread.prompt_version if thread else None
        if entry.prompt and prompt_version is None:
            try:
                prompt_version = load_prompt(entry.prompt, assistant.prompt_version).version
            except PromptNotFound as exc:
                raise RunRequestError(str(exc)) from exc
        for mode in request.stream_mode:
            if mode == "events":
                raise RunRequestError(
                    "stream_mode 'events' (LangChain astream_events) is not supported yet; "
                    "use values, updates, messages-tuple, custom or debug"
                )
            if mode not in STREAM_MODES:
                raise RunRequestError(
                    f"unknown stream_mode {mode!r}; modes: {', '.join(sorted(STREAM_MODES))}"
                )
        thread_id = request.thread_id or str(uuid.uuid4())
        requester = principal
        answers = request.decisions is not None or "resume" in (request.command or {})
        if thread is not None and not answers and not may_change_thread(principal, thread):
            raise RunForbidden(
                f"thread {thread_id} belongs to {thread.owner!r}: as a reviewer you may answer "
                "its interrupts (a run with command.resume), not send it input"
            )
        kwargs = await self._kwargs(request, entry, thread_id, thread)
        if thread is not None and kwargs["kind"] != "input":
            requester = await self._requester(thread, principal)
        run_id = str(uuid.uuid4())

        async def write(session: Any) -> tuple[Run, list[str]]:
            now = utcnow()
            # A thread id made here just now is new: no need to look it up. The thread read
            # above, if unchanged since, is stamped and marked busy in one UPDATE.
            stamped = thread is not None and await _stamp_if_unchanged(
                session, thread, assistant.assistant_id, entry, prompt_version
            )
            row = thread if stamped else None
            if row is None and request.thread_id is not None:
                row = await session.get(Thread, thread_id)
            created = row is None
            if row is None:
                row = Thread(
                    thread_id=thread_id,
                    tenant=principal.tenant,
                    owner=principal.user,
                    status="idle",
                    metadata_={},
                )
                session.add(row)
            elif row.tenant != principal.tenant:
                raise RunNotFound(f"there is no thread {thread_id!r}")
            if not stamped:
                for name, value in _stamped(row, assistant.assistant_id, entry, prompt_version):
                    setattr(row, name, value)
            # status busy before the flush: one UPDATE (a refusal rolls it back); a new
            # thread's row is written before its run's (the ORM does not order them)
            await session.flush()
            # A thread created just now has no runs: nothing to reject, queue behind or cancel.
            to_cancel, running = (
                ([], False)
                if created
                else await self._apply_multitask(session, row, request.multitask_strategy)
            )
            run = Run(
                run_id=run_id,
                thread_id=thread_id,
                tenant=row.tenant,
                requester=requester.user,
                requester_roles=sorted(requester.roles),
                submitted_by=principal.user,
                assistant_id=assistant.assistant_id,
                graph_id=entry.graph_id,
                graph_version=entry.version,
                prompt_version=row.prompt_version,
                model=model_spec,
                limits=limits.to_dict(),
                status="pending",
                metadata_=dict(request.metadata or {}),
                kwargs=kwargs,
                multitask_strategy=request.multitask_strategy,
                idempotency_key=request.idempotency_key,
                attempt=0,
                created_at=now,
                updated_at=now,
            )
            if claim_for is not None:
                if not created:  # PostgreSQL: no worker claims a run of this thread meanwhile
                    await self.system.db.lock_queue(session)
                    # SQLite's BEGIN IMMEDIATE serialised this with every claim, so what the
                    # multitask query saw still holds; elsewhere look again under the lock.
                    if not self.system.db.is_sqlite:
                        running = await _thread_running(session, thread_id)
                if not running:
                    _lease(run, claim_for)
                elif must_claim:
                    raise RunConflict(f"thread {thread_id} is busy with another run")
            # A Core INSERT: the ORM's unit of work for this one row cost more than the SQL.
            # The returned Run is detached, with every column the row got.
            await session.execute(_INSERT_RUN, column_values(run))
            return run, to_cancel

        # Committed with the submissions arriving meanwhile (runtime.submissions).
        run, to_cancel = await self.submissions.commit(write)
        for run_id in to_cancel:  # after the commit, so the run sees why it is cancelled
            self.cancel_local(run_id)
        return run

    async def _idempotent(self, principal: Principal, key: str) -> Run | None:
        async with self.system.db.session() as session:
            return (
                await session.execute(
                    select(Run).where(Run.tenant == principal.tenant, Run.idempotency_key == key)
                )
            ).scalar_one_or_none()

    async def _visible_thread(self, thread_id: str | None, principal: Principal) -> Thread | None:
        if thread_id is None:
            return None
        async with self.system.db.session() as session:
            thread = await session.get(Thread, thread_id)
        if thread is not None and not may_read_thread(principal, thread):
            raise RunNotFound(f"there is no thread {thread_id!r}")
        return thread

    async def _resolve(
        self, tenant: str, assistant_id: str, thread: Thread | None
    ) -> tuple[AssistantConfig, GraphEntry]:
        try:
            assistant = await self.assistants.resolve(tenant, assistant_id)
            entry = self.system.graphs.get(
                assistant.graph_id, thread.graph_version if thread else None
            )
        except (AssistantNotFound, GraphNotFound) as exc:
            raise RunNotFound(str(exc)) from exc
        if thread is not None and thread.graph_id not in (None, assistant.graph_id):
            raise RunRequestError(
                f"thread {thread.thread_id!r} runs graph {thread.graph_id!r}; "
                f"assistant {assistant_id!r} runs {assistant.graph_id!r}"
            )
        return assistant, entry

    def _limits(self, assistant: AssistantConfig, override: Mapping[str, Any] | None) -> lim.Limits:
        try:
            return lim.Limits.merged(
                self.system.settings.default_limits(), assistant.limits, override
            )
        except lim.LimitsError as exc:
            raise RunRequestError(str(exc)) from exc

    def graph(self, entry: GraphEntry) -> Pregel[Any, Any, Any, Any]:
        """The compiled graph for ``entry`` with our checkpointer (compiled once)."""
        key = (entry.graph_id, entry.version)
        if key not in self._graphs:
            self._graphs[key] = entry.compile(self.system.checkpointer)
        return self._graphs[key]

    async def _kwargs(
        self, request: RunRequest, entry: GraphEntry, thread_id: str, thread: Thread | None
    ) -> dict[str, Any]:
        """Check what the request asks of the thread's state; return the run's kwargs."""
        command = dict(request.command or {})
        if request.decisions is not None:
            command["resume"] = request.decisions
        graph_input = request.input
        if request.input_text is not None:
            graph_input = {
                "messages": [
                    {"type": "human", "content": request.input_text, "id": str(uuid.uuid4())}
                ]
            }
        if graph_input == {} and command:
            graph_input = None  # agent-chat-ui sends input: {} alongside a command
        state = None
        # A thread that never ran (no graph pinned yet) has no checkpoints: new input for
        # it needs no state read.
        never_ran = thread is not None and thread.graph_id is None and not request.checkpoint_id
        if thread is not None and not (never_ran and graph_input is not None and not command):
            config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
            if request.checkpoint_id:
                config["configurable"]["checkpoint_id"] = request.checkpoint_id
            state = await self.graph(entry).aget_state(config)
            if request.checkpoint_id and not state.values and state.next == ():
                raise RunNotFound(f"thread {thread_id} has no checkpoint {request.checkpoint_id}")
        elif request.checkpoint_id:
            raise RunNotFound(f"there is no thread {request.thread_id!r}")
        pending = list(state.interrupts) if state is not None else []
        if graph_input is not None and command.get("resume") is not None:
            raise RunRequestError("give either new input or a resume command, not both")
        if graph_input is not None:
            if pending and not request.checkpoint_id:
                raise RunConflict(
                    f"thread {thread_id} is waiting for a decision on an interrupt: resume it "
                    "(approve, edit or reject) before sending new input"
                )
            kind = "input"
        elif "resume" in command:
            if not pending:
                raise RunConflict(f"thread {thread_id} has no pending interrupt to resume")
            self._check_resume(command["resume"], pending)
            assert thread is not None  # pending interrupts come from the thread's state
            command["resume"] = await self._authorize_resume(
                command["resume"], pending, thread, request.principal
            )
            kind = "command"
        elif command:
            kind = "command"
        else:
            if thread is None or state is None:
                raise RunRequestError("nothing to run: give input, or a thread to continue")
            if pending:
                raise RunConflict(
                    f"thread {thread_id} is waiting for a decision: approve, edit or reject it"
                )
            values = state.values if isinstance(state.values, dict) else {}
            limited = values.get("stop_reason") in lim.LIMIT_REASONS and values.get("resume_at")
            if not state.next and not limited and not request.checkpoint_id:
                raise RunConflict(
                    f"thread {thread_id} has nothing to resume: its last run completed"
                )
            kind = "continue"
        if request.webhook:
            try:
                check_webhook_url(request.webhook)
            except WebhookError as exc:
                raise RunRequestError(str(exc)) from exc
        return {
            "webhook": request.webhook,
            "kind": kind,
            "input": to_jsonable(graph_input),
            "command": to_jsonable(command) or None,
            "checkpoint_id": request.checkpoint_id,
            "config": to_jsonable(dict(request.config or {})),
            "context": to_jsonable(dict(request.context or {})),
            "stream_mode": list(request.stream_mode),
            "stream_subgraphs": request.stream_subgraphs,
            "interrupt_before": request.interrupt_before,
            "interrupt_after": request.interrupt_after,
            "durability": request.durability,
            "on_completion": request.on_completion,
            "trace_context": _trace_carrier(),
        }

    def _check_resume(self, value: Any, pending: list[Any]) -> None:
        """Validate a resume value against the pending interrupts (ours use decisions),
        an edit's arguments against its tool's schema too: refused here, the thread keeps
        waiting for a decision, where the gate's refusal would use up the interrupt.

        Raises:
            RunRequestError: the value does not answer the interrupt(s).
        """
        by_id = {interrupt.id: interrupt for interrupt in pending}
        if isinstance(value, dict) and value and set(value) <= set(by_id):
            answers = [(by_id[key], answer) for key, answer in value.items()]
        elif len(pending) > 1:
            raise RunRequestError(
                f"{len(pending)} interrupts are pending; resume with a map "
                "{interrupt_id: value} that answers each of them"
            )
        else:
            answers = [(pending[0], value)]
        for interrupt, answer in answers:
            payload = interrupt.value
            if isinstance(payload, dict) and "action_requests" in payload:
                actions = payload["action_requests"]
                try:
                    decisions = parse_decisions(answer, expected=len(actions))
                except InvalidDecision as exc:
                    raise RunRequestError(str(exc)) from exc
                for position, (action, decision) in enumerate(zip(actions, decisions, strict=True)):
                    if decision.type == "edit" and isinstance(action, dict):
                        self._check_edit(position, action, decision)

    def _check_edit(self, position: int, action: dict[str, Any], decision: Any) -> None:
        """Raises: RunRequestError: the edit names another tool or its arguments do not
        fit the tool (the gate would refuse it: the same rules, ``tools.policy``)."""
        name = str(action.get("name"))
        if decision.name not in (None, name):
            raise RunRequestError(
                f"decision {position}: an edit may change the arguments of {name!r}, not the "
                "tool; the thread still waits for a decision"
            )
        tool = self.system.tools.get(name)
        if tool is None:
            return  # the gate reports it
        try:
            validated_args(tool, decision.args or {})
        except ToolError as error:
            raise RunRequestError(
                f"decision {position}: {error.message}; the thread still waits for a decision"
            ) from None

    async def _authorize_resume(
        self, value: Any, pending: list[Any], thread: Thread, decider: Principal
    ) -> Any:
        """Check that ``decider`` may decide every tool call the answered interrupts ask
        about (approver roles and four-eyes, :class:`tools.approvals.ApprovalPolicy`) and
        stamp them into their answers, so the graph's gate applies the same rule again.

        Raises:
            RunForbidden: the policy refuses the decider; nothing is written and the
                thread keeps waiting for a decision.
        """
        by_id = {interrupt.id: interrupt for interrupt in pending}
        keyed = isinstance(value, dict) and bool(value) and set(value) <= set(by_id)
        answers = list(value.items()) if keyed else [(pending[0].id, value)]
        requester = await self._requester(thread, decider)
        policy = self.system.executor.approvals.policy
        stamped: dict[str, Any] = {}
        for interrupt_id, answer in answers:
            payload = by_id[interrupt_id].value
            actions = payload.get("action_requests") if isinstance(payload, dict) else None
            if not isinstance(actions, list):
                stamped[interrupt_id] = answer
                continue
            for action in actions:
                tool = self.system.tools.get(str(action.get("name"))) if action else None
                refusal = tool and policy.refusal(
                    decider, risk=tool.risk, requester=requester.user, door="interrupt"
                )
                if tool and refusal:
                    raise RunForbidden(
                        f"you may not decide the pending {tool.name} call on thread "
                        f"{thread.thread_id}: {refusal}. The thread still waits for a decision."
                    )
            stamped[interrupt_id] = stamp_decider(answer, decider)
        return stamped if keyed else stamped[pending[0].id]

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
        return _principal_of(last)

    async def _apply_multitask(
        self, session: Any, thread: Thread, strategy: str
    ) -> tuple[list[str], bool]:
        """Apply the multitask strategy; return the runs to cancel once this commits, and
        whether a run of the thread is (still) running."""
        to_cancel: list[str] = []
        active = (
            (await session.execute(_ACTIVE_RUNS_OF_THREAD, {"b_thread_id": thread.thread_id}))
            .scalars()
            .all()
        )
        live = []
        for run in active:
            if run.status == "running" and _owner_dead(run.lease_owner):
                _end_run(run, "error", lim.ERROR, "the process running this run died")
                continue
            live.append(run)
        running = any(run.status == "running" for run in live)
        if not live or strategy == "enqueue":
            return to_cancel, running
        if strategy == "reject":
            raise RunConflict(
                f"thread {thread.thread_id} already has a run in flight ({live[0].run_id}); "
                "wait for it, cancel it, or use multitask_strategy enqueue/interrupt/rollback"
            )
        for run in live:
            if run.status == "pending":
                _end_run(run, "interrupted", lim.CANCELLED, f"replaced by a newer run ({strategy})")
            else:
                run.cancel_requested = strategy
                to_cancel.append(run.run_id)
        return to_cancel, running

    # --- claiming -------------------------------------------------------------------------

    async def claim(self, run_id: str, owner: str) -> bool:
        """Claim one pending run for ``owner`` (the CLI's inline path)."""
        async with self.system.db.transaction() as session:
            await self.system.db.lock_queue(session)
            run = await session.get(Run, run_id)
            if run is None or run.status != "pending":
                return False
            if await _thread_running(session, run.thread_id, other_than=run_id):
                return False
            _lease(run, owner)
            return True

    async def claim_next(self, owner: str) -> str | None:
        """Claim the oldest runnable run (see ``claim_batch``)."""
        claimed = await self.claim_batch(owner, 1)
        return claimed[0] if claimed else None

    async def claim_batch(self, owner: str, limit: int) -> list[str]:
        """Claim up to ``limit`` runnable runs in one transaction, oldest first: runs whose
        lease lapsed (their worker died), then pending runs of threads with nothing
        running (one run per thread). A lease has one owner, so no run executes twice."""
        now = utcnow()
        claimed: list[str] = []
        async with self._queued_writer(), self.system.db.transaction() as session:
            # PostgreSQL: claimers queue on an advisory lock (one running run per thread),
            # and skip rows other transactions hold (a cancel, a submission) instead of
            # waiting on them; SQLite's BEGIN IMMEDIATE serialises and ignores FOR UPDATE.
            await self.system.db.lock_queue(session)
            lapsed = (
                await session.execute(
                    select(Run)
                    .where(Run.status == "running", Run.lease_expires_at < now)
                    .order_by(Run.created_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).scalars()
            busy_threads: set[str] = set()
            for run in lapsed:
                _lease(run, owner)
                claimed.append(run.run_id)
                busy_threads.add(run.thread_id)
            if len(claimed) < limit:
                running_threads = select(Run.thread_id).where(Run.status == "running")
                candidates = (
                    await session.execute(
                        select(Run)
                        .where(Run.status == "pending", Run.thread_id.not_in(running_threads))
                        .order_by(Run.created_at)
                        .limit(4 * limit)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
                for run in candidates:
                    if len(claimed) >= limit:
                        break
                    if run.thread_id in busy_threads:
                        continue  # an older run of the same thread goes first
                    busy_threads.add(run.thread_id)
                    _lease(run, owner)
                    claimed.append(run.run_id)
        return claimed

    async def renew_leases(self, owner: str) -> set[str]:
        """Extend every lease ``owner`` holds, in one statement; return the runs still held."""
        async with self._queued_writer(), self.system.db.transaction() as session:
            result = await session.execute(
                update(Run)
                .where(Run.lease_owner == owner, Run.status == "running")
                .values(lease_expires_at=utcnow() + timedelta(seconds=LEASE_SECONDS))
                .returning(Run.run_id)
            )
            return {row[0] for row in result}

    async def cancels_for(self, owner: str) -> dict[str, str]:
        """Cancel actions asked for the runs ``owner`` holds, in one query."""
        async with self.system.db.session() as session:
            rows = await session.execute(
                select(Run.run_id, Run.cancel_requested).where(
                    Run.lease_owner == owner, Run.cancel_requested.is_not(None)
                )
            )
            return {run_id: action or "interrupt" for run_id, action in rows}

    async def release(self, run_id: str, owner: str) -> None:
        """Hand an in-flight run back to the queue (graceful shutdown)."""
        async with self.system.db.transaction() as session:
            await session.execute(
                update(Run)
                .where(Run.run_id == run_id, Run.lease_owner == owner, Run.status == "running")
                .values(status="pending", lease_owner=None, lease_expires_at=None)
            )

    def _queued_writer(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """SQLite has one writer at a time, and a connection that finds the write lock taken
        sleeps in its busy handler (up to 100 ms a try): this process's run writers
        (submissions, claims, endings, event writes) queue on one asyncio lock instead."""
        if self.system.db.is_sqlite:
            return self.events.write_lock
        return contextlib.nullcontext()

    def take_queued_hint(self) -> bool:
        """Whether a run that ended here since the last call had another run of its thread
        waiting (so a worker should claim now rather than at its next poll)."""
        hint, self._queued_hint = self._queued_hint, False
        return hint

    def hand_back(self, run_id: str) -> None:
        """Mark a run so that its cancellation returns it to the queue instead of ending it."""
        self._handing_back.add(run_id)

    async def abandon_in_flight(self) -> None:
        """Hand every run executing here back to the queue and wait for their tasks (the
        system is closing: another worker resumes them from their checkpoints)."""
        tasks = [task for task in self._tasks.values() if not task.done()]
        for run_id, task in list(self._tasks.items()):
            if not task.done():
                self.hand_back(run_id)
                task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=ABANDON_SECONDS)

    def cancel_local(self, run_id: str) -> bool:
        """Cancel the run if it executes in this process.

        Only the graph's stream is interrupted: a cancel that arrives while the run sets
        up (reads its row, plans, opens its memory) waits until the graph starts, and one
        that arrives while the run records its ending is not needed. A task cancelled
        anywhere else would end without recording an ending, leaving its row running.
        """
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        if run_id in self._streaming:
            self._streaming.discard(run_id)  # once: a second cancel would cut the ending
            task.cancel()
        else:
            self._deferred_cancels.add(run_id)
        return True

    def _start_streaming(self, run_id: str) -> None:
        """From here a cancel interrupts the run; one deferred until now takes effect."""
        if run_id in self._deferred_cancels:
            self._deferred_cancels.discard(run_id)
            raise asyncio.CancelledError
        self._streaming.add(run_id)

    # --- execution ------------------------------------------------------------------------

    async def execute(
        self, run_id: str, owner: str, log: EventLog | None = None, *, run: Run | None = None
    ) -> RunSummary:
        """Execute a run this owner has claimed, to its end. ``run``: its row as the
        submission that leased it wrote it (saves reading it back).

        A lapsed run claimed again continues from its last checkpoint.
        """
        task = asyncio.current_task()
        assert task is not None
        self._tasks[run_id] = task  # type: ignore[assignment]
        handed_back = False
        try:
            log = log or await self.events.open(run_id)
            with bound_contextvars(run_id=run_id):
                return await self._execute(run_id, owner, log, run)
        except asyncio.CancelledError:
            handed_back = run_id in self._handed_back
            self._handed_back.discard(run_id)
            if not handed_back and run_id in self._handing_back:
                # Cancelled outside the graph's stream (shutdown during set-up): hand the
                # run back rather than leave its row running under a dead lease.
                await asyncio.shield(self.release(run_id, owner))
                handed_back = True
            raise
        except LeaseLostError:
            handed_back = True  # its new owner continues it; this process ends nothing
            raise
        finally:
            self._tasks.pop(run_id, None)
            self._streaming.discard(run_id)
            self._deferred_cancels.discard(run_id)
            self._handing_back.discard(run_id)
            if log is not None:
                await asyncio.shield(log.close(ended=not handed_back))

    async def _execute(
        self, run_id: str, owner: str, log: EventLog, run: Run | None = None
    ) -> RunSummary:
        if run is None:
            async with self.system.db.session() as session:
                run = await session.get(Run, run_id)
        assert run is not None
        # The run's span continues the trace of the request that submitted it, which may
        # have been served by another process.
        parent = propagate.extract((run.kwargs or {}).get("trace_context") or {})
        attributes: dict[str, str | int] = {
            "relaygraph.run_id": run_id,
            "relaygraph.thread_id": run.thread_id,
            "relaygraph.assistant_id": run.assistant_id,
            "relaygraph.graph_id": run.graph_id,
            "relaygraph.tenant": run.tenant,
            "relaygraph.attempt": run.attempt,
        }
        with (
            bound_contextvars(tenant=run.tenant, user=run.requester, thread_id=run.thread_id),
            # Its tool calls commit effects only while this claim still holds the run.
            bind_lease(RunLease(run_id, owner, run.attempt)),
            _tracer.start_as_current_span("run", context=parent, attributes=attributes) as span,
        ):
            summary = await self._execute_run(run, owner, log, span)
            span.set_attribute("relaygraph.stop_reason", summary.stop_reason)
            span.set_attribute("relaygraph.status", summary.run_status)
            if summary.error:
                span.set_status(Status(StatusCode.ERROR, summary.error[:200]))
            return summary

    async def _execute_run(
        self, run: Run, owner: str, log: EventLog, span: trace.Span
    ) -> RunSummary:
        run_id = run.run_id
        kwargs = run.kwargs or {}
        try:
            plan = await self._plan(run)
        except RunRequestError as exc:  # e.g. its graph version is gone: fail, not hang
            return await self._fail_before_start(run, str(exc), log)
        await log.add(
            "metadata", {"run_id": run_id, "thread_id": run.thread_id, "attempt": run.attempt}
        )
        config: RunnableConfig = {
            "configurable": {
                **(kwargs.get("config") or {}).get("configurable", {}),
                "thread_id": run.thread_id,
            },
            "metadata": {
                "run_id": run_id,
                "graph_id": run.graph_id,
                "assistant_id": run.assistant_id,
            },
            "run_id": uuid.UUID(run_id),
            "recursion_limit": 10_000,
        }
        step_trace = StepTrace(
            run_id=run_id,
            thread_id=run.thread_id,
            tenant=run.tenant,
            sink=log,
            usage=self.system.router_services.recorder,
            prices_file=self.system.settings.prices_file,
        )
        tracer = RunTracer(span if tracing_enabled() else None, step_trace)
        config["callbacks"] = [tracer]
        graph_input = await self._graph_input(plan, kwargs, run, config)
        if kwargs.get("checkpoint_id"):
            config["configurable"]["checkpoint_id"] = kwargs["checkpoint_id"]
        deadline = time.time() + plan.limits.max_wall_seconds
        context = self._context(plan, run, deadline)
        if context is not None:  # issue 5: the run's own pseudonyms, restored in its events
            log.restore = event_restorer(context.pseudonyms, context.principal).outgoing
            if plan.assistant.options.get("memory"):
                context = replace(context, memory=await self._agent_memory())
        requested = [
            ("messages" if m == "messages-tuple" else m)
            for m in kwargs.get("stream_mode", ["updates"])
        ]
        # values and updates are always read: the final state and its interrupts come from
        # the stream, so finishing the run needs no extra state read.
        modes = sorted({*requested, "updates", "values"})
        error: str | None = None
        forced: str | None = None
        steps = 0
        last_values: Any = None
        interrupts: list[dict[str, Any]] = []
        hard_timeout = plan.limits.max_wall_seconds + (
            HARD_TIMEOUT_GRACE_SECONDS if plan.entry.builtin else 0
        )
        step_started = time.perf_counter()
        try:
            self._start_streaming(run_id)
            async with asyncio.timeout(hard_timeout):
                async for part in plan.graph.astream(  # type: ignore[call-overload]
                    graph_input,
                    config,
                    context=context,  # type: ignore[arg-type]
                    stream_mode=modes,  # type: ignore[arg-type]
                    subgraphs=bool(kwargs.get("stream_subgraphs")),
                    durability=kwargs.get("durability") or self.system.settings.durability,
                    interrupt_before=kwargs.get("interrupt_before"),
                    interrupt_after=kwargs.get("interrupt_after"),
                ):
                    namespace, mode, chunk = part if len(part) == 3 else ((), *part)
                    if mode == "values" and not namespace:
                        if isinstance(chunk, dict) and set(chunk) == {"__interrupt__"}:
                            chunk = {**(last_values or {}), **chunk}
                        last_values = chunk
                    if mode in requested:
                        name = "|".join([mode, *namespace])
                        await log.add(name, _chunk_data(mode, chunk))
                    if mode == "updates" and not namespace:
                        now = time.perf_counter()
                        for node in chunk if isinstance(chunk, dict) else ():
                            if node != "__interrupt__":
                                metrics.STEP_SECONDS.labels(node=node).observe(now - step_started)
                        step_started = now
                        if isinstance(chunk, dict) and "__interrupt__" in chunk:
                            interrupts = [
                                {"value": to_jsonable(i.value), "id": i.id}
                                for i in chunk["__interrupt__"]
                            ]
                        steps += 1
                        if not plan.entry.builtin and steps >= plan.limits.max_steps:
                            forced = lim.STEP_LIMIT
                            break
        except TimeoutError:
            forced = lim.TIMEOUT
        except asyncio.CancelledError:
            self._streaming.discard(run_id)  # recording the ending is not interrupted
            if run_id in self._handing_back:
                self._handing_back.discard(run_id)
                self._handed_back.add(run_id)
                await asyncio.shield(self.release(run_id, owner))
                raise
            action = await self.cancel_requested(run_id)
            tracer.close_all()  # before a rollback discards what the run had pending
            await asyncio.shield(
                self._finish(plan, run, None, lim.CANCELLED, log, rollback=action == "rollback")
            )
            raise
        except LeaseLostError:
            # Another worker claimed the run (this one stalled past its lease) and resumes
            # it: stop here, recording neither events nor an ending for it.
            log.discard()
            raise
        except Exception as exc:  # the run ends in error; the checkpoint keeps its progress
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self._streaming.discard(run_id)
            tracer.close_all()
        observed = None
        if error is None and forced is None and isinstance(last_values, dict):
            # issue 5: the private pseudonyms channel never reaches events or webhooks
            hidden = ("__interrupt__", PSEUDONYMS_KEY)
            values = {k: v for k, v in last_values.items() if k not in hidden}
            observed = (values, interrupts)
        return await self._finish(plan, run, error, forced, log, observed=observed)

    async def _fail_before_start(self, run: Run, error: str, log: EventLog) -> RunSummary:
        summary = RunSummary(
            thread_id=run.thread_id,
            run_id=run.run_id,
            status="error",
            run_status="error",
            stop_reason=lim.ERROR,
            interrupt=None,
            final_message=error,
            error=error,
        )
        await log.add("error", {"error": "run_failed", "message": error}, flush=False)
        await log.add(
            "end", {**summary.to_dict(), "run_status": "error", "values": {}}, flush=False
        )
        async with self.events.write_lock, self.system.db.transaction() as session:
            row = await session.get(Run, run.run_id)
            thread = await session.get(Thread, run.thread_id)
            if row is not None:
                _end_run(row, "error", lim.ERROR, error)
            if thread is not None:
                thread.status = "error"
            await log.flush(session)
        _count_run(run, summary)
        return summary

    async def _plan(self, run: Run) -> _Plan:
        """What the run needs, from its own row: it pinned the graph version at submission."""
        try:
            assistant = await self.assistants.resolve(run.tenant, run.assistant_id)
            entry = self.system.graphs.get(run.graph_id, run.graph_version)
        except (AssistantNotFound, GraphNotFound) as exc:
            raise RunNotFound(str(exc)) from exc
        return _Plan(
            thread_id=run.thread_id,
            assistant=assistant,
            entry=entry,
            graph=self.graph(entry),
            requester=_principal_of(run),
            limits=lim.Limits.merged(run.limits),
            prompt_version=run.prompt_version,
            model_spec=run.model or self.system.settings.default_model,
        )

    async def _graph_input(
        self, plan: _Plan, kwargs: dict[str, Any], run: Run, config: RunnableConfig
    ) -> Any:
        if run.attempt > 1:
            # Claimed again after its worker died: continue from the last checkpoint if this
            # run had reached one; otherwise start it as asked.
            head = await self.system.checkpointer.aget_tuple(config)
            if head is not None and head.metadata.get("run_id") == run.run_id:
                return None
        kind = kwargs.get("kind")
        if kind == "input":
            graph_input = kwargs.get("input")
            if plan.entry.builtin and isinstance(graph_input, dict):
                return {**graph_input, **fresh_turn()}
            return graph_input
        if kind == "command":
            command = kwargs.get("command") or {}
            return Command(
                resume=command.get("resume"),
                update=command.get("update"),
                goto=command.get("goto") or (),
            )
        if kind == "continue":
            state = await plan.graph.aget_state(config)
            values = state.values if isinstance(state.values, dict) else {}
            if not state.next and values.get("stop_reason") in lim.LIMIT_REASONS:
                return Command(goto=values.get("resume_at") or "resume")
        return None

    def _context(self, plan: _Plan, run: Run, deadline: float) -> RunContext | None:
        if not plan.entry.uses_run_context:
            return None
        system = self.system
        prompt = load_prompt(plan.entry.prompt, plan.prompt_version) if plan.entry.prompt else None
        names = plan.assistant.tools if plan.assistant.tools is not None else system.tools.names()
        model: Any = system.model(plan.model_spec)
        if names:
            model = model.bind_tools(tool_definitions(system.tools, names))
        return RunContext(
            run_id=run.run_id,
            principal=plan.requester,
            decided_by=run.submitted_by or plan.requester.user,
            model=model,
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
            options=plan.assistant.options,
            pseudonyms=RunPseudonyms(
                MinimisationPolicy.from_names(system.settings.privacy_minimise)
            ),
        )

    async def _agent_memory(self) -> AgentMemory | None:
        """Long-term memory for an assistant with the ``memory`` option; None (logged)
        when this process cannot open it: the run goes on without memories."""
        from runtime.memory_services import minimisation_policy

        lazy = self.system.memory
        if lazy is None:
            return None
        try:
            services = await lazy.get()
        except Exception as exc:  # vector store locked elsewhere, embedder missing
            structlog.get_logger(__name__).warning(
                "memory_unavailable", error=type(exc).__name__, detail=str(exc)
            )
            return None
        return AgentMemory(services.memories, minimisation_policy(self.system.settings))

    async def cancel_requested(self, run_id: str) -> str | None:
        """The cancel action asked for this run (``interrupt``/``rollback``), if any."""
        async with self.system.db.session() as session:
            return (
                await session.execute(select(Run.cancel_requested).where(Run.run_id == run_id))
            ).scalar_one_or_none()

    async def _finish(
        self,
        plan: _Plan,
        run: Run,
        error: str | None,
        forced: str | None,
        log: EventLog,
        *,
        rollback: bool = False,
        observed: tuple[dict[str, Any], list[dict[str, Any]]] | None = None,
    ) -> RunSummary:
        """Record how the run ended. ``observed``: the final values and interrupts as the
        stream showed them; without it (errors, stops, cancels) the state is read."""
        config: RunnableConfig = {"configurable": {"thread_id": plan.thread_id}}
        if rollback:
            await _delete_checkpoints_of_run(self.system, plan.thread_id, run.run_id)
        interrupts: list[dict[str, Any]] = []
        values: dict[str, Any] = {}
        if observed is not None:
            values, interrupts = observed
        else:
            try:
                state = await plan.graph.aget_state(config)
                interrupts = [{"value": to_jsonable(i.value), "id": i.id} for i in state.interrupts]
                values = state.values if isinstance(state.values, dict) else {}
                values.pop(PSEUDONYMS_KEY, None)  # issue 5: private, never in events or webhooks
            except Exception as exc:  # state unreadable: report the run as failed
                error = error or f"cannot read the thread's state: {exc}"
        if error:
            reason = lim.ERROR
        elif forced:
            reason = forced
        elif interrupts:
            reason = lim.WAITING_FOR_HUMAN
        else:
            reason = values.get("stop_reason") or lim.COMPLETED
        run_status = RUN_STATUS.get(reason, "success")
        thread_status = "error" if error else ("interrupted" if interrupts else "idle")
        final = values.get("final_message")
        if final is None and not interrupts:
            final = _last_ai_text(values)
        if forced == lim.CANCELLED:
            final = "Cancelled; resuming the thread continues from its last checkpoint."
        elif forced and not final:
            final = f"Stopped: {forced.replace('_', ' ')}; raise the limit and resume."
        summary = RunSummary(
            thread_id=plan.thread_id,
            run_id=run.run_id,
            status=CLI_STATUS[reason],
            run_status=run_status,
            stop_reason=reason,
            interrupt=interrupts[0]["value"] if interrupts else None,
            final_message=final if not error else error,
            error=error,
        )
        if error:
            await log.add("error", {"error": "run_failed", "message": error}, flush=False)
        final_values = to_jsonable(values)
        if interrupts:
            final_values["__interrupt__"] = interrupts
        await log.add(
            "end",
            {**summary.to_dict(), "run_status": run_status, "values": final_values},
            flush=False,
        )
        # The last events commit with the final status: whoever sees the run ended (by
        # polling the database) also sees every event.
        if not rollback:
            # One transaction for the status, the lease, the thread and the last events,
            # shared with the other runs ending now (runtime.endings).
            ending = Ending(
                run_id=run.run_id,
                thread_id=plan.thread_id,
                status=run_status,
                stop_reason=reason,
                error=error,
                thread_status=thread_status,
                interrupted=bool(interrupts),
                log=log,
            )
            if await self.endings.end(ending):
                self._queued_hint = True  # a run queued behind this one: claim it now
        else:
            await self._end_rolled_back(
                plan.thread_id, run.run_id, log, thread_status, interrupted=bool(interrupts)
            )
        _count_run(run, summary)
        if webhook := (run.kwargs or {}).get("webhook"):
            payload = {
                "run_id": run.run_id,
                "thread_id": plan.thread_id,
                "assistant_id": run.assistant_id,
                "status": run_status,
                "stop_reason": reason,
                "error": error,
                "metadata": run.metadata_ or {},
                "values": final_values,
            }
            secret = tenant_secret(self._webhook_secret, run.tenant)
            task = asyncio.create_task(
                deliver(
                    webhook,
                    payload,
                    secret=secret,
                    message_id=f"run_{run.run_id}",
                    allow_networks=self.system.settings.http_allow_networks,
                )
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if (run.kwargs or {}).get("on_completion") == "delete" and not interrupts:
            await self.delete_thread(plan.thread_id)
        return summary

    async def _end_rolled_back(
        self, thread_id: str, run_id: str, log: EventLog, thread_status: str, *, interrupted: bool
    ) -> None:
        """A cancel with rollback: the run's row goes (its events with it); the thread is
        ``busy`` if another of its runs is active (and it waits for no decision), else
        ``thread_status``."""
        async with self.events.write_lock, self.system.db.transaction() as session:
            other_active = (
                await session.execute(
                    select(Run.run_id)
                    .where(Run.thread_id == thread_id, Run.status.in_(ACTIVE), Run.run_id != run_id)
                    .limit(1)
                )
            ).first()
            if other_active:
                self._queued_hint = True
            await session.execute(
                update(Thread)
                .where(Thread.thread_id == thread_id)
                .values(status="busy" if other_active and not interrupted else thread_status)
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                delete(Run).where(Run.run_id == run_id).execution_options(synchronize_session=False)
            )
            log.discard()

    async def delete_thread(self, thread_id: str) -> None:
        """Delete a thread's rows and checkpoints (its runs' events go with the runs)."""
        async with self.system.db.transaction() as session:
            await session.execute(delete(Run).where(Run.thread_id == thread_id))
            await session.execute(delete(Thread).where(Thread.thread_id == thread_id))
        await self.system.checkpointer.adelete_thread(thread_id)


_tracer = trace.get_tracer("relaygraph.runtime")


def _trace_carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers, for the run to continue it (None: none)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def _count_run(run: Run, summary: RunSummary) -> None:
    metrics.RUNS.labels(
        assistant=run.assistant_id, status=summary.run_status, stop_reason=summary.stop_reason
    ).inc()
    if run.started_at is not None:
        elapsed = (utcnow() - run.started_at).total_seconds()
        metrics.RUN_SECONDS.labels(assistant=run.assistant_id).observe(max(elapsed, 0.0))


def _chunk_data(mode: str, chunk: Any) -> Any:
    if mode == "messages" and isinstance(chunk, tuple) and len(chunk) == 2:
        message, metadata = chunk
        data = message_to_dict(message) if isinstance(message, BaseMessage) else message
        return [to_jsonable(data), to_jsonable(metadata)]
    return to_jsonable(chunk)


def _stamped(
    thread: Thread, assistant_id: str, entry: GraphEntry, prompt_version: str | None
) -> list[tuple[str, Any]]:
    """A submitted run's changes to its thread: the graph and assistant pinned (first run
    only) and stamped into the metadata, the status ``busy``."""
    return [
        ("assistant_id", thread.assistant_id or assistant_id),
        ("graph_id", thread.graph_id or entry.graph_id),
        ("graph_version", thread.graph_version or entry.version),
        ("prompt_version", thread.prompt_version or prompt_version),
        (
            "metadata_",
            {**(thread.metadata_ or {}), "graph_id": entry.graph_id, "assistant_id": assistant_id},
        ),
        ("status", "busy"),
    ]


_INSERT_RUN = insert(Run.__table__)  # type: ignore[arg-type]
_ACTIVE_RUNS_OF_THREAD = select(Run).where(  # built once, as the one below
    Run.thread_id == bindparam("b_thread_id"), Run.status.in_(ACTIVE)
)
_STAMP_IF_UNCHANGED = (  # built once: building it per submission cost more than running it
    update(Thread.__table__)  # type: ignore[arg-type]
    .where(
        Thread.__table__.c.thread_id == bindparam("b_thread_id"),
        Thread.__table__.c.tenant == bindparam("b_tenant"),
        Thread.__table__.c.updated_at == bindparam("b_read_at"),
    )
    .values(
        {
            getattr(Thread, name).expression: bindparam(f"b_{name}")
            for name in (
                "assistant_id",
                "graph_id",
                "graph_version",
                "prompt_version",
                "metadata_",
                "status",
                "updated_at",
            )
        }
    )
)


async def _stamp_if_unchanged(
    session: Any,
    thread: Thread,
    assistant_id: str,
    entry: GraphEntry,
    prompt_version: str | None,
) -> bool:
    """Apply ``_stamped`` to ``thread``'s row in one UPDATE if the row is still as it was
    read (same ``updated_at``: every writer of threads sets it), and to ``thread`` too;
    False, with nothing written, if the row changed or is gone."""
    changes = [*_stamped(thread, assistant_id, entry, prompt_version), ("updated_at", utcnow())]
    result = await session.execute(
        _STAMP_IF_UNCHANGED,
        {
            "b_thread_id": thread.thread_id,
            "b_tenant": thread.tenant,
            "b_read_at": thread.updated_at,
            **{f"b_{name}": value for name, value in changes},
        },
    )
    if result.rowcount != 1:
        return False
    for name, value in changes:
        setattr(thread, name, value)
    return True


async def _thread_running(session: Any, thread_id: str, other_than: str | None = None) -> bool:
    statement = select(Run.run_id).where(Run.thread_id == thread_id, Run.status == "running")
    if other_than is not None:
        statement = statement.where(Run.run_id != other_than)
    return (await session.execute(statement.limit(1))).first() is not None


def _lease(run: Run, owner: str) -> None:
    run.status = "running"
    run.lease_owner = owner
    run.lease_expires_at = utcnow() + timedelta(seconds=LEASE_SECONDS)
    run.attempt = (run.attempt or 0) + 1
    run.started_at = run.started_at or utcnow()


def _ended_values(status: str, reason: str, error: str | None) -> dict[str, Any]:
    """The columns of a run that ended (its lease released)."""
    return {
        "status": status,
        "stop_reason": reason,
        "error": error,
        "ended_at": utcnow(),
        "lease_owner": None,
        "lease_expires_at": None,
    }


def _end_run(run: Run, status: str, reason: str, error: str | None) -> None:
    for name, value in _ended_values(status, reason, error).items():
        setattr(run, name, value)


def _principal_of(run: Run) -> Principal:
    try:
        return Principal.with_roles(run.tenant, run.requester, run.requester_roles)
    except ValueError:
        return Principal(tenant=run.tenant, user=run.requester)


def _last_ai_text(values: dict[str, Any]) -> str | None:
    for message in reversed(values.get("messages") or []):
        if isinstance(message, AIMessage):
            return message.text
    return None


async def _delete_checkpoints_of_run(system: System, thread_id: str, run_id: str) -> None:
    """Rollback: drop the checkpoints this run wrote, keeping the thread's earlier ones."""
    saver = system.checkpointer
    doomed = [
        item.config["configurable"]["checkpoint_id"]
        async for item in saver.alist({"configurable": {"thread_id": thread_id}})
        if item.metadata.get("run_id") == run_id
    ]
    if doomed:
        from graphs.checkpointer import delete_checkpoints

        await delete_checkpoints(saver, thread_id, doomed)


__all__ = [
    "RunConflict",
    "RunForbidden",
    "RunNotFound",
    "RunRequest",
    "RunRequestError",
    "RunSummary",
    "Runner",
    "lease_owner",
    "may_change_thread",
    "may_read_thread",
]
