"""Erasure of one data subject (GDPR Art. 17), across every store, verified afterwards.

Order of work:

1. **Collect identifiers.** The subject's export (``runtime.export``) is scanned with
   ``privacy.scan_text``; every e-mail, phone, national id, IBAN, card and person name found,
   plus the user id and any identifiers the operator adds, is what must be gone afterwards.
2. **Delete.** Threads with their runs, events and checkpoints (through the runner's
   ``delete_thread``); memories with their vector partition; legal bases; documents with
   chunks, grants, jobs (payload bytes) and chunk vectors; notes, tickets, outbox e-mails,
   feedback, tool-call ledger rows, approvals, API keys, provider cache entries, store items
   under namespaces naming the user; audit payloads (arguments, results, salts) are erased,
   leaving the hash chain verifiable; model usage rows keep their cost but lose the user.
3. **Compact.** SQLite deletes run with ``secure_delete`` (pages zeroed) and the FTS5 indexes
   with ``secure-delete``; then ``VACUUM`` and a truncating WAL checkpoint on the relational
   store and the checkpoint database, so no free page or WAL frame keeps old bytes. The
   tenant's shared store partition, which lost vectors by id, is rebuilt into a fresh
   collection (hnswlib only marks deleted vectors); then ``VectorStore.purge_residue``
   removes dropped collections' segment files, zeroes the HNSW capacity that hnswlib wrote
   from uninitialised memory (it can hold stray bytes of any text the process handled) and
   compacts Chroma's SQLite file. PostgreSQL keeps deleted and updated rows' old versions
   in its table, TOAST and index files until they are rewritten, and a plain ``VACUUM``
   only marks that space free (it does not zero it): the tables the erasure touched, and
   the checkpointer's, are rewritten with ``VACUUM (FULL, ANALYZE)`` on an autocommit
   connection. It takes each table's ACCESS EXCLUSIVE lock for the rewrite; a table whose
   lock is not granted within the busy timeout is skipped, logged and reported in
   ``not_compacted`` for the operator to rewrite later (SECURITY.md: WAL, replicas and
   backups keep the bytes until their retention ends; that is the operator's to set).
4. **Verify.** Every file under the data directory (SQLite files, WAL files, the Chroma
   directory, the files directory) is read as raw bytes and searched for each identifier
   (UTF-8, and UTF-16 for good measure). The report names files and identifier *kinds*
   (``email#1``), never the values, so the report itself leaks nothing.

The audit chain's ``actor`` column keeps the user id: the chain is tamper evidence whose
hashes cover it (Art. 17(3)(b)/(e)); the verification counts those hits apart, as
``retained``, when the user has audit entries.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from memory.memories import Memories
from memory.types import Scope
from memory.vectors import VectorStore
from privacy import EntityType, scan_text
from runtime.export import export_user, user_store_namespaces
from store import Database, sqlite_inline
from store.models import (
    ApiKey,
    Approval,
    AuditEntry,
    AuditPayload,
    Base,
    Document,
    DocumentGrant,
    Feedback,
    LegalBasis,
    Note,
    OutboxEmail,
    ProviderCacheEntry,
    ProviderUsage,
    Run,
    StoreItem,
    StoreItemVector,
    Ticket,
    ToolCall,
)

log = structlog.get_logger(__name__)

ERASED = "erased"
_IDENTIFYING = (
    EntityType.EMAIL,
    EntityType.PHONE,
    EntityType.NATIONAL_ID,
    EntityType.IBAN,
    EntityType.PAYMENT_CARD,
    EntityType.PERSON,
    EntityType.IP_ADDRESS,
)
_MIN_IDENTIFIER = 4
_CHUNK = 4 * 1024 * 1024


_KEPT_TABLES = frozenset({"audit_entries", "assistants", "provider_credentials"})
"""Store tables an erasure never changes (the audit chain keeps its rows by design)."""


def erased_tables() -> list[str]:
    """The store's tables an erasure may delete or rewrite rows of."""
    return [table for table in Base.metadata.tables if table not in _KEPT_TABLES]


@dataclass
class Identifier:
    label: str
    value: str


