"""Data-subject rights and legal bases: export, erasure, consent, and one's own memories.

- ``GET /export`` — the caller's own data (GDPR Art. 15/20); an admin (``tenant:read``) may
  name another user of their tenant with ``?user=``.
- ``POST /admin/erase`` — erase a user of the admin's tenant everywhere and verify (Art. 17);
  needs ``data:erase``. The report names files and identifier kinds, never values.
- ``GET/POST /consent``, ``POST /consent/{basis_id}/withdraw``, ``POST /consent/reject`` —
  legal bases of the caller (consent by the data subject); an admin may record another basis
  for a user of their tenant, with a note saying why. Recording a basis releases the held
  memories (indexed at once) and documents (queued for the ingestion worker; follow them
  with ``GET /files/{id}``) it covers; withdrawal and rejection delete them.
- ``GET /memories``, ``DELETE /memories/{memory_id}`` — the caller's own memories.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ConfigDict, Field

from api.deps import CurrentPrincipal, ServicesDep, require_scope
from api.errors import ApiError
from api.schemas import RequestBody as _Body
from identity import Principal
from memory.consent import (
    CATEGORIES,
    DEFAULT_CATEGORIES,
    ConsentCategory,
    LegalBasisError,
    LegalBasisName,
    LegalBasisNotFoundError,
)
from memory.memories import MemoryNotFoundError
from memory.types import MemoryStoreError, VectorIndexLockedError
from runtime.export import export_user
from runtime.memory_services import MemoryServices

router = APIRouter(tags=["privacy"])

UserId = Annotated[str, Field(min_length=1, max_length=256)]


class EraseRequest(_Body):
    user: UserId
    identifiers: list[Annotated[str, Field(min_length=4, max_length=512)]] = Field(
        default_factory=list, json_schema_extra={"maxItems": 100}
    )
    """More identifiers (an e-mail, a name) whose absence the verification checks."""


def _default_categories() -> list[ConsentCategory]:
    return list(DEFAULT_CATEGORIES)


class ConsentCreate(_Body):
    """A legal basis. A note (the evidence, or why the basis applies) is required unless the
    caller consents for themselves: the schema says so, and the handler checks the same rule."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["note"],
                    "properties": {"note": {"type": "string", "pattern": r"\S"}},
                },
                {"properties": {"basis": {"const": "consent"}, "user": {"type": "null"}}},
            ]
        }
    )

    basis: LegalBasisName = "consent"
    purpose: str = Field(default="*", min_length=1, max_length=256)
    categories: list[ConsentCategory] = Field(
        default_factory=_default_categories, min_length=1, max_length=len(CATEGORIES)
    )
    note: str | None = Field(default=None, max_length=4000)
    user: UserId | None = None
    """Whose basis (admins only; default: the caller, who then consents themselves)."""


async def _services(svc: ServicesDep) -> MemoryServices:
    lazy = svc.system.memory
    if lazy is None:
        raise ApiError(503, "unavailable", "long-term memory is not configured on this server")
    try:
        return await lazy.get()
    except VectorIndexLockedError as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
    except MemoryStoreError as exc:
        raise ApiError(503, "unavailable", str(exc)) from None


def _subject(principal: Principal, user: str | None, scope: str) -> str:
    if user is None or user == principal.user:
        return principal.user
    require_scope(principal, scope)
    return user


@router.get("/export")
async def export_data(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    user: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> dict[str, Any]:
    """Everything held about the caller (or, for an admin, ``user`` of their tenant)."""
    subject = _subject(principal, user, "tenant:read")
    return await export_user(
        db=svc.system.db,
        checkpointer=svc.system.checkpointer,
        tenant=principal.tenant,
        user=subject,
    )


@router.post("/admin/erase")
async def erase_user(
    body: EraseRequest, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """Erase ``user`` of the admin's tenant everywhere, compact the stores and verify that no
    file keeps a readable identifier. ``ok`` false: the report says which file still does."""
    require_scope(principal, "data:erase")
    services = await _services(svc)
    report = await services.eraser().erase(
        tenant=principal.tenant, user=body.user, identifiers=body.identifiers
    )
    return report.to_dict()


@router.get("/consent")
async def list_consent(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    user: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> dict[str, Any]:
    """Legal bases (withdrawn too) and what is held awaiting one (``held``: memories,
    ``held_documents``: documents)."""
    subject = _subject(principal, user, "tenant:read")
    services = await _services(svc)
    bases = await services.consent.list_bases(tenant=principal.tenant, subject=subject)
    held = await services.consent.list_held(tenant=principal.tenant, subject=subject)
    return {"bases": [basis.to_dict() for basis in bases], **held.to_dict()}


@router.post("/consent", status_code=201)
async def grant_consent(
    body: ConsentCreate, principal: CurrentPrincipal, svc: ServicesDep, request: Request
) -> dict[str, Any]:
    """Record a legal basis and release the held data it covers (``released``: memories,
    ``released_documents``: documents queued for indexing, ``document_jobs``: their jobs)."""
    subject = _subject(principal, body.user, "data:erase")
    if body.user is not None and not (body.note or "").strip():
        raise ApiError(
            422,
            "legal_basis_invalid",
            "a basis recorded for a named user needs a note naming the evidence, "
            "e.g. 'signed form 2026-11-25, ref 1234'",
        )
    services = await _services(svc)
    try:
        result = await services.consent.grant(
            tenant=principal.tenant,
            subject=subject,
            basis=body.basis,
            purpose=body.purpose,
            categories=tuple(body.categories),
            recorded_by=principal.user,
            note=body.note,
        )
    except LegalBasisError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    if result.document_jobs:
        await _wake_ingestion(request)
    return result.to_dict()


async def _wake_ingestion(request: Request) -> None:
    """Start (or wake) this process's document ingestion worker for released documents;
    without one (no in-process workers) the jobs wait for a process that runs them."""
    holder = getattr(request.app.state, "documents", None)
    if holder is not None and holder.run_worker:
        (await holder.get()).ingestor.wake()


@router.post("/consent/{basis_id}/withdraw")
async def withdraw_consent(
    basis_id: str,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    user: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> dict[str, Any]:
    """Withdraw a legal basis: what was held under it is deleted."""
    subject = _subject(principal, user, "data:erase")
    services = await _services(svc)
    try:
        result = await services.consent.withdraw(
            tenant=principal.tenant, subject=subject, basis_id=basis_id, by=principal.user
        )
    except LegalBasisNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return result.to_dict()


@router.post("/consent/reject")
async def reject_held(principal: CurrentPrincipal, svc: ServicesDep) -> dict[str, int]:
    """Refuse a legal basis for the caller's held data: it is deleted (``deleted``:
    memories, ``deleted_documents``: documents)."""
    services = await _services(svc)
    result = await services.consent.reject_held(tenant=principal.tenant, subject=principal.user)
    return result.to_dict()


@router.get("/memories")
async def list_memories(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    """The caller's memories, newest first (held ones included)."""
    services = await _services(svc)
    rows = await services.memories.list_memories(
        tenant=principal.tenant, user=principal.user, limit=limit, offset=offset
    )
    return [row.to_dict() for row in rows]


@router.delete("/memories/{memory_id}", status_code=204)
async def forget_memory(memory_id: str, principal: CurrentPrincipal, svc: ServicesDep) -> Response:
    """Delete one of the caller's memories (row, full-text entry and vector)."""
    services = await _services(svc)
    try:
        await services.memories.forget(principal, memory_id)
    except MemoryNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return Response(status_code=204)
