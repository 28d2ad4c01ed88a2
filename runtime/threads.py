"""Threads as the API sees them: rows plus their checkpointed state, tenant-scoped."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot
from sqlalchemy import Select, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from graphs.registry import GraphNotFound
from graphs.serialization import to_jsonable
from identity import Principal
from memory.thread_pseudonyms import STATE_KEY as PSEUDONYMS_KEY
from runtime.runs import (
    ACTIVE,
    RunConflict,
    RunForbidden,
    Runner,
    RunNotFound,
    RunRequestError,
    may_change_thread,
    may_read_thread,
)
from store.models import Run, Thread, utcnow

THREAD_STATUSES = ("idle", "busy", "interrupted", "error")
logger = logging.getLogger(__name__)


class GraphUnavailable(RunConflict):
    """The thread's graph is not registered in this server (409: it can be again)."""


def _insert_thread(dialect: Any) -> Any:
    table = Thread.__table__
    return (
        dialect.insert(table)
        .values(
            thread_id=bindparam("b_thread_id"),
            tenant=bindparam("b_tenant"),
            owner=bindparam("b_owner"),
            status="idle",
            metadata=bindparam("b_metadata"),
            created_at=bindparam("b_now"),
            updated_at=bindparam("b_now"),
        )
        .on_conflict_do_nothing(index_elements=["thread_id"])
        .returning(table.c.thread_id)  # type: ignore[attr-defined]
    )


_INSERT_IF_NEW = {"sqlite": _insert_thread(sqlite), "postgresql": _insert_thread(postgresql)}


def checkpoint_dict(config: RunnableConfig | None) -> dict[str, Any] | None:
    if not config:
        return None
    conf = config.get("configurable", {})
    return {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
        "checkpoint_map": conf.get("checkpoint_map"),
    }


def shown_values(values: Any) -> Any:
    """Channel values as the API shows them: JSON-able, without the agent's private
    ``pseudonyms`` channel (issue 5, ``memory.thread_pseudonyms``)."""
    if isinstance(values, dict) and PSEUDONYMS_KEY in values:
        values = {key: value for key, value in values.items() if key != PSEUDONYMS_KEY}
    return to_jsonable(values)


def state_dict(snapshot: StateSnapshot) -> dict[str, Any]:
    """A LangGraph ``StateSnapshot`` in the LangGraph Server wire format."""
    tasks = [
        {
            "id": task.id,
            "name": task.name,
            "error": repr(task.error) if task.error else None,
            "interrupts": [{"value": to_jsonable(i.value), "id": i.id} for i in task.interrupts],
            "checkpoint": checkpoint_dict(task.state) if isinstance(task.state, dict) else None,
            "state": None,
            "result": to_jsonable(task.result),
        }
        for task in snapshot.tasks
    ]
    return {
        "values": shown_values(snapshot.values) if snapshot.values is not None else {},
        "next": list(snapshot.next),
        "tasks": tasks,
        "checkpoint": checkpoint_dict(snapshot.config),
        "metadata": to_jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "parent_checkpoint": checkpoint_dict(snapshot.parent_config),
        "interrupts": [{"value": to_jsonable(i.value), "id": i.id} for i in snapshot.interrupts],
    }