@dataclass
class Verification:
    """Where identifiers were still found after erasure (``hits``: file → labels)."""

    files_searched: int = 0
    bytes_searched: int = 0
    identifiers: list[str] = field(default_factory=list)
    hits: dict[str, list[str]] = field(default_factory=dict)
    retained: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.hits

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files_searched": self.files_searched,
            "bytes_searched": self.bytes_searched,
            "identifiers": self.identifiers,
            "hits": self.hits,
            "retained": self.retained,
        }


@dataclass
class ErasureReport:
    tenant: str
    user: str
    deleted: dict[str, int] = field(default_factory=dict)
    compacted: list[str] = field(default_factory=list)
    not_compacted: list[str] = field(default_factory=list)
    verification: Verification | None = None

    @property
    def ok(self) -> bool:
        return self.verification is None or self.verification.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "user": self.user,
            "ok": self.ok,
            "deleted": self.deleted,
            "compacted": self.compacted,
            "not_compacted": self.not_compacted,
            "verification": None if self.verification is None else self.verification.to_dict(),
        }


_NOT_CONTENT = ("id", "hash", "digest", "_at", "_ms", "status", "sensitivity", "model", "version")
_DECIMAL = re.compile(r"^\d+\.\d+$")


def _strings(value: Any, key: str = "") -> Iterable[str]:
    """The text values of an export, skipping ids, hashes, timestamps and enums (digits in
    them would read as phone numbers and match unrelated bytes)."""
    if isinstance(value, str):
        if not key.endswith(_NOT_CONTENT):
            yield value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, str(name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item, key)


def collect_identifiers(
    export: dict[str, Any], user: str, extra: Iterable[str] = ()
) -> list[Identifier]:
    """The identifiers of the subject found in their exported data, plus the user id and
    ``extra``: what must be unreadable everywhere after erasure."""
    values: dict[str, str] = {}
    counters: dict[str, int] = {}

    def add(kind: str, value: str) -> None:
        value = value.strip()
        if len(value) < _MIN_IDENTIFIER or value in values:
            return
        counters[kind] = counters.get(kind, 0) + 1
        values[value] = f"{kind}#{counters[kind]}"

    add("user_id", user)
    for item in extra:
        add("given", item)
    for text_ in _strings({k: v for k, v in export.items() if k not in ("subject", "format")}):
        if len(text_) < _MIN_IDENTIFIER:
            continue
        for finding in scan_text(text_).findings:
            if finding.type in _IDENTIFYING and not _DECIMAL.match(finding.text):
                add(finding.type.value, finding.text)
    return [Identifier(label, value) for value, label in values.items()]


def _needles(value: str) -> list[bytes]:
    forms = {value, json.dumps(value)[1:-1]}
    needles = []
    for form in forms:
        needles.append(form.encode("utf-8"))
        needles.append(form.encode("utf-16-le"))
    return [needle for needle in dict.fromkeys(needles) if needle]


def _file_hits(path: Path, identifiers: list[Identifier]) -> tuple[int, list[str]]:
    """(bytes read, labels found) for one file, read in overlapping chunks."""
    patterns = [(ident.label, _needles(ident.value)) for ident in identifiers]
    longest = max((len(n) for _, needles in patterns for n in needles), default=1)
    found: set[str] = set()
    size = 0
    tail = b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                size += len(chunk)
                window = tail + chunk
                lowered = window.lower()
                for label, needles in patterns:
                    if label not in found and any(
                        needle in window or needle.lower() in lowered for needle in needles
                    ):
                        found.add(label)
                tail = window[-longest:]
    except OSError:
        return 0, []
    return size, sorted(found)


def verify_erased(roots: Iterable[Path], identifiers: list[Identifier]) -> Verification:
    """Search every file under ``roots`` (raw bytes, case-insensitive) for ``identifiers``."""
    result = Verification(identifiers=[ident.label for ident in identifiers])
    seen: set[Path] = set()
    for root in roots:
        if not root.exists():
            continue
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            size, labels = _file_hits(path, identifiers)
            result.files_searched += 1
            result.bytes_searched += size
            if labels:
                result.hits[str(path)] = labels
    return result


