"""The audit log: an append-only hash chain over digests, with payloads stored beside it.

Every tool-call attempt and every approval decision appends one :class:`AuditEntry`.
Its ``hash`` covers the previous hash and the entry's columns, including salted
digests of the arguments and result; the arguments and result themselves (and the
salt) live in ``audit_payloads``, so erasing them (GDPR Art. 17) leaves every link
verifiable. :func:`AuditLog.verify` recomputes the chain, and for payloads still
present checks that they match their digests.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, overload

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from store import Database
from store.models import AuditEntry, AuditPayload, utcnow
from tools.types import canonical_json

log = logging.getLogger(__name__)
GENESIS = "0" * 64
MAX_BATCH = 500
_CHAINED = (
    "seq",
    "at",
    "event",
    "tenant",
    "actor",
    "via",
    "tool",
    "decision",
    "approver",
    "status",
    "error_code",
    "latency_ms",
    "run_id",
    "thread_id",
    "approval_id",
    "args_digest",
    "result_digest",
)


_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def audited_tool_name(name: str) -> str:
    """``name`` as the chain may hold it: a tool name as tools are named, else
    ``(invalid name)`` (names come from models and clients: a NUL byte, which PostgreSQL
    refuses in text, or 100k characters must not reach the chain)."""
    return name if _TOOL_NAME.fullmatch(name) else "(invalid name)"


@dataclass
class AuditRecord:
    """What one audit row says; ``args``/``result`` go to the erasable payload table."""

    event: str
    tenant: str
    actor: str
    tool: str
    decision: str
    status: str
    via: str = "graph"
    approver: str | None = None
    error_code: str | None = None
    latency_ms: float | None = None
    run_id: str | None = None
    thread_id: str | None = None
    approval_id: str | None = None
    args: Any = None
    result: Any = None


@dataclass
class VerifyReport:
    """``ok`` when every link and every remaining payload checks out."""

    entries: int = 0
    erased_payloads: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "erased_payloads": self.erased_payloads,
            "problems": self.problems,
        }


def _digest(salt: str, value: Any) -> str:
    return hashlib.sha256(f"{salt}:{canonical_json(value)}".encode()).hexdigest()


def _timestamp(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def link_hash(prev_hash: str, entry: AuditEntry) -> str:
    """The hash of ``entry`` chained onto ``prev_hash``."""
    return _chain_hash(prev_hash, {name: getattr(entry, name) for name in _CHAINED})


def _chain_hash(prev_hash: str, values: dict[str, Any]) -> str:
    fields = {name: values[name] for name in _CHAINED}
    fields["at"] = _timestamp(values["at"])
    if fields["latency_ms"] is not None:
        fields["latency_ms"] = round(float(fields["latency_ms"]), 3)
    return hashlib.sha256(f"{prev_hash}|{canonical_json(fields)}".encode()).hexdigest()


class AuditLog:
    """Appends to and verifies the chain.

    Appends are group-committed: records queue in call order and one flusher task per
    process writes whatever has queued in one transaction, so the chain order is the
    append order and concurrent callers share a commit. ``append`` returns once its
    row is durable; with ``wait=False`` (successful read calls, the hot path of MCP
    clients) it returns at once and the row commits with the next batch, moments
    later (a crash in between loses those rows; :meth:`flush` at shutdown does not).
    Several processes are serialised by the unique ``seq`` (a loser re-reads the tip
    and retries the batch).
    """

    def __init__(self, db: Database, *, defer_window_seconds: float = 0.05) -> None:
        self.db = db
        self.defer_window_seconds = defer_window_seconds
        """How long an unwaited row may wait before its batch commits (one commit for many
        reads), counted from its append; a waiting append or a reader cuts it short."""
        self._urgent: asyncio.Event | None = None
        self._readers = 0
        self._tip: tuple[int, str] | None = None
        """(seq, hash) of the last entry this process appended; a stale tip (another
        process appended since) fails on the unique seq and is read again."""
        self._queue: list[tuple[AuditRecord, asyncio.Future[int] | None]] = []
        self._oldest = 0.0
        """When the oldest queued row was appended (loop time)."""
        self._flusher: asyncio.Task[None] | None = None

    @overload
    async def append(self, record: AuditRecord, *, wait: Literal[True] = True) -> int: ...
    @overload
    async def append(self, record: AuditRecord, *, wait: bool) -> int | None: ...
    async def append(self, record: AuditRecord, *, wait: bool = True) -> int | None:
        """Append ``record``; returns its sequence number once it is committed, or None
        at once with ``wait=False``.

        Raises:
            IntegrityError, SQLAlchemyError: the batch could not be written.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] | None = loop.create_future() if wait else None
        if not self._queue:
            self._oldest = loop.time()
        self._queue.append((record, done))
        if done is not None or len(self._queue) >= MAX_BATCH:
            self._hurry()
        flusher = self._flusher
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush_queue(), name="audit-group-commit")
        if done is None:
            return None
        return await asyncio.shield(done)  # a cancelled caller's row is written anyway

    async def flush(self) -> None:
        """Wait until every queued record is committed (before reading, at shutdown)."""
        self._readers += 1  # no gathering while someone waits to read
        self._hurry()
        try:
            while self._queue or (self._flusher is not None and not self._flusher.done()):
                flusher = self._flusher
                if flusher is None or flusher.get_loop() is not asyncio.get_running_loop():
                    return
                await asyncio.wait([flusher])
        finally:
            self._readers -= 1

    def _hurry(self) -> None:
        if self._urgent is not None:
            self._urgent.set()

    async def _flush_queue(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            gather = not self._readers and len(self._queue) < MAX_BATCH
            # Rows queued while the previous batch was committing have waited already.
            deadline = self._oldest + self.defer_window_seconds
            if gather and deadline > loop.time() and all(done is None for _, done in self._queue):
                self._urgent = asyncio.Event()
                with suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        await self._urgent.wait()
                self._urgent = None
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            if self._queue:  # rows past MAX_BATCH are due at once
                self._oldest = loop.time() - self.defer_window_seconds
            try:
                seqs = await self._append_batch([record for record, _ in batch])
            except Exception as exc:
                log.exception("audit: %d entries could not be written", len(batch))
                for _, done in batch:
                    if done is not None and not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), seq in zip(batch, seqs, strict=True):
                if done is not None and not done.done():
                    done.set_result(seq)

    async def _append_batch(self, records: list[AuditRecord]) -> list[int]:
        for attempt in range(20):
            try:
                return await self._append_once(records)
            except IntegrityError:
                self._tip = None  # another process appended: read the tip again
                if attempt == 19:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _append_once(self, records: list[AuditRecord]) -> list[int]:
        async with self.db.transaction() as session:
            tip = self._tip
            if tip is None:
                row = (
                    await session.execute(
                        select(AuditEntry.seq, AuditEntry.hash)
                        .order_by(AuditEntry.seq.desc())
                        .limit(1)
                    )
                ).first()
                tip = (row[0], row[1]) if row else (0, GENESIS)
            entries, payloads = [], []
            for record in records:
                entry, payload = _link(record, tip)
                entries.append(entry)
                payloads.append(payload)
                tip = (entry["seq"], entry["hash"])
            # Core executemany: the ORM's bulk path costs more than the rows themselves.
            await session.execute(insert(AuditEntry.__table__), entries)  # type: ignore[arg-type]
            await session.execute(insert(AuditPayload.__table__), payloads)  # type: ignore[arg-type]
        self._tip = tip
        return [entry["seq"] for entry in entries]

    async def verify(self, *, batch: int = 1000) -> VerifyReport:
        """Recompute every link from the start; check remaining payloads against digests."""
        await self.flush()
        report = VerifyReport()
        prev = GENESIS
        expected_seq = 1
        last = 0
        async with self.db.session() as session:
            while True:
                rows = (
                    await session.execute(
                        select(AuditEntry, AuditPayload)
                        .outerjoin(AuditPayload, AuditPayload.seq == AuditEntry.seq)
                        .where(AuditEntry.seq > last)
                        .order_by(AuditEntry.seq)
                        .limit(batch)
                    )
                ).all()
                if not rows:
                    break
                for entry, payload in rows:
                    report.entries += 1
                    last = entry.seq
                    if entry.seq != expected_seq:
                        report.problems.append(
                            f"entry {entry.seq}: expected sequence {expected_seq} "
                            "(entries were deleted or inserted)"
                        )
                    expected_seq = entry.seq + 1
                    if entry.prev_hash != prev:
                        report.problems.append(
                            f"entry {entry.seq}: prev_hash does not match entry {entry.seq - 1}"
                        )
                    if link_hash(entry.prev_hash, entry) != entry.hash:
                        report.problems.append(
                            f"entry {entry.seq}: contents do not match its hash (edited)"
                        )
                    prev = entry.hash
                    self._check_payload(entry, payload, report)
        return report

    @staticmethod
    def _check_payload(
        entry: AuditEntry, payload: AuditPayload | None, report: VerifyReport
    ) -> None:
        if payload is None or payload.salt is None:
            report.erased_payloads += 1
            return
        for name, value, digest in (
            ("arguments", payload.args, entry.args_digest),
            ("result", payload.result, entry.result_digest),
        ):
            actual = None if value is None else _digest(payload.salt, value)
            if actual != digest:
                report.problems.append(f"entry {entry.seq}: stored {name} do not match the digest")

    async def erase_payloads(self, *, tenant: str, actor: str | None = None) -> int:
        """Erase arguments, results and salts of ``tenant``'s entries (one ``actor``'s
        when given); the chain stays valid. Returns the number of payloads erased."""
        await self.flush()  # queued rows too
        statement = (
            update(AuditPayload)
            .where(AuditPayload.tenant == tenant, AuditPayload.erased_at.is_(None))
            .values(args=None, result=None, salt=None, erased_at=utcnow())
        )
        if actor is not None:
            statement = statement.where(AuditPayload.actor == actor)
        async with self.db.transaction() as session:
            result = await session.execute(statement)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def entries(
        self,
        *,
        tenant: str,
        limit: int = 50,
        before: int | None = None,
        tool: str | None = None,
        actor: str | None = None,
        with_payloads: bool = False,
    ) -> list[dict[str, Any]]:
        """``tenant``'s entries, newest first (``before``: a seq to page from)."""
        await self.flush()
        statement = (
            select(AuditEntry, AuditPayload)
            .outerjoin(AuditPayload, AuditPayload.seq == AuditEntry.seq)
            .where(AuditEntry.tenant == tenant)
            .order_by(AuditEntry.seq.desc())
            .limit(limit)
        )
        if before is not None:
            statement = statement.where(AuditEntry.seq < before)
        if tool is not None:
            statement = statement.where(AuditEntry.tool == tool)
        if actor is not None:
            statement = statement.where(AuditEntry.actor == actor)
        async with self.db.session() as session:
            rows = (await session.execute(statement)).all()
        return [_entry_dict(entry, payload if with_payloads else None) for entry, payload in rows]


