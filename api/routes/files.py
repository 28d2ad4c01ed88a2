"""Document uploads: ``/files``.

``POST /files`` (multipart: ``file``, optional ``source``, ``shared_with_users``,
``shared_with_roles`` as comma-separated lists) checks size and type at once and answers
202 with the document and job ids; ingestion runs in the background worker. ``GET
/files/{id}`` shows the document's status and its job's progress events, ``GET /files``
lists the caller's own documents, ``DELETE /files/{id}`` removes a document with its chunks
and vectors. Everything is scoped to the caller's tenant; only the owner (or an admin)
sees or deletes a document.

The router brings its own lifespan (merged into the app's by FastAPI): embedded Chroma and
the embedding model are opened on the first request that needs them, not at start-up,
and the ingestion worker starts then, or at start-up when jobs are waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, Response, UploadFile

from api.deps import CurrentPrincipal, require_scope
from api.errors import ApiError, ErrorBody
from api.schemas import MAX_OFFSET
from memory.document_types import DocumentError
from memory.documents import Documents, document_config
from memory.ingest import count_pending_jobs
from runtime.system import System

_MORE_RESPONSES: dict[int | str, dict[str, Any]] = {
    415: {"model": ErrorBody, "description": "not a supported type, or not what its name says"},
    503: {"model": ErrorBody, "description": "vector index or embedding model unavailable"},
}


class _DocumentsHolder:
    """Builds ``Documents`` once, on first use, over the process's one vector store and
    embedder (the system's memory services own them: embedded Chroma admits one owner)."""

    def __init__(self, system: System, run_worker: bool) -> None:
        self.system = system
        self.run_worker = run_worker
        self._documents: Documents | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Documents:
        if self._documents is not None:
            return self._documents
        async with self._lock:
            if self._documents is None:
                settings = self.system.settings
                shared = self.system.memory
                assert shared is not None, "open_system binds the memory services"
                try:
                    documents = Documents.build(
                        self.system.db,
                        await shared.vector_store(),
                        shared.embedder(),
                        config=document_config(
                            max_bytes=settings.document_max_bytes,
                            hold_financial=settings.document_hold_financial,
                        ),
                    )
                except DocumentError:
                    raise
                except Exception as exc:
                    code = getattr(exc, "code", "unavailable")
                    raise ApiError(503, str(code), str(exc)) from None
                if self.run_worker:
                    documents.worker.start()
                self._documents = documents
        return self._documents

    async def aclose(self) -> None:
        if self._documents is not None:
            await self._documents.worker.stop()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    services = app.state.services
    holder = _DocumentsHolder(services.system, run_worker=services.worker is not None)
    app.state.documents = holder
    try:
        if holder.run_worker:
            if await count_pending_jobs(services.system.db):  # jobs left from before a restart
                await holder.get()
        yield
    finally:
        await holder.aclose()


router = APIRouter(prefix="/files", tags=["files"], lifespan=_lifespan, responses=_MORE_RESPONSES)


async def _documents(request: Request) -> Documents:
    holder: _DocumentsHolder = request.app.state.documents
    return await holder.get()


def _names(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _raise(exc: DocumentError) -> ApiError:
    return ApiError(exc.status, exc.code, str(exc))


@router.post("", status_code=202)
async def upload_file(
    request: Request,
    principal: CurrentPrincipal,
    file: Annotated[
        UploadFile,
        File(
            description="The document (not empty): text, Markdown, HTML, PDF, DOCX",
            json_schema_extra={"minLength": 1},
        ),
    ],
    source: Annotated[str | None, Form(max_length=1024)] = None,
    shared_with_users: Annotated[str | None, Form(description="Comma-separated users")] = None,
    shared_with_roles: Annotated[str | None, Form(description="Comma-separated roles")] = None,
) -> dict[str, Any]:
    """Queue a document for ingestion; 202 with ``document_id`` and ``job_id`` (null, with
    ``unchanged: true``, when the same content was already ingested under this name)."""
    require_scope(principal, "documents:write")
    for field, text in [
        ("source", source),
        ("filename", file.filename),
        ("shared_with_users", shared_with_users),
        ("shared_with_roles", shared_with_roles),
    ]:
        if text and "\x00" in text:  # stored as text: PostgreSQL refuses NUL
            raise ApiError(422, "invalid_request", f"{field} holds a NUL character; remove it")
    documents = await _documents(request)
    limit = documents.ingestor.config.max_bytes
    data = await file.read(limit + 1)
    name = source or file.filename or "upload"
    try:
        submission = await documents.ingestor.submit(
            tenant=principal.tenant,
            owner=principal.user,
            data=data,
            source=name,
            declared_type=file.content_type,
            shared_with_users=_names(shared_with_users),
            shared_with_roles=_names(shared_with_roles),
        )
    except DocumentError as exc:
        raise _raise(exc) from None
    return submission.to_dict()


@router.get("")
async def list_files(
    request: Request,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    """The caller's own documents, newest first, with their latest job."""
    require_scope(principal, "documents:read")
    documents = await _documents(request)
    views = await documents.ingestor.list_documents(principal, limit=limit, offset=offset)
    return [view.to_dict() for view in views]


@router.get("/{document_id}")
async def get_file(
    document_id: str, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """A document's status, sensitivity and counts, and its latest job's progress events."""
    require_scope(principal, "documents:read")
    documents = await _documents(request)
    try:
        return (await documents.ingestor.get(principal, document_id)).to_dict()
    except DocumentError as exc:
        raise _raise(exc) from None


@router.delete("/{document_id}", status_code=204)
async def delete_file(document_id: str, request: Request, principal: CurrentPrincipal) -> Response:
    """Delete a document, its chunks, full-text entries and vectors."""
    require_scope(principal, "documents:write")
    documents = await _documents(request)
    try:
        await documents.ingestor.delete(principal, document_id)
    except DocumentError as exc:
        raise _raise(exc) from None
    return Response(status_code=204)
