"""Runs: background, streamed, waited on, joined, cancelled (LangGraph Server paths)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from langchain_core.messages import convert_to_messages
from sqlalchemy import select

from api.deps import CurrentPrincipal, Services, ServicesDep
from api.errors import ApiError
from api.schemas import MAX_OFFSET, MAX_QUERY_INT, RunCreate, RunsCancel
from api.sse import run_event_stream
from identity import Principal
from runtime.events import TERMINAL
from runtime.runs import ACTIVE, RunRequest, may_read_thread
from store.models import Run, Thread, utcnow

router = APIRouter(tags=["runs"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)]


def run_dict(run: Run) -> dict[str, Any]:
    kwargs = dict(run.kwargs or {})
    kwargs.pop("kind", None)
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "status": run.status,
        "metadata": run.metadata_ or {},
        "kwargs": kwargs,
        "multitask_strategy": run.multitask_strategy,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    }


def _location(run: Run) -> dict[str, str]:
    return {"Content-Location": f"/threads/{run.thread_id}/runs/{run.run_id}"}


async def _submit(
    svc: Services,
    principal: Principal,
    thread_id: str | None,
    body: RunCreate,
    idempotency_key: str | None,
    *,
    stateless: bool = False,
    on_completion: Literal["delete", "keep"] | None = None,
) -> Run:
    if stateless and body.checkpoint_ref():
        raise ApiError(
            404,
            "not_found",
            f"there is no checkpoint {body.checkpoint_ref()!r}: a stateless run starts on a "
            "new thread, which has none; to run from a checkpoint use "
            "POST /threads/{thread_id}/runs",
        )
    _check_message_lengths(body.input, svc.system.settings.max_message_chars)
    check_messages(body.input, "input")
    if body.command is not None:
        check_messages(body.command.update, "command.update")
    command = body.command.model_dump(exclude_none=True) if body.command else None
    request = RunRequest(
        principal=principal,
        assistant_id=body.assistant_id,
        thread_id=thread_id,
        input=body.input,
        command=command or None,
        checkpoint_id=body.checkpoint_ref(),
        config=body.config,
        context=body.context,
        metadata=body.metadata,
        durability=body.durability,
        stream_mode=body.modes(),
        stream_subgraphs=body.stream_subgraphs,
        interrupt_before=body.interrupt_before,
        interrupt_after=body.interrupt_after,
        multitask_strategy=body.multitask_strategy,
        if_not_exists="create" if stateless else body.if_not_exists,
        idempotency_key=idempotency_key,
        on_completion=on_completion or body.on_completion or ("delete" if stateless else "keep"),
        webhook=body.webhook,
    )
    worker = svc.worker
    if worker is not None and worker.has_room():
        # Lease it to this process's worker in the submit transaction and start it now.
        run = await svc.runner.submit(request, claim_for=worker.owner)
        if run.lease_owner == worker.owner and run.status == "running" and run.attempt == 1:
            if not svc.runner.events.is_live(run.run_id):
                worker.adopt(run.run_id, run)
            return run
    else:
        run = await svc.runner.submit(request)
    if worker is not None:
        worker.wake()
    return run


def _message_texts(message: Any) -> list[str]:
    if isinstance(message, str):
        return [message]
    if not isinstance(message, dict):
        return []
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str | dict)
        ]
    return []


def _check_message_lengths(run_input: Any, limit: int) -> None:
    """Raises: ApiError 422 ``message_too_long`` when an input message's text is over
    ``limit`` characters (``max_message_chars``)."""
    if not isinstance(run_input, dict):
        return
    messages = run_input.get("messages")
    if not isinstance(messages, list):
        messages = [messages]
    for index, message in enumerate(messages):
        length = sum(len(text) for text in _message_texts(message))
        if length > limit:
            raise ApiError(
                422,
                "message_too_long",
                f"input.messages[{index}] has {length} characters; at most {limit} are "
                "accepted (RELAYGRAPH_MAX_MESSAGE_CHARS): send long content as a file",
            )


def check_messages(values: Any, where: str) -> None:
    """Refuse ``values["messages"]`` that are not chat messages (str, (role, text), a dict
    with role/type and content, ...): accepted, the run's input would sit in the thread's
    checkpoint and fail every later read of its state.

    Raises:
        ApiError: 422 ``invalid_message`` naming the first message that is not one.
    """
    if not isinstance(values, dict) or values.get("messages") is None:
        return
    messages = values["messages"]
    for index, message in enumerate(messages if isinstance(messages, list) else [messages]):
        try:
            convert_to_messages([message])
        except Exception as exc:  # it raises ValueError, TypeError, KeyError, NotImplemented...
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ApiError(
                422,
                "invalid_message",
                f"{where}.messages[{index}] is not a chat message ({reason}); send e.g. "
                '{"role": "user", "content": "hello"}',
            ) from None


async def _final_values(svc: Services, run: Run) -> Any:
    """Wait for the run to end; its final values, or ``{"__error__": ...}``."""
    end: dict[str, Any] | None = None
    async for event in svc.runner.events.follow(run.run_id):
        if event.event == "end":
            end = event.data
    if end is None:
        current = await _load_run(svc, run.run_id)
        if current is not None and current.status == "interrupted":
            return {"__error__": {"error": "cancelled", "message": "the run was cancelled"}}
        return {"__error__": {"error": "run_lost", "message": "the run ended without a result"}}
    if end.get("run_status") == "error":
        return {"__error__": {"error": "run_failed", "message": end.get("final_message")}}
    return end.get("values", {})


def _sse(
    svc: Services,
    run: Run,
    modes: list[str] | tuple[str, ...] | None,
    *,
    after: int = 0,
    cancel_on_disconnect: bool,
    headers: dict[str, str],
    on_complete: Callable[[], Awaitable[None]] | None = None,
    release: Callable[[], None] | None = None,
) -> Response:
    """The run's events as SSE from ``after``; ``messages-tuple`` names the ``messages``
    events; the run is cancelled if asked and the client leaves before it ended."""

    async def cancel() -> None:
        await _cancel(svc, run.run_id, "interrupt")

    return run_event_stream(
        svc.runner.events,
        run.run_id,
        after=after,
        modes={"messages" if mode == "messages-tuple" else mode for mode in modes}
        if modes
        else None,
        heartbeat_seconds=svc.system.settings.sse_heartbeat_seconds,
        headers=headers,
        on_disconnect=cancel if cancel_on_disconnect else None,
        on_complete=on_complete,
        release=release,
    )


def _stream_slot(svc: Services, principal: Principal) -> Callable[[], None]:
    """Reserve one of the caller's SSE streams (before a run is created for it).

    Raises:
        ApiError: 429 ``too_many_streams`` over ``max_sse_streams`` (per user) or
            ``max_sse_streams_per_tenant``.
    """
    settings = svc.system.settings
    return svc.streams.reserve(
        principal.tenant,
        principal.user,
        per_user=settings.max_sse_streams,
        per_tenant=settings.max_sse_streams_per_tenant,
    )


async def _submit_streamed(
    svc: Services, principal: Principal, *args: Any, **kwargs: Any
) -> tuple[Run, Callable[[], None]]:
    release = _stream_slot(svc, principal)
    try:
        return await _submit(svc, principal, *args, **kwargs), release
    except BaseException:
        release()
        raise


def _stream(
    svc: Services,
    run: Run,
    body: RunCreate,
    on_complete: Callable[[], Awaitable[None]] | None = None,
    release: Callable[[], None] | None = None,
) -> Response:
    return _sse(
        svc,
        run,
        body.modes(),
        on_complete=on_complete,
        release=release,
        cancel_on_disconnect=body.on_disconnect == "cancel",
        headers={
            **_location(run),
            "Location": f"/threads/{run.thread_id}/runs/{run.run_id}/stream",
        },
    )


# --- thread runs ----------------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs")
async def create_run(
    thread_id: str,
    body: RunCreate,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    run = await _submit(svc, principal, thread_id, body, idempotency_key)
    return JSONResponse(_jsonable(run_dict(run)), headers=_location(run))


@router.post("/threads/{thread_id}/runs/stream")
async def stream_run(
    thread_id: str,
    body: RunCreate,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    run, release = await _submit_streamed(svc, principal, thread_id, body, idempotency_key)
    return _stream(svc, run, body, release=release)


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(
    thread_id: str,
    body: RunCreate,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    run = await _submit(svc, principal, thread_id, body, idempotency_key)
    return JSONResponse(_jsonable(await _final_values(svc, run)), headers=_location(run))


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    status: str | None = None,
) -> list[dict[str, Any]]:
    await svc.threads.get_row(principal, thread_id)
    statement = select(Run).where(Run.thread_id == thread_id)
    if status:
        statement = statement.where(Run.status == status)
    statement = statement.order_by(Run.created_at.desc()).offset(offset).limit(limit)
    async with svc.system.db.session() as session:
        return [run_dict(run) for run in (await session.execute(statement)).scalars()]


async def _load_run(svc: Services, run_id: str) -> Run | None:
    async with svc.system.db.session() as session:
        return await session.get(Run, run_id)


async def visible_run(svc: Services, principal: Principal, thread_id: str, run_id: str) -> Run:
    await svc.threads.get_row(principal, thread_id)
    run = await _load_run(svc, run_id)
    if run is None or run.thread_id != thread_id:
        raise ApiError(404, "not_found", f"there is no run {run_id!r} on thread {thread_id!r}")
    return run


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(
    thread_id: str, run_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    return run_dict(await visible_run(svc, principal, thread_id, run_id))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(
    thread_id: str, run_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> Response:
    run = await visible_run(svc, principal, thread_id, run_id)
    if run.status not in TERMINAL:
        raise ApiError(409, "conflict", f"run {run_id} is {run.status}; cancel it first")
    async with svc.system.db.transaction() as session:
        row = await session.get(Run, run_id)
        if row is not None:
            await session.delete(row)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(
    thread_id: str, run_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> Any:
    run = await visible_run(svc, principal, thread_id, run_id)
    if run.status in TERMINAL:
        state = await svc.threads.state(principal, thread_id)
        values = state["values"]
        if state["interrupts"]:
            values = {**values, "__interrupt__": state["interrupts"]}
        return _jsonable(values)
    return _jsonable(await _final_values(svc, run))


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_stream(
    thread_id: str,
    run_id: str,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    stream_mode: Annotated[list[str] | None, Query()] = None,
    cancel_on_disconnect: bool = False,
) -> Response:
    run = await visible_run(svc, principal, thread_id, run_id)
    after = _event_id(last_event_id)
    return _sse(
        svc,
        run,
        stream_mode,
        after=after,
        cancel_on_disconnect=cancel_on_disconnect,
        headers=_location(run),
        release=_stream_slot(svc, principal),
    )


def _event_id(header: str | None) -> int:
    """The event id a client resumes after: 0 (from the start) for a header that is no event
    id; ASCII digits only ("²" is a digit to Python, not to ``int``), capped to SQL's range."""
    if not header or not (header.isascii() and header.isdigit()):
        return 0
    if len(header) > len(str(MAX_QUERY_INT)):  # and int() refuses over 4,300 digits
        return MAX_QUERY_INT
    return min(int(header), MAX_QUERY_INT)