def compact_sqlite(path: Path, *, busy_timeout_ms: int = 30_000) -> bool:
    """``VACUUM`` a SQLite file and truncate its WAL, so deleted rows leave no bytes behind.

    Returns False when ``path`` does not exist.
    """
    if not path.exists():
        return False
    connection = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        connection.execute("PRAGMA secure_delete=ON")
        # An external-content FTS5 index keeps deleted rows' tokens in its segments until
        # they merge (SQLite < 3.42 has no secure-delete option): rebuild from the content.
        fts_tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND sql LIKE 'CREATE VIRTUAL TABLE%USING fts5(%content=%'"
            )
        ]
        for name in fts_tables:
            quoted = '"' + name.replace('"', '""') + '"'
            connection.execute(f"INSERT INTO {quoted}({quoted}) VALUES ('rebuild')")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return True


async def vacuum_postgres(db: Database, tables: Iterable[str]) -> tuple[list[str], list[str]]:
    """``VACUUM (FULL, ANALYZE)`` each of ``tables`` that exists, so that no file of the
    store keeps old row versions; VACUUM cannot run in a transaction block, hence an
    autocommit connection. The store's ``lock_timeout`` bounds the wait for each table.

    Returns (tables rewritten, tables skipped because their lock was not granted).
    """
    done: list[str] = []
    skipped: list[str] = []
    quote = db.engine.dialect.identifier_preparer.quote
    async with db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            exists = (
                await autocommit.execute(text("SELECT to_regclass(:name)"), {"name": table})
            ).scalar_one()
            if exists is None:
                continue
            try:
                await autocommit.execute(text(f"VACUUM (FULL, ANALYZE) {quote(table)}"))
            except DBAPIError as exc:
                log.warning("vacuum_skipped", table=table, error=str(exc.orig or exc))
                skipped.append(table)
            else:
                done.append(table)
    return done, skipped


