"""Long-term memories: scanned, scoped, idempotent, merged, held when sensitive, expiring.

A memory is one short fact about a user ("prefers answers in Danish"), scoped by tenant and
user, optionally narrowed to one assistant and/or one thread. The text and its metadata
(source, purpose, legal basis, sensitivity, expiry) live in SQL; the vector lives in Chroma
under the opaque ``memory_id`` in the user's own partition (``memory.vectors``), so Chroma
never holds personal text.

Why it is built like this:

- **Idempotent writes.** ``content_key`` = sha256 of the scope and the normalised text, unique
  per (tenant, user): a retried ``remember`` (the background node re-running after a crash)
  finds its earlier row and does nothing.
- **Near duplicates merge.** Before inserting, the new text's vector is compared with the
  scope's memories; at cosine ≥ ``merge_threshold`` (0.92 by default for MiniLM) the existing
  memory is updated to the newer wording instead of a second row appearing.
- **Privacy first.** Every text is scanned (``privacy.scan_text``) before anything else.
  Text whose sensitivity is in ``hold_sensitivities`` (``special`` and ``financial`` by default)
  is stored ``awaiting_basis``: not embedded (with a provider embedder that would send it out),
  invisible to recall, until a legal basis covering it is recorded (``memory.consent``).
- **Recall is hybrid and exact.** Full text (SQLite FTS5 / PostgreSQL tsvector) and vector
  search run only over ids SQL says the principal may see, and are fused by reciprocal rank.
  Every hit is marked ``untrusted`` and carries its id and scores for the run trace.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy import ColumnElement, and_, column, delete, or_, select, table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from identity import Principal
from memory.embeddings import Embedder
from memory.types import MemoryStoreError, Scope
from memory.vectors import VectorIndex
from privacy import DEFAULT_OPTIONS, ScanOptions, Sensitivity, scan_text
from store import Database
from store.models import LegalBasis, Memory

log = structlog.get_logger(__name__)

MEMORY_NAMESPACE = "memories"
"""The vector namespace (one Chroma collection per (tenant, user) inside it)."""
ACTIVE = "active"
AWAITING_BASIS = "awaiting_basis"
SOURCES = ("conversation", "tool", "api", "import")
Outcome = Literal["created", "unchanged", "merged", "held"]

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")
_FTS = table("memories_fts", column("rowid"))
_MAX_QUERY_TERMS = 32


class MemoryError(MemoryStoreError):
    """A memory request breaks a rule (empty or oversized text, unknown source...)."""

    code = "memory_invalid"


class MemoryNotFoundError(MemoryStoreError):
    """No memory with that id is visible to the caller."""

    code = "memory_not_found"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class MemoryConfig:
    """How memories are kept. ``ttl_days`` None keeps them until deleted (not advised:
    every memory should have an expiry, GDPR Art. 5(1)(e))."""

    ttl_days: float | None = 365.0
    merge_threshold: float = 0.92
    min_similarity: float = 0.2
    """Vector hits less similar than this are not recalled (full-text hits always are)."""
    hold_sensitivities: frozenset[Sensitivity] = frozenset(
        {Sensitivity.SPECIAL, Sensitivity.FINANCIAL}
    )
    default_purpose: str = "personalisation"
    max_chars: int = 4000
    rrf_k: int = 60
    candidates: int = 20
    scan_options: ScanOptions = DEFAULT_OPTIONS


@dataclass(frozen=True)
class MemoryView:
    """A memory as callers see it (API, export, tools)."""

    memory_id: str
    text: str
    tenant: str
    user: str
    assistant_id: str | None
    thread_id: str | None
    source: str
    purpose: str
    legal_basis: str | None
    sensitivity: str
    status: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, row: Memory) -> MemoryView:
        return cls(
            memory_id=row.memory_id,
            text=row.text,
            tenant=row.tenant,
            user=row.user,
            assistant_id=row.assistant_id,
            thread_id=row.thread_id,
            source=row.source,
            purpose=row.purpose,
            legal_basis=row.legal_basis,
            sensitivity=row.sensitivity,
            status=row.status,
            created_at=row.created_at,
            updated_at=row.updated_at,
            expires_at=row.expires_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory_id": self.memory_id,
            "text": self.text,
            "tenant": self.tenant,
            "user": self.user,
            "assistant_id": self.assistant_id,
            "thread_id": self.thread_id,
            "source": self.source,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "sensitivity": self.sensitivity,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


@dataclass(frozen=True)
class RecalledMemory:
    """One recall hit: untrusted context for the model, with what the trace needs."""

    memory_id: str
    text: str
    score: float
    """Reciprocal-rank-fusion score of the hit (higher is better)."""
    similarity: float | None
    """Cosine similarity to the query, when the vector search found it."""
    fulltext_rank: int | None
    created_at: datetime
    trust: str = "untrusted"

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory_id": self.memory_id,
            "text": self.text,
            "score": round(self.score, 6),
            "similarity": None if self.similarity is None else round(self.similarity, 6),
            "fulltext_rank": self.fulltext_rank,
            "created_at": self.created_at.isoformat(),
            "trust": self.trust,
        }

    def trace(self) -> dict[str, Any]:
        """What goes into the run trace: ids and scores, never the text."""
        data = self.to_dict()
        del data["text"]
        return data


@dataclass(frozen=True)
class WriteResult:
    """What ``remember`` did. ``held`` means stored ``awaiting_basis``."""

    memory_id: str
    outcome: Outcome
    status: str
    sensitivity: str
    similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory_id": self.memory_id,
            "outcome": self.outcome,
            "status": self.status,
            "sensitivity": self.sensitivity,
            "similarity": self.similarity,
        }


@dataclass
class _Pending:
    """Background writes in flight (``remember_later``), so callers can drain them."""

    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


def normalise(text_: str) -> str:
    """NFKC, collapsed whitespace, trimmed: the form the idempotency key is taken of."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text_)).strip()


