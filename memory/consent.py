"""Legal bases for holding sensitive personal data, and what recording one changes.

Special-category (GDPR Art. 9) and, by default, financial data is held ``awaiting_basis``
when it enters memory. It is released only once a legal basis covering it is recorded for
that data subject and purpose:

- ``consent`` — given by the data subject themselves (``recorded_by`` is the subject), or
  recorded by an operator with a note naming the evidence (a signed form);
- another Art. 6 basis (``contract``, ``legal_obligation``, ``vital_interests``,
  ``public_task``, ``legitimate_interests``) — always with who recorded it, when, for which
  purpose, and a note saying why.

The same holds for uploaded documents: recording a basis queues the subject's held
documents it covers (purpose ``documents``) for indexing through the ingestion jobs, as any
upload is indexed; who runs the jobs is the caller's choice (the API's background worker,
or the CLI inline).

Withdrawing a basis deletes what it covered (memories and documents admitted under it, with
their chunks and vectors); rejecting held data deletes it. Withdrawn bases are kept as the
record that consent was withdrawn.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from sqlalchemy import select

from memory.memories import Memories, MemoryView, utcnow
from memory.types import MemoryStoreError
from store import Database
from store.models import LegalBasis

if TYPE_CHECKING:
    from memory.document_types import DocumentView
    from memory.ingest import DocumentIngestor

LegalBasisName = Literal[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
]
ConsentCategory = Literal["special", "financial", "personal"]
BASES: tuple[LegalBasisName, ...] = get_args(LegalBasisName)
CATEGORIES: tuple[ConsentCategory, ...] = get_args(ConsentCategory)
DEFAULT_CATEGORIES: tuple[ConsentCategory, ...] = ("special", "financial")
"""What a basis covers unless it names its categories (what is held by default)."""
ALL_PURPOSES = "*"


class LegalBasisError(MemoryStoreError):
    """A legal basis request breaks a rule (unknown basis, missing note...)."""

    code = "legal_basis_invalid"


class LegalBasisNotFoundError(MemoryStoreError):
    code = "legal_basis_not_found"


@dataclass(frozen=True)
class LegalBasisView:
    id: str
    tenant: str
    subject: str
    basis: str
    purpose: str
    categories: tuple[str, ...]
    recorded_by: str
    note: str | None
    recorded_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None

    @classmethod
    def of(cls, row: LegalBasis) -> LegalBasisView:
        return cls(
            id=row.id,
            tenant=row.tenant,
            subject=row.subject,
            basis=row.basis,
            purpose=row.purpose,
            categories=tuple(row.categories or ()),
            recorded_by=row.recorded_by,
            note=row.note,
            recorded_at=row.recorded_at,
            withdrawn_at=row.withdrawn_at,
            withdrawn_by=row.withdrawn_by,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "subject": self.subject,
            "basis": self.basis,
            "purpose": self.purpose,
            "categories": list(self.categories),
            "recorded_by": self.recorded_by,
            "note": self.note,
            "recorded_at": self.recorded_at.isoformat(),
            "withdrawn_at": self.withdrawn_at.isoformat() if self.withdrawn_at else None,
            "withdrawn_by": self.withdrawn_by,
        }


@dataclass(frozen=True)
class GrantResult:
    basis: LegalBasisView
    released: int
    """Memories released (embedded and indexed now)."""
    document_jobs: tuple[str, ...] = ()
    """Ingestion jobs queued for the held documents released (indexed in the background)."""

    @property
    def released_documents(self) -> int:
        return len(self.document_jobs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "basis": self.basis.to_dict(),
            "released": self.released,
            "released_documents": self.released_documents,
            "document_jobs": list(self.document_jobs),
        }


@dataclass(frozen=True)
class WithdrawResult:
    basis: LegalBasisView
    deleted: int
    """Memories deleted."""
    deleted_documents: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "basis": self.basis.to_dict(),
            "deleted": self.deleted,
            "deleted_documents": self.deleted_documents,
        }


@dataclass(frozen=True)
class RejectResult:
    deleted: int
    """Held memories deleted."""
    deleted_documents: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"deleted": self.deleted, "deleted_documents": self.deleted_documents}


@dataclass(frozen=True)
class HeldData:
    """What of one data subject awaits a legal basis."""

    memories: list[MemoryView]
    documents: list[DocumentView]

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "held": [
                {"memory_id": m.memory_id, "sensitivity": m.sensitivity, "purpose": m.purpose}
                for m in self.memories
            ],
            "held_documents": [
                {
                    "document_id": d.id,
                    "source": d.source,
                    "sensitivity": d.sensitivity,
                    "created_at": d.created_at.isoformat(),
                }
                for d in self.documents
            ],
        }


class ConsentService:
    """Records, withdraws and lists legal bases, releasing or deleting held memories and
    (given an ingestor) held documents."""

    def __init__(
        self, db: Database, memories: Memories, documents: DocumentIngestor | None = None
    ) -> None:
        self.db = db
        self.memories = memories
        self.documents = documents

    async def grant(
        self,
        *,
        tenant: str,
        subject: str,
        basis: str = "consent",
        purpose: str = ALL_PURPOSES,
        categories: tuple[str, ...] = DEFAULT_CATEGORIES,
        recorded_by: str,
        note: str | None = None,
    ) -> GrantResult:
        """Record a legal basis and release the held memories and documents it covers
        (documents are queued for indexing; ``GrantResult.document_jobs`` names the jobs).

        Raises:
            LegalBasisError: unknown basis or category, empty purpose, consent recorded by
                someone else without a note, another basis without a note.
        """
        if basis not in BASES:
            raise LegalBasisError(f"unknown legal basis {basis!r}; use one of {', '.join(BASES)}")
        cats = tuple(dict.fromkeys(categories))
        if not cats or any(cat not in CATEGORIES for cat in cats):
            raise LegalBasisError(
                f"categories must be a non-empty subset of {', '.join(CATEGORIES)} (got {cats})"
            )
        if not purpose or not purpose.strip() or len(purpose) > 256:
            raise LegalBasisError("purpose must be 1-256 characters ('*' for every purpose)")
        if not recorded_by:
            raise LegalBasisError("recorded_by must name who records the basis")
        note = note.strip() if note else None
        if basis == "consent" and recorded_by != subject and not note:
            raise LegalBasisError(
                "consent recorded by someone other than the data subject needs a note",
                hint="name the evidence, e.g. 'signed form 2026-11-25, ref 1234'",
            )
        if basis != "consent" and not note:
            raise LegalBasisError(
                f"a {basis} basis needs a note saying why it applies",
                hint="e.g. 'contract 2026-17: support case handling'",
            )
        row = LegalBasis(
            id="lb_" + secrets.token_hex(12),
            tenant=tenant,
            subject=subject,
            basis=basis,
            purpose=purpose.strip(),
            categories=list(cats),
            recorded_by=recorded_by,
            note=note,
            recorded_at=utcnow(),
        )
        async with self.db.transaction() as session:
            session.add(row)
        released = await self.memories.release_held(row)
        jobs = await self.documents.release_for_basis(row) if self.documents else []
        return GrantResult(LegalBasisView.of(row), released, tuple(jobs))

    async def withdraw(
        self, *, tenant: str, subject: str, basis_id: str, by: str
    ) -> WithdrawResult:
        """Withdraw a basis and delete the memories and documents admitted under it.

        Raises:
            LegalBasisNotFoundError: no such basis for this subject.
        """
        async with self.db.transaction() as session:
            row = (
                await session.execute(
                    select(LegalBasis).where(
                        LegalBasis.id == basis_id,
                        LegalBasis.tenant == tenant,
                        LegalBasis.subject == subject,
                    )
                )
            ).scalar_one_or_none()
            if row is None:
                raise LegalBasisNotFoundError(f"there is no legal basis {basis_id!r} for {subject}")
            if row.withdrawn_at is None:
                row.withdrawn_at = utcnow()
                row.withdrawn_by = by
        deleted = await self.memories.delete_for_basis(basis_id)
        documents = await self.documents.delete_for_basis(basis_id) if self.documents else 0
        return WithdrawResult(LegalBasisView.of(row), deleted, documents)

    async def reject_held(self, *, tenant: str, subject: str) -> RejectResult:
        """Refuse a basis for what is held: the held memories and documents are deleted."""
        deleted = await self.memories.reject_held(tenant, subject)
        documents = await self.documents.reject_held(tenant, subject) if self.documents else 0
        return RejectResult(deleted, documents)

    async def list_held(self, *, tenant: str, subject: str) -> HeldData:
        """The subject's memories and documents awaiting a legal basis."""
        memories = await self.memories.list_memories(
            tenant=tenant, user=subject, status="awaiting_basis"
        )
        documents = await self.documents.held_documents(tenant, subject) if self.documents else []
        return HeldData(memories, documents)

    async def list_bases(
        self, *, tenant: str, subject: str, include_withdrawn: bool = True
    ) -> list[LegalBasisView]:
        statement = (
            select(LegalBasis)
            .where(LegalBasis.tenant == tenant, LegalBasis.subject == subject)
            .order_by(LegalBasis.recorded_at.desc())
        )
        if not include_withdrawn:
            statement = statement.where(LegalBasis.withdrawn_at.is_(None))
        async with self.db.session() as session:
            return [LegalBasisView.of(row) for row in (await session.execute(statement)).scalars()]