async def _cancel(svc: Services, run_id: str, action: str) -> Run | None:
    """Ask a run to stop; a pending run stops at once, a running one within a second."""
    async with svc.system.db.transaction() as session:
        run = await session.get(Run, run_id)
        if run is None or run.status in TERMINAL:
            return run
        if run.status == "pending":
            run.status = "interrupted"
            run.stop_reason = "cancelled"
            run.ended_at = utcnow()
            thread = await session.get(Thread, run.thread_id)
            if thread is not None and thread.status == "busy":
                thread.status = "idle"
        else:
            run.cancel_requested = action
    svc.runner.cancel_local(run_id)
    return run


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str,
    run_id: str,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    wait: bool = False,
    action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt",
) -> Response:
    run = await visible_run(svc, principal, thread_id, run_id)
    await _cancel(svc, run.run_id, action)
    if wait:
        await svc.runner.events.wait_ended(run.run_id)
        return Response(status_code=204)
    return Response(status_code=202)


@router.post("/runs/cancel", status_code=204)
async def cancel_runs(
    body: RunsCancel,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt",
) -> Response:
    statement = select(Run).where(Run.tenant == principal.tenant, Run.status.in_(ACTIVE))
    if body.thread_id:
        statement = statement.where(Run.thread_id == body.thread_id)
    if body.run_ids:
        statement = statement.where(Run.run_id.in_(body.run_ids))
    if body.status and body.status != "all":
        statement = statement.where(Run.status == body.status)
    async with svc.system.db.session() as session:
        runs = list((await session.execute(statement)).scalars())
        threads = {run.thread_id: await session.get(Thread, run.thread_id) for run in runs}
    for run in runs:
        thread = threads.get(run.thread_id)
        if thread is not None and may_read_thread(principal, thread):
            await _cancel(svc, run.run_id, action)
    return Response(status_code=204)