def content_key(
    tenant: str, user: str, assistant_id: str | None, thread_id: str | None, text_: str
) -> str:
    """The idempotency key of a memory: its scope and normalised, case-folded text."""
    parts = (tenant, user, assistant_id or "", thread_id or "", normalise(text_).casefold())
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def new_memory_id() -> str:
    return "mem_" + secrets.token_hex(12)


def query_terms(query: str) -> list[str]:
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        seen.setdefault(word, None)
    return list(seen)[:_MAX_QUERY_TERMS]


def covers(basis: LegalBasis, sensitivity: str, purpose: str) -> bool:
    """Whether an unwithdrawn ``basis`` covers data of ``sensitivity`` for ``purpose``."""
    return (
        basis.withdrawn_at is None
        and sensitivity in (basis.categories or [])
        and basis.purpose in ("*", purpose)
    )


async def covering_basis(
    session: AsyncSession, tenant: str, subject: str, sensitivity: str, purpose: str
) -> LegalBasis | None:
    """The newest unwithdrawn basis of ``subject`` covering ``sensitivity`` for ``purpose``."""
    bases = (
        await session.execute(
            select(LegalBasis)
            .where(
                LegalBasis.tenant == tenant,
                LegalBasis.subject == subject,
                LegalBasis.withdrawn_at.is_(None),
            )
            .order_by(LegalBasis.recorded_at.desc())
        )
    ).scalars()
    return next((b for b in bases if covers(b, sensitivity, purpose)), None)