class ThreadService:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.system = runner.system

    # --- rows -----------------------------------------------------------------------------

    async def create(
        self,
        principal: Principal,
        *,
        thread_id: str | None,
        metadata: Mapping[str, Any] | None,
        if_exists: str = "raise",
    ) -> dict[str, Any]:
        """Insert the thread in one statement; an id that exists is left as it is and
        then read, to answer ``if_exists``.

        Raises:
            RunConflict: the id exists and ``if_exists`` is ``raise`` (or the caller may not
                see that thread).
        """
        thread_id = thread_id or str(uuid.uuid4())
        now = utcnow()
        thread = Thread(
            thread_id=thread_id,
            tenant=principal.tenant,
            owner=principal.user,
            status="idle",
            metadata_=dict(metadata or {}),
            created_at=now,
            updated_at=now,
        )
        row = {
            "b_thread_id": thread_id,
            "b_tenant": principal.tenant,
            "b_owner": principal.user,
            "b_metadata": thread.metadata_,
            "b_now": now,
        }
        for _ in range(2):  # again if the thread that was in the way is deleted meanwhile
            async with self.system.db.write_connection() as connection:
                inserted = (await connection.execute(self._insert_if_new(), row)).first()
            if inserted:
                return await self._public(thread)
            async with self.system.db.session() as session:
                existing = await session.get(Thread, thread_id)
            if existing is not None:
                if if_exists == "do_nothing" and may_read_thread(principal, existing):
                    return await self._public(existing)
                raise RunConflict(f"thread {thread_id} already exists")
        raise RunConflict(f"thread {thread_id} is being created and deleted concurrently")

    def _insert_if_new(self) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING RETURNING`` a new thread's row (no row: it
        exists); built once per dialect (building it per request cost more than running it)."""
        return _INSERT_IF_NEW["postgresql" if self.system.db.is_postgres else "sqlite"]

    async def get_row(self, principal: Principal, thread_id: str) -> Thread:
        """Raises: RunNotFound for a missing thread or one the caller may not see."""
        async with self.system.db.session() as session:
            thread = await session.get(Thread, thread_id)
        if thread is None or not may_read_thread(principal, thread):
            raise RunNotFound(f"there is no thread {thread_id!r}")
        return thread

    async def changeable_row(
        self, principal: Principal, thread_id: str, *, reviewer_ok: bool = False
    ) -> Thread:
        """Raises: RunNotFound (not visible), RunForbidden (a reviewer changing someone
        else's thread, unless ``reviewer_ok`` and it waits for a decision)."""
        thread = await self.get_row(principal, thread_id)
        if may_change_thread(principal, thread):
            return thread
        if reviewer_ok and thread.status == "interrupted":
            return thread
        raise RunForbidden(
            f"thread {thread_id} belongs to {thread.owner!r}; only its owner or an admin "
            "may change it"
        )

    async def get(self, principal: Principal, thread_id: str) -> dict[str, Any]:
        return await self._public(await self.get_row(principal, thread_id))

    async def patch(
        self, principal: Principal, thread_id: str, metadata: Mapping[str, Any]
    ) -> dict[str, Any]:
        await self.changeable_row(principal, thread_id)
        async with self.system.db.transaction() as session:
            thread = await session.get(Thread, thread_id)
            assert thread is not None
            thread.metadata_ = {**(thread.metadata_ or {}), **metadata}
            thread.updated_at = utcnow()
        return await self._public(thread)

    async def delete(self, principal: Principal, thread_id: str) -> None:
        thread = await self.changeable_row(principal, thread_id)
        async with self.system.db.transaction() as session:
            for run in (
                await session.execute(
                    select(Run).where(Run.thread_id == thread_id, Run.status.in_(ACTIVE))
                )
            ).scalars():
                run.cancel_requested = "interrupt"
                self.runner.cancel_local(run.run_id)
        await self.runner.delete_thread(thread.thread_id)

    def _visible(self, principal: Principal) -> Select[Any]:
        statement = select(Thread).where(Thread.tenant == principal.tenant)
        if not (principal.has_scope("reviews:decide") or principal.has_scope("tenant:read")):
            statement = statement.where(Thread.owner == principal.user)
        return statement

    async def search(
        self,
        principal: Principal,
        *,
        ids: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
        count_only: bool = False,
    ) -> list[dict[str, Any]] | int:
        statement = self._visible(principal)
        if ids:
            statement = statement.where(Thread.thread_id.in_(ids))
        if status:
            statement = statement.where(Thread.status == status)
        column = {
            "created_at": Thread.created_at,
            "updated_at": Thread.updated_at,
            "thread_id": Thread.thread_id,
            "status": Thread.status,
        }.get(sort_by, Thread.created_at)
        statement = statement.order_by(column.asc() if sort_order == "asc" else column.desc())
        async with self.system.db.session() as session:
            rows = list((await session.execute(statement)).scalars())
        # Metadata filters match on JSON equality of each key (portable across backends).
        if metadata:
            rows = [
                row
                for row in rows
                if all((row.metadata_ or {}).get(key) == value for key, value in metadata.items())
            ]
        if count_only:
            return len(rows)
        return [await self._public(row) for row in rows[offset : offset + limit]]

    async def count(self, principal: Principal, **filters: Any) -> int:
        result = await self.search(principal, count_only=True, **filters)
        assert isinstance(result, int)
        return result

    async def _public(self, thread: Thread) -> dict[str, Any]:
        values: Any = {}
        interrupts: dict[str, list[dict[str, Any]]] = {}
        try:
            snapshot = await self._snapshot(thread, None)
        except GraphUnavailable as exc:  # listed all the same: one such thread must not
            logger.warning("%s", exc)  # break search, the inbox or the console for all
            snapshot = None
        if snapshot is not None:
            values = shown_values(snapshot.values) or {}
            for task in snapshot.tasks:
                if task.interrupts:
                    interrupts[task.id] = [
                        {"value": to_jsonable(i.value), "id": i.id} for i in task.interrupts
                    ]
        return {
            "thread_id": thread.thread_id,
            "created_at": thread.created_at,
            "updated_at": thread.updated_at,
            "metadata": thread.metadata_ or {},
            "status": thread.status,
            "values": values,
            "interrupts": interrupts,
            "config": {},
            "error": None,
        }

    # --- state ----------------------------------------------------------------------------

    async def _snapshot(
        self, thread: Thread, checkpoint: Mapping[str, Any] | None
    ) -> StateSnapshot | None:
        if thread.graph_id is None:
            return None
        graph = self._graph(thread)
        config: RunnableConfig = {"configurable": {"thread_id": thread.thread_id}}
        if checkpoint:
            config["configurable"].update(
                {key: value for key, value in checkpoint.items() if value is not None}
            )
            config["configurable"]["thread_id"] = thread.thread_id
        return await graph.aget_state(config)

    def _graph(self, thread: Thread) -> Any:
        """The compiled graph of ``thread``.

        Raises:
            GraphUnavailable: this server does not have the thread's graph (any more).
        """
        assert thread.graph_id is not None
        try:
            return self.runner.graph(self.system.graphs.get(thread.graph_id))
        except GraphNotFound as exc:
            raise GraphUnavailable(
                f"thread {thread.thread_id} runs graph {thread.graph_id!r}, which this server "
                f"does not have ({exc}); register it again (RELAYGRAPH_GRAPHS) to read or "
                "continue the thread"
            ) from None

    async def state(
        self, principal: Principal, thread_id: str, checkpoint: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        thread = await self.get_row(principal, thread_id)
        snapshot = await self._snapshot(thread, checkpoint)
        if snapshot is None:
            return {
                "values": {},
                "next": [],
                "tasks": [],
                "checkpoint": None,
                "metadata": {},
                "created_at": None,
                "parent_checkpoint": None,
                "interrupts": [],
            }
        return state_dict(snapshot)

    async def history(
        self,
        principal: Principal,
        thread_id: str,
        *,
        limit: int = 10,
        before: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        thread = await self.get_row(principal, thread_id)
        if thread.graph_id is None:
            return []
        graph = self._graph(thread)
        config: RunnableConfig = {"configurable": {"thread_id": thread_id, **_clean(checkpoint)}}
        before_config: RunnableConfig | None = (
            {"configurable": {"thread_id": thread_id, **_clean(before)}} if before else None
        )
        return [
            state_dict(snapshot)
            async for snapshot in graph.aget_state_history(
                config,
                filter=dict(metadata) if metadata else None,
                before=before_config,
                limit=limit,
            )
        ]

    async def update_state(
        self,
        principal: Principal,
        thread_id: str,
        *,
        values: Any,
        as_node: str | None = None,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Raises: RunConflict while a run is in flight; RunRequestError for a bad update;
        RunForbidden for a reviewer, unless the thread waits for a decision (Agent Inbox
        answers "ignore" with a state update)."""
        thread = await self.changeable_row(principal, thread_id, reviewer_ok=True)
        if thread.status == "busy":
            raise RunConflict(f"thread {thread_id} is busy; wait for its run or cancel it")
        if thread.graph_id is None:
            raise RunConflict(f"thread {thread_id} has no graph yet: run it first")
        graph = self._graph(thread)
        config: RunnableConfig = {"configurable": {"thread_id": thread_id, **_clean(checkpoint)}}
        try:
            new_config = await graph.aupdate_state(config, values, as_node=as_node)
        except (ValueError, KeyError) as exc:
            raise RunRequestError(f"cannot update the state: {exc}") from exc
        snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        async with self.system.db.transaction() as session:
            row = await session.get(Thread, thread_id)
            assert row is not None
            row.status = "interrupted" if snapshot.interrupts else "idle"
            row.updated_at = utcnow()
        return {"checkpoint": checkpoint_dict(new_config)}

    async def copy(self, principal: Principal, thread_id: str) -> dict[str, Any]:
        """A new thread with the same checkpoints (history included) and metadata."""
        thread = await self.get_row(principal, thread_id)
        new_id = str(uuid.uuid4())
        from graphs.checkpointer import copy_thread

        await copy_thread(self.system.checkpointer, thread_id, new_id)
        async with self.system.db.transaction() as session:
            session.add(
                Thread(
                    thread_id=new_id,
                    tenant=thread.tenant,
                    owner=principal.user,
                    assistant_id=thread.assistant_id,
                    graph_id=thread.graph_id,
                    graph_version=thread.graph_version,
                    prompt_version=thread.prompt_version,
                    status="interrupted" if thread.status == "interrupted" else "idle",
                    metadata_=dict(thread.metadata_ or {}),
                )
            )
        return await self.get(principal, new_id)


def _clean(checkpoint: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        key: value
        for key, value in (checkpoint or {}).items()
        if value is not None and key in ("checkpoint_id", "checkpoint_ns")
    }