# --- stateless runs -------------------------------------------------------------------------


@router.post("/runs")
async def create_stateless_run(
    body: RunCreate,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    run = await _submit(svc, principal, None, body, idempotency_key, stateless=True)
    return JSONResponse(_jsonable(run_dict(run)), headers=_location(run))


@router.post("/runs/stream")
async def stream_stateless_run(
    body: RunCreate,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # The waiting request deletes the thread once it has the result: a worker in another
    # process deleting it would take the result with it.
    run, release = await _submit_streamed(
        svc, principal, None, body, idempotency_key, stateless=True, on_completion="keep"
    )

    return _stream(
        svc,
        run,
        body,
        on_complete=lambda: _discard_stateless(svc, run, body),
        release=release,
    )


@router.post("/runs/wait")
async def wait_stateless_run(
    body: RunCreate,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    run = await _submit(
        svc, principal, None, body, idempotency_key, stateless=True, on_completion="keep"
    )
    values = await _final_values(svc, run)
    await _discard_stateless(svc, run, body)
    return JSONResponse(_jsonable(values), headers=_location(run))


async def _discard_stateless(svc: Services, run: Run, body: RunCreate) -> None:
    """A stateless run's thread goes once its result is out (unless ``on_completion: keep``)."""
    if body.on_completion != "keep":
        await svc.runner.delete_thread(run.thread_id)


def _jsonable(value: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(value)