class Eraser:
    """Erases one (tenant, user) from every store it is given.

    ``delete_thread`` is the runner's (rows and checkpoints); ``vectors`` the open vector
    store (memories and chunk partitions); ``data_dir`` (and ``extra_roots``, e.g. a files
    directory elsewhere) is what verification searches.
    """

    def __init__(
        self,
        *,
        db: Database,
        memories: Memories,
        vectors: VectorStore,
        delete_thread: Callable[[str], Awaitable[None]],
        checkpointer: BaseCheckpointSaver | None,
        checkpoint_path: Path | None,
        data_dir: Path,
        extra_roots: Iterable[Path] = (),
        busy_timeout_ms: int = 30_000,
    ) -> None:
        self.db = db
        self.memories = memories
        self.vectors = vectors
        self.delete_thread = delete_thread
        self.checkpointer = checkpointer
        self.checkpoint_path = checkpoint_path
        self.data_dir = data_dir
        self.extra_roots = list(extra_roots)
        self.busy_timeout_ms = busy_timeout_ms

    @sqlite_inline.offloading  # bulk deletes: keep them off the event loop
    async def erase(
        self, *, tenant: str, user: str, identifiers: Iterable[str] = (), verify: bool = True
    ) -> ErasureReport:
        """Erase (tenant, user) everywhere, compact, then (``verify``) search every file."""
        export = await export_user(
            db=self.db, checkpointer=self.checkpointer, tenant=tenant, user=user
        )
        found = collect_identifiers(export, user, identifiers)
        report = ErasureReport(tenant, user)
        deleted = report.deleted
        thread_ids = [thread["thread_id"] for thread in export["threads"]]
        for thread_id in thread_ids:
            await self.delete_thread(thread_id)
        deleted["threads"] = len(thread_ids)
        deleted["memories"] = await self.memories.delete_user(tenant, user)
        await self._revoke_keys(tenant, user)
        await self._erase_rows(tenant, user, deleted)
        chunks = self.vectors.index("chunks")
        await asyncio.to_thread(chunks.delete_scope, Scope(tenant, user))
        deleted["audit_payloads"] = await self._erase_audit(tenant, user)
        report.compacted, report.not_compacted = await self._compact()
        residue = await asyncio.to_thread(self.vectors.purge_residue)
        if residue["bytes_zeroed"] or residue["segments_removed"]:
            report.compacted.append(self.vectors.location)
        if verify:
            roots = [self.data_dir, *self.extra_roots]
            report.verification = await asyncio.to_thread(verify_erased, roots, found)
            await self._classify_retained(tenant, user, found, report.verification)
        log.info("user_erased", tenant=tenant, ok=report.ok, deleted=deleted)
        return report

    async def _revoke_keys(self, tenant: str, user: str) -> None:
        """Revoke the user's API keys before their rows go, so that caches of verified
        keys in this process (``identity.auth``) drop them at once."""
        from identity.apikeys import ApiKeyError, revoke_api_key

        async with self.db.session() as session:
            key_ids = list(
                (
                    await session.execute(
                        select(ApiKey.key_id).where(ApiKey.tenant == tenant, ApiKey.user == user)
                    )
                ).scalars()
            )
        for key_id in key_ids:
            try:
                await revoke_api_key(db=self.db, key_id=key_id, tenant=tenant)
            except ApiKeyError:  # deleted meanwhile
                pass

    async def _erase_rows(self, tenant: str, user: str, deleted: dict[str, int]) -> None:
        async with self.db.transaction() as session:

            async def run(name: str, statement: Any) -> None:
                result = await session.execute(statement)
                deleted[name] = deleted.get(name, 0) + int(result.rowcount or 0)  # type: ignore[attr-defined]

            await run("runs", delete(Run).where(Run.tenant == tenant, Run.requester == user))
            await run(
                "legal_bases",
                delete(LegalBasis).where(LegalBasis.tenant == tenant, LegalBasis.subject == user),
            )
            await run(
                "documents",
                delete(Document).where(Document.tenant == tenant, Document.owner == user),
            )
            await run(
                "document_grants",
                delete(DocumentGrant).where(
                    DocumentGrant.tenant == tenant,
                    DocumentGrant.kind == "user",
                    DocumentGrant.grantee == user,
                ),
            )
            await run("notes", delete(Note).where(Note.tenant == tenant, Note.owner == user))
            await run(
                "tickets", delete(Ticket).where(Ticket.tenant == tenant, Ticket.owner == user)
            )
            await run(
                "outbox",
                delete(OutboxEmail).where(OutboxEmail.tenant == tenant, OutboxEmail.sender == user),
            )
            await run(
                "feedback",
                delete(Feedback).where(Feedback.tenant == tenant, Feedback.author == user),
            )
            await run(
                "tool_calls",
                delete(ToolCall).where(ToolCall.tenant == tenant, ToolCall.principal == user),
            )
            await run(
                "approvals",
                delete(Approval).where(Approval.tenant == tenant, Approval.requester == user),
            )
            await session.execute(
                update(Approval)
                .where(Approval.tenant == tenant, Approval.decided_by == user)
                .values(decided_by=ERASED)
            )
            await session.execute(
                update(Run)
                .where(Run.tenant == tenant, Run.submitted_by == user)
                .values(submitted_by=ERASED)
            )
            await run(
                "api_keys", delete(ApiKey).where(ApiKey.tenant == tenant, ApiKey.user == user)
            )
            await run(
                "cache_entries",
                delete(ProviderCacheEntry).where(
                    ProviderCacheEntry.tenant == tenant, ProviderCacheEntry.user == user
                ),
            )
            await session.execute(
                update(ProviderUsage)
                .where(ProviderUsage.tenant == tenant, ProviderUsage.user == user)
                .values(user=None)
            )
            namespaces = user_store_namespaces(user)
            doomed = (
                await session.execute(
                    select(StoreItem.namespace, StoreItem.key).where(
                        StoreItem.tenant == tenant, namespaces
                    )
                )
            ).all()
            await run(
                "store_items", delete(StoreItem).where(StoreItem.tenant == tenant, namespaces)
            )
            vector_ids: list[str] = []
            for namespace, key in doomed:
                vector_ids.extend(
                    (
                        await session.execute(
                            select(StoreItemVector.vector_id).where(
                                StoreItemVector.tenant == tenant,
                                StoreItemVector.namespace == namespace,
                                StoreItemVector.key == key,
                            )
                        )
                    ).scalars()
                )
            if vector_ids:
                await session.execute(
                    delete(StoreItemVector).where(StoreItemVector.vector_id.in_(vector_ids))
                )
        if vector_ids:
            index = self.vectors.index("store")
            await asyncio.to_thread(index.delete, Scope(tenant), vector_ids)
            await asyncio.to_thread(index.rebuild, Scope(tenant))

    async def _erase_audit(self, tenant: str, user: str) -> int:
        from tools.audit import AuditLog

        erased = await AuditLog(self.db).erase_payloads(tenant=tenant, actor=user)
        # Payloads of others' calls on this user's data (a reviewer's approval) are not
        # attributable here; their arguments were digested, and the subject's threads are gone.
        return erased

    async def _compact(self) -> tuple[list[str], list[str]]:
        """(what was compacted, what could not be: PostgreSQL tables left for later)."""
        compacted: list[str] = []
        skipped: list[str] = []
        if self.db.is_postgres:
            rewritten, skipped = await vacuum_postgres(self.db, erased_tables())
            compacted.extend(f"postgresql:{table}" for table in rewritten)
        if self.checkpointer is not None:
            from graphs.checkpointer import vacuum_checkpoints

            rewritten, left = await vacuum_checkpoints(
                self.checkpointer, busy_timeout_ms=self.busy_timeout_ms
            )
            compacted.extend(f"postgresql:{table}" for table in rewritten)
            skipped.extend(left)
        if self.db.is_sqlite:
            from store.database import sqlite_path

            path = sqlite_path(self.db.url)
            # Return pooled connections first: VACUUM needs no other open transaction.
            await self.db.engine.dispose()
            if path is not None and await asyncio.to_thread(
                compact_sqlite, path, busy_timeout_ms=self.busy_timeout_ms
            ):
                compacted.append(str(path))
        if self.checkpoint_path is not None:
            lock = getattr(self.checkpointer, "lock", None)
            if lock is not None:
                async with lock:
                    done = await asyncio.to_thread(
                        compact_sqlite, self.checkpoint_path, busy_timeout_ms=self.busy_timeout_ms
                    )
            else:
                done = await asyncio.to_thread(
                    compact_sqlite, self.checkpoint_path, busy_timeout_ms=self.busy_timeout_ms
                )
            if done:
                compacted.append(str(self.checkpoint_path))
        return compacted, [f"postgresql:{table}" for table in skipped]

    async def _classify_retained(
        self, tenant: str, user: str, identifiers: list[Identifier], verification: Verification
    ) -> None:
        """Move hits of the user id in the relational store to ``retained`` when the audit
        chain (which must keep its ``actor`` column) holds entries of that user and no
        other identifier was found there."""
        from store.database import sqlite_path

        path = sqlite_path(self.db.url)
        if path is None:
            return
        # The chain's newest rows may still sit in the write-ahead log beside the file.
        files = [name for name in (str(path), f"{path}-wal") if name in verification.hits]
        if not files:
            return
        async with self.db.session() as session:
            audited = (
                await session.execute(
                    select(func.count())
                    .select_from(AuditEntry)
                    .where(AuditEntry.actor == user)  # any tenant: the same id elsewhere
                )
            ).scalar_one()
        # A user id too short to search for (collect_identifiers skips those) has no label.
        user_label = next(
            (ident.label for ident in identifiers if ident.label.startswith("user_id")), None
        )
        if user_label is None:
            return
        for name in files:
            labels = verification.hits[name]
            if audited and user_label in labels:
                verification.retained[name] = [f"{user_label} (audit chain actor)"]
                rest = [label for label in labels if label != user_label]
                if rest:
                    verification.hits[name] = rest
                else:
                    del verification.hits[name]
        _ = AuditPayload  # payloads are erased above; only the chain's actor column remains