class Memories:
    """The memory service over one store, the ``memories`` vector namespace and one embedder.

    All methods are scoped by a ``Principal`` (its tenant and user); nothing crosses users.
    """

    def __init__(
        self,
        db: Database,
        index: VectorIndex,
        embedder: Embedder,
        config: MemoryConfig | None = None,
    ) -> None:
        self.db = db
        self.index = index
        self.embedder = embedder
        self.config = config or MemoryConfig()
        self._pending = _Pending()

    # --- writing -------------------------------------------------------------------

    async def remember(
        self,
        principal: Principal,
        text_: str,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        source: str = "conversation",
        purpose: str | None = None,
        ttl_days: float | None = None,
    ) -> WriteResult:
        """Store ``text_`` as a memory of ``principal`` (idempotent; near-duplicates merge).

        Raises:
            MemoryError: empty or oversized text, unknown source, bad TTL.
            EmbeddingError, VectorIndexError: the embedder or index failed (nothing stored).
        """
        body = normalise(text_) if isinstance(text_, str) else ""
        if not body:
            raise MemoryError("a memory needs non-empty text")
        if len(body) > self.config.max_chars:
            raise MemoryError(
                f"a memory is at most {self.config.max_chars} characters (got {len(body)})",
                hint="store a short fact; long texts belong in documents",
            )
        if source not in SOURCES:
            raise MemoryError(f"unknown memory source {source!r}; use one of {SOURCES}")
        if ttl_days is not None and ttl_days <= 0:
            raise MemoryError(f"ttl_days must be positive (got {ttl_days})")
        purpose = purpose or self.config.default_purpose
        tenant, user = principal.tenant, principal.user
        key = content_key(tenant, user, assistant_id, thread_id, body)
        now = utcnow()
        days = ttl_days if ttl_days is not None else self.config.ttl_days
        expires = None if days is None else now + timedelta(days=days)

        async with self.db.session() as session:
            existing = (
                await session.execute(
                    select(Memory).where(
                        Memory.tenant == tenant, Memory.user == user, Memory.content_key == key
                    )
                )
            ).scalar_one_or_none()
        if existing is not None:
            return WriteResult(
                existing.memory_id, "unchanged", existing.status, existing.sensitivity
            )

        scan = scan_text(body, self.config.scan_options)
        sensitivity = scan.sensitivity.value
        findings: dict[str, int] = {}
        for finding in scan.findings:
            findings[finding.type.value] = findings.get(finding.type.value, 0) + 1
        basis: LegalBasis | None = None
        if scan.sensitivity in self.config.hold_sensitivities:
            basis = await self._covering_basis(tenant, user, sensitivity, purpose)
            if basis is None:
                return await self._insert(
                    Memory(
                        memory_id=new_memory_id(),
                        tenant=tenant,
                        user=user,
                        assistant_id=assistant_id,
                        thread_id=thread_id,
                        content_key=key,
                        text=body,
                        source=source,
                        purpose=purpose,
                        sensitivity=sensitivity,
                        findings=findings,
                        status=AWAITING_BASIS,
                        expires_at=expires,
                        created_at=now,
                        updated_at=now,
                    ),
                    vector=None,
                    outcome="held",
                )

        vector = await self.embedder.aembed_query(body)
        scope = Scope(tenant, user)
        same_scope = await self._visible_ids(
            tenant, user, assistant_id, thread_id, now, exact_scope=True
        )
        if same_scope:
            hits = await asyncio.to_thread(self.index.query, scope, vector, 1, ids=same_scope)
            if hits and hits[0].score >= self.config.merge_threshold:
                merged = await self._merge(
                    hits[0].id, body, key, vector, expires, sensitivity, findings, basis, now
                )
                if merged is not None:
                    return WriteResult(
                        merged.memory_id, "merged", merged.status, sensitivity, hits[0].score
                    )
        row = Memory(
            memory_id=new_memory_id(),
            tenant=tenant,
            user=user,
            assistant_id=assistant_id,
            thread_id=thread_id,
            content_key=key,
            text=body,
            source=source,
            purpose=purpose,
            legal_basis=basis.basis if basis else None,
            basis_id=basis.id if basis else None,
            sensitivity=sensitivity,
            findings=findings,
            status=ACTIVE,
            embedding_model=self.embedder.model_id,
            expires_at=expires,
            created_at=now,
            updated_at=now,
        )
        return await self._insert(row, vector=vector, outcome="created")

    def remember_later(self, principal: Principal, text_: str, **kwargs: Any) -> asyncio.Task[Any]:
        """``remember`` in a background task that never raises into the caller (failures
        are logged): the answer is never slowed by memory writes. ``drain`` awaits them."""

        async def write() -> WriteResult | None:
            try:
                return await self.remember(principal, text_, **kwargs)
            except Exception as exc:  # a lost memory must not fail the run
                log.warning("memory_write_failed", error=type(exc).__name__, detail=str(exc))
                return None

        task = asyncio.get_running_loop().create_task(write())
        self._pending.tasks.add(task)
        task.add_done_callback(self._pending.tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait for background writes started by ``remember_later``."""
        while self._pending.tasks:
            await asyncio.gather(*list(self._pending.tasks), return_exceptions=True)

    async def _insert(self, row: Memory, *, vector: Any, outcome: Outcome) -> WriteResult:
        try:
            async with self.db.transaction() as session:
                session.add(row)
        except IntegrityError:
            # A concurrent or retried write with the same key won: report it.
            async with self.db.session() as session:
                winner = (
                    await session.execute(
                        select(Memory).where(
                            Memory.tenant == row.tenant,
                            Memory.user == row.user,
                            Memory.content_key == row.content_key,
                        )
                    )
                ).scalar_one()
            return WriteResult(winner.memory_id, "unchanged", winner.status, winner.sensitivity)
        if vector is not None:
            try:
                await asyncio.to_thread(
                    self.index.add, Scope(row.tenant, row.user), [row.memory_id], [vector]
                )
            except BaseException:
                async with self.db.transaction() as session:
                    await session.execute(delete(Memory).where(Memory.memory_id == row.memory_id))
                raise
        return WriteResult(row.memory_id, outcome, row.status, row.sensitivity)

    async def _merge(
        self,
        memory_id: str,
        body: str,
        key: str,
        vector: Any,
        expires: datetime | None,
        sensitivity: str,
        findings: dict[str, int],
        basis: LegalBasis | None,
        now: datetime,
    ) -> Memory | None:
        async with self.db.transaction() as session:
            row = (
                await session.execute(select(Memory).where(Memory.memory_id == memory_id))
            ).scalar_one_or_none()
            if row is None:
                return None
            row.text = body
            row.content_key = key
            row.updated_at = now
            row.expires_at = expires
            if Sensitivity(sensitivity).rank >= Sensitivity(row.sensitivity).rank:
                row.sensitivity = sensitivity
            row.findings = findings
            if basis is not None:
                row.legal_basis, row.basis_id = basis.basis, basis.id
        await asyncio.to_thread(self.index.add, Scope(row.tenant, row.user), [memory_id], [vector])
        return row

    async def _covering_basis(
        self, tenant: str, user: str, sensitivity: str, purpose: str
    ) -> LegalBasis | None:
        async with self.db.session() as session:
            return await covering_basis(session, tenant, user, sensitivity, purpose)

    # --- reading -------------------------------------------------------------------

    def _visible(
        self,
        tenant: str,
        user: str,
        assistant_id: str | None,
        thread_id: str | None,
        now: datetime,
        *,
        exact_scope: bool = False,
    ) -> ColumnElement[bool]:
        """Active, unexpired memories of (tenant, user) that apply to this assistant and
        thread: unscoped ones everywhere, scoped ones only in their assistant/thread.
        ``exact_scope``: only those with exactly this assistant and thread (merging)."""
        conditions = [
            Memory.tenant == tenant,
            Memory.user == user,
            Memory.status == ACTIVE,
            or_(Memory.expires_at.is_(None), Memory.expires_at > now),
        ]
        for col, value in ((Memory.assistant_id, assistant_id), (Memory.thread_id, thread_id)):
            if exact_scope:
                conditions.append(col.is_(None) if value is None else col == value)
            elif value is None:
                conditions.append(col.is_(None))
            else:
                conditions.append(or_(col.is_(None), col == value))
        return and_(*conditions)

    async def _visible_ids(
        self,
        tenant: str,
        user: str,
        assistant_id: str | None,
        thread_id: str | None,
        now: datetime,
        *,
        exact_scope: bool = False,
    ) -> set[str]:
        condition = self._visible(
            tenant, user, assistant_id, thread_id, now, exact_scope=exact_scope
        )
        async with self.db.session() as session:
            return set((await session.execute(select(Memory.memory_id).where(condition))).scalars())

    async def recall(
        self,
        principal: Principal,
        query: str,
        *,
        k: int = 5,
        assistant_id: str | None = None,
        thread_id: str | None = None,
    ) -> list[RecalledMemory]:
        """The ``k`` memories of ``principal`` most relevant to ``query``, best first.

        Only active, unexpired memories of the principal's own (tenant, user) that apply
        to ``assistant_id``/``thread_id`` are searched; every hit is ``untrusted``.

        Raises:
            MemoryError: ``k`` below 1.
        """
        if k < 1:
            raise MemoryError(f"k must be at least 1 (got {k})")
        query = normalise(query or "")
        if not query:
            return []
        now = utcnow()
        allowed = await self._visible_ids(
            principal.tenant, principal.user, assistant_id, thread_id, now
        )
        if not allowed:
            return []
        vector = await self.embedder.aembed_query(query)
        hits = await asyncio.to_thread(
            self.index.query,
            Scope(principal.tenant, principal.user),
            vector,
            self.config.candidates,
            ids=allowed,
        )
        similarity = {hit.id: hit.score for hit in hits if hit.score >= self.config.min_similarity}
        vector_list = [hit.id for hit in hits if hit.id in similarity]
        fulltext_list = await self._fulltext(principal, query, assistant_id, thread_id, now)
        fused: dict[str, float] = {}
        for ranked in (vector_list, fulltext_list):
            for rank, memory_id in enumerate(ranked, start=1):
                fused[memory_id] = fused.get(memory_id, 0.0) + 1.0 / (self.config.rrf_k + rank)
        best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
        if not best:
            return []
        async with self.db.session() as session:
            rows = {
                row.memory_id: row
                for row in (
                    await session.execute(
                        select(Memory).where(Memory.memory_id.in_([mid for mid, _ in best]))
                    )
                ).scalars()
            }
        fulltext_rank = {memory_id: rank for rank, memory_id in enumerate(fulltext_list, 1)}
        return [
            RecalledMemory(
                memory_id=memory_id,
                text=rows[memory_id].text,
                score=score,
                similarity=similarity.get(memory_id),
                fulltext_rank=fulltext_rank.get(memory_id),
                created_at=rows[memory_id].created_at,
            )
            for memory_id, score in best
            if memory_id in rows
        ]

    async def _fulltext(
        self,
        principal: Principal,
        query: str,
        assistant_id: str | None,
        thread_id: str | None,
        now: datetime,
    ) -> list[str]:
        terms = query_terms(query)
        if not terms:
            return []
        statement = (
            select(Memory.memory_id)
            .where(self._visible(principal.tenant, principal.user, assistant_id, thread_id, now))
            .limit(self.config.candidates)
        )
        if self.db.is_sqlite:
            match = " OR ".join(f'"{term}"' for term in terms)
            statement = (
                statement.join(_FTS, _FTS.c.rowid == Memory.id)
                .where(text("memories_fts MATCH :match"))
                .order_by(text("bm25(memories_fts)"), Memory.id)
                .params(match=match)
            )
        else:
            statement = (
                statement.where(text("memories.text_tsv @@ to_tsquery('simple', :match)"))
                .order_by(
                    text("ts_rank_cd(memories.text_tsv, to_tsquery('simple', :match)) DESC"),
                    Memory.id,
                )
                .params(match=" | ".join(terms))
            )
        async with self.db.session() as session:
            return list((await session.execute(statement)).scalars())

    async def list_memories(
        self,
        *,
        tenant: str,
        user: str,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MemoryView]:
        """Memories of (tenant, user), newest first, held ones included unless filtered."""
        statement = (
            select(Memory)
            .where(Memory.tenant == tenant, Memory.user == user)
            .order_by(Memory.created_at.desc(), Memory.id.desc())
            .offset(offset)
            .limit(limit)
        )
        if status is not None:
            statement = statement.where(Memory.status == status)
        async with self.db.session() as session:
            return [MemoryView.of(row) for row in (await session.execute(statement)).scalars()]

    # --- deleting ------------------------------------------------------------------

    async def forget(self, principal: Principal, memory_id: str) -> MemoryView:
        """Delete one of the principal's own memories (row, full-text entry and vector).

        Raises:
            MemoryNotFoundError: no such memory of this principal.
        """
        async with self.db.transaction() as session:
            row = (
                await session.execute(
                    select(Memory).where(
                        Memory.memory_id == memory_id,
                        Memory.tenant == principal.tenant,
                        Memory.user == principal.user,
                    )
                )
            ).scalar_one_or_none()
            if row is None:
                raise MemoryNotFoundError(f"there is no memory {memory_id!r} of yours")
            view = MemoryView.of(row)
            await session.delete(row)
        await self._delete_vectors({(view.tenant, view.user): [memory_id]})
        return view

    async def delete_where(self, condition: ColumnElement[bool]) -> int:
        """Delete every memory matching ``condition`` with its vectors; returns how many."""
        async with self.db.transaction() as session:
            doomed = (
                await session.execute(
                    select(Memory.tenant, Memory.user, Memory.memory_id).where(condition)
                )
            ).all()
            if doomed:
                await session.execute(delete(Memory).where(condition))
        by_scope: dict[tuple[str, str], list[str]] = {}
        for tenant, user, memory_id in doomed:
            by_scope.setdefault((tenant, user), []).append(memory_id)
        await self._delete_vectors(by_scope)
        return len(doomed)

    async def delete_user(self, tenant: str, user: str) -> int:
        """Erase every memory of (tenant, user) and drop their vector partition."""
        count = await self.delete_where(and_(Memory.tenant == tenant, Memory.user == user))
        await asyncio.to_thread(self.index.delete_scope, Scope(tenant, user))
        return count

    async def sweep_expired(self, now: datetime | None = None) -> int:
        """Delete memories past their expiry (retention); returns how many."""
        moment = now or utcnow()
        return await self.delete_where(
            and_(Memory.expires_at.is_not(None), Memory.expires_at <= moment)
        )

    async def _delete_vectors(self, by_scope: Mapping[tuple[str, str], Sequence[str]]) -> None:
        for (tenant, user), ids in by_scope.items():
            if ids:
                await asyncio.to_thread(self.index.delete, Scope(tenant, user), list(ids))

    # --- legal bases ----------------------------------------------------------------

    async def release_held(self, basis: LegalBasis) -> int:
        """Activate the held memories ``basis`` covers: embed and index them, record the
        basis on each. Returns how many were released."""
        async with self.db.session() as session:
            held = (
                (
                    await session.execute(
                        select(Memory).where(
                            Memory.tenant == basis.tenant,
                            Memory.user == basis.subject,
                            Memory.status == AWAITING_BASIS,
                        )
                    )
                )
                .scalars()
                .all()
            )
        chosen = [row for row in held if covers(basis, row.sensitivity, row.purpose)]
        if not chosen:
            return 0
        vectors = await self.embedder.aembed([row.text for row in chosen])
        await asyncio.to_thread(
            self.index.add,
            Scope(basis.tenant, basis.subject),
            [row.memory_id for row in chosen],
            vectors,
        )
        async with self.db.transaction() as session:
            for row in chosen:
                fresh = await session.get(Memory, row.id)
                if fresh is None:
                    continue
                fresh.status = ACTIVE
                fresh.legal_basis = basis.basis
                fresh.basis_id = basis.id
                fresh.embedding_model = self.embedder.model_id
                fresh.updated_at = utcnow()
        return len(chosen)

    async def delete_for_basis(self, basis_id: str) -> int:
        """Delete the memories held under ``basis_id`` (its withdrawal)."""
        return await self.delete_where(Memory.basis_id == basis_id)

    async def reject_held(self, tenant: str, user: str) -> int:
        """Delete (tenant, user)'s memories still awaiting a legal basis (refused)."""
        return await self.delete_where(
            and_(Memory.tenant == tenant, Memory.user == user, Memory.status == AWAITING_BASIS)
        )
