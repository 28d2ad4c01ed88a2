"""``relaygraph ingest PATH... --tenant T --user U [--json]``: ingest documents inline.

Each file (directories are walked, hidden entries skipped) is checked, queued and ingested
right away in this process with a progress bar on stderr: extracted, scanned for personal
data, chunked, embedded and indexed. Its source name is its absolute path, so ingesting an
unchanged file again is a no-op and a changed file replaces its earlier chunks.

``--json`` prints one object per file, in input order: ``{"input", "document_id",
"job_id", "status", "unchanged", "chunks", "sensitivity"}``, or ``{"input", "status":
"rejected"|"failed"|"dead", "error", "message"}`` for a file that could not be ingested
(the other files are still ingested). Exit codes: 0 every file ingested (or held for a
legal basis: status ``awaiting_basis``), 2 at least one file refused or failed, or bad
configuration (embedded Chroma owned by a running server, embedding model missing).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from relaygraph.store_cli import EXIT_BAD_INPUT, with_store

if TYPE_CHECKING:
    from memory.documents import Documents
    from store import Database

_err = Console(stderr=True, highlight=False, soft_wrap=True)
EXIT_OK = 0


def _files(paths: list[Path]) -> list[tuple[str, Path | None, str | None]]:
    """(input name, file or None, error) per input, directories expanded."""
    found: list[tuple[str, Path | None, str | None]] = []
    for path in paths:
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                relative = item.relative_to(path).parts
                if item.is_file() and not any(part.startswith(".") for part in relative):
                    found.append((str(item), item, None))
        elif path.is_file():
            found.append((str(path), path, None))
        else:
            found.append((str(path), None, f"{path}: no such file"))
    return found


async def _ingest_all(
    db: Database,
    inputs: list[tuple[str, Path | None, str | None]],
    *,
    tenant: str,
    user: str,
    share_users: list[str],
    share_roles: list[str],
    show_progress: bool,
) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from memory.document_types import DocumentRejectedError, ProgressEvent
    from memory.documents import document_config, open_documents
    from runtime.settings import Settings

    settings = Settings()
    key = settings.chroma_scope_key
    results: list[dict[str, Any]] = []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[stage]}"),
        console=_err,
        disable=not show_progress,
    )
    async with open_documents(
        db,
        chroma_path=settings.chroma_dir,
        chroma_url=settings.chroma_url,
        scope_key=key.get_secret_value().encode() if key else None,
        cache_max_vectors=settings.vector_cache_max_vectors,
        embedding_model=settings.embedding_model,
        models_dir=settings.models_dir,
        config=document_config(
            max_bytes=settings.document_max_bytes,
            hold_financial=settings.document_hold_financial,
        ),
    ) as documents:
        with progress:
            for name, path, error in inputs:
                task = progress.add_task(escape(Path(name).name), total=1.0, stage="reading")
                if path is None:
                    results.append(_error(name, "rejected", "not_found", error or name))
                    progress.update(task, completed=1.0, stage="not found")
                    continue

                def listener(event: ProgressEvent, task: Any = task) -> None:
                    progress.update(task, completed=event.progress, stage=event.stage)

                try:
                    data = path.read_bytes()
                    result = await _ingest_one(
                        documents,
                        name,
                        data,
                        source=str(path.resolve()),
                        tenant=tenant,
                        user=user,
                        share_users=share_users,
                        share_roles=share_roles,
                        listener=listener,
                    )
                except OSError as exc:
                    result = _error(name, "rejected", "unreadable", f"{name}: {exc.strerror}")
                except DocumentRejectedError as exc:
                    result = _error(name, "rejected", exc.code, str(exc))
                progress.update(task, completed=1.0, stage=result["status"])
                results.append(result)
    return results


async def _ingest_one(
    documents: Documents,
    name: str,
    data: bytes,
    *,
    source: str,
    tenant: str,
    user: str,
    share_users: list[str],
    share_roles: list[str],
    listener: Any,
) -> dict[str, Any]:
    submission = await documents.ingestor.submit(
        tenant=tenant,
        owner=user,
        data=data,
        source=source,
        shared_with_users=share_users,
        shared_with_roles=share_roles,
    )
    if submission.job_id is not None:
        job = await documents.ingestor.run_job(submission.job_id, listener)
        if job.status in ("failed", "dead"):
            return _error(name, job.status, job.error_code or "error", job.error_message or "")
    from identity import local_principal

    view = await documents.ingestor.get(local_principal(tenant, user), submission.document_id)
    return {
        "input": name,
        "document_id": view.id,
        "job_id": submission.job_id,
        "status": view.status,
        "unchanged": submission.unchanged,
        "chunks": view.chunk_count,
        "sensitivity": view.sensitivity,
    }


def _error(name: str, status: str, code: str, message: str) -> dict[str, Any]:
    return {"input": name, "status": status, "error": code, "message": message}


def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to ingest.")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the documents belong to.")],
    user: Annotated[str, typer.Option("--user", help="User who owns the documents.")],
    share_user: Annotated[
        list[str] | None, typer.Option("--share-user", help="Also readable by this user.")
    ] = None,
    share_role: Annotated[
        list[str] | None, typer.Option("--share-role", help="Also readable by this role.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
) -> None:
    """Ingest text, Markdown, HTML, PDF and DOCX files for a user: check, extract, scan for
    personal data, chunk, embed and index them, with a progress bar."""
    from memory.types import MemoryStoreError

    inputs = _files(paths)
    results = with_store(
        lambda db: _ingest_all(
            db,
            inputs,
            tenant=tenant,
            user=user,
            share_users=share_user or [],
            share_roles=share_role or [],
            show_progress=not as_json,
        ),
        (MemoryStoreError,),
    )
    failed = False
    for result in results:
        failed |= "error" in result
        if as_json:
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        elif "error" in result:
            _err.print(f"[bold red]error:[/] {escape(result['message'])}")
        else:
            note = " (unchanged)" if result["unchanged"] else ""
            sys.stdout.write(
                f"{result['status']:<15} {result['chunks']:>4} chunks  "
                f"{result['document_id']}  {result['input']}{note}\n"
            )
    sys.stdout.flush()
    raise typer.Exit(EXIT_BAD_INPUT if failed else EXIT_OK)