def _link(record: AuditRecord, tip: tuple[int, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entry row for ``record`` chained onto ``tip``, and its payload row."""
    seq, prev = tip[0] + 1, tip[1]
    salt = secrets.token_hex(16)
    entry: dict[str, Any] = {
        "seq": seq,
        "at": utcnow(),
        "event": record.event,
        "tenant": record.tenant,
        "actor": record.actor,
        "via": record.via,
        "tool": record.tool,
        "decision": record.decision,
        "approver": record.approver,
        "status": record.status,
        "error_code": record.error_code,
        "latency_ms": None if record.latency_ms is None else round(record.latency_ms, 3),
        "run_id": record.run_id,
        "thread_id": record.thread_id,
        "approval_id": record.approval_id,
        "args_digest": None if record.args is None else _digest(salt, record.args),
        "result_digest": None if record.result is None else _digest(salt, record.result),
        "prev_hash": prev,
    }
    entry["hash"] = _chain_hash(prev, entry)
    payload = {
        "seq": seq,
        "tenant": record.tenant,
        "actor": record.actor,
        "salt": salt,
        "args": record.args,
        "result": record.result,
        "erased_at": None,
    }
    return entry, payload


def _entry_dict(entry: AuditEntry, payload: AuditPayload | None) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(entry, name) for name in _CHAINED}
    data["at"] = entry.at.isoformat()
    data["prev_hash"] = entry.prev_hash
    data["hash"] = entry.hash
    if payload is not None:
        data["args"] = payload.args
        data["result"] = payload.result
        data["erased"] = payload.erased_at is not None
    return data
