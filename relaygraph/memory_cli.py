"""GDPR commands: ``relaygraph export``, ``erase``, ``retention sweep`` and ``consent ...``.

- ``export --tenant T --user U [--out F]``: the user's data as JSON (Art. 15/20).
- ``erase --tenant T --user U [--yes] [--identifier X ...] [--json]``: erase everywhere,
  compact, then verify by searching every file of the data directory (Art. 17). Exit 0 when
  nothing readable remains, 1 when the verification found something (the report says where).
- ``retention sweep [--json]``: delete everything past its expiry.
- ``consent grant|withdraw|list|reject``: record legal bases, releasing or deleting what is
  held awaiting one.

They open the store, the checkpoints and the vector index themselves; the embedded vector
index is owned by one process, so run them while no ``relaygraph serve`` runs on the same data
directory (or point every process at a Chroma server with RELAYGRAPH_CHROMA_URL).
Exit codes: 0 done, 1 verification found traces, 2 bad input or configuration.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from runtime.memory_services import MemoryServices

T = TypeVar("T")
EXIT_OK = 0
EXIT_TRACES_FOUND = 1
EXIT_BAD_INPUT = 2
_err = Console(stderr=True, highlight=False)

Tenant = Annotated[str, typer.Option("--tenant", help="The data subject's tenant.")]
User = Annotated[str, typer.Option("--user", help="The data subject (user id).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]

retention_app = typer.Typer(
    name="retention", help="Delete data past its retention time.", no_args_is_help=True
)
consent_app = typer.Typer(
    name="consent",
    help="Record, withdraw and list legal bases for holding sensitive data.",
    no_args_is_help=True,
)


def _with_services(work: Callable[[MemoryServices], Awaitable[T]]) -> T:
    """Run ``work`` with the memory services of the configured data directory; known
    errors become one line on stderr and exit code 2."""
    from pydantic import ValidationError

    from memory.types import MemoryStoreError
    from runtime.observability import configure_observability
    from runtime.settings import Settings, configuration_error_message
    from runtime.system import open_system
    from store import StoreError

    async def main() -> T:
        settings = Settings()
        configure_observability(settings)
        async with open_system(settings) as system:
            assert system.memory is not None
            return await work(await system.memory.get())

    try:
        return asyncio.run(main())
    except ValidationError as exc:
        message = configuration_error_message(exc)
    except (StoreError, MemoryStoreError, ValueError) as exc:
        message = str(exc)
    _err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def export_command(
    tenant: Tenant,
    user: User,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON here (default: stdout).")
    ] = None,
) -> None:
    """Export everything held about one user as JSON (GDPR Art. 15/20)."""
    from runtime.export import export_user

    async def work(services: MemoryServices) -> dict[str, Any]:
        system = services.system
        return await export_user(
            db=system.db, checkpointer=system.checkpointer, tenant=tenant, user=user
        )

    data = _with_services(work)
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    out.write_text(text, encoding="utf-8")
    out.chmod(0o600)
    counts = ", ".join(f"{name} {n}" for name, n in data["counts"].items() if n)
    _err.print(f"exported {user} of {tenant} to {out}: {counts or 'nothing held'}", markup=False)


def erase_command(
    tenant: Tenant,
    user: User,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    identifier: Annotated[
        list[str] | None,
        typer.Option("--identifier", help="Another identifier to verify is gone (repeatable)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Erase one user everywhere (GDPR Art. 17), compact, and verify nothing readable is left."""
    if not yes:
        if not sys.stdin.isatty():
            _err.print("error: erasing is irreversible; pass --yes to confirm", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT)
        typer.confirm(f"Erase every trace of {user} in tenant {tenant}?", abort=True)

    async def work(services: MemoryServices) -> Any:
        return await services.eraser().erase(tenant=tenant, user=user, identifiers=identifier or ())

    report = _with_services(work)
    if as_json:
        _emit_json(report.to_dict())
    else:
        deleted = ", ".join(f"{name} {n}" for name, n in report.deleted.items() if n)
        sys.stdout.write(f"erased {user} of {tenant}: {deleted or 'nothing held'}\n")
        for path in report.compacted:
            sys.stdout.write(f"compacted {path}\n")
        check = report.verification
        if check is not None:
            sys.stdout.write(
                f"verified {check.files_searched} files ({check.bytes_searched} bytes) for "
                f"{len(check.identifiers)} identifiers: "
                + ("no readable trace left\n" if check.ok else "TRACES FOUND\n")
            )
            for path, labels in check.hits.items():
                sys.stdout.write(f"  found {', '.join(labels)} in {path}\n")
            for path, labels in check.retained.items():
                sys.stdout.write(f"  retained {', '.join(labels)} in {path}\n")
    raise typer.Exit(EXIT_OK if report.ok else EXIT_TRACES_FOUND)


@retention_app.command("sweep")
def sweep_command(as_json: JsonOpt = False) -> None:
    """Delete memories, documents, chunks, threads, store items, cache entries and files
    past their expiry."""

    async def work(services: MemoryServices) -> Any:
        return await services.sweeper().sweep()

    report = _with_services(work)
    if as_json:
        _emit_json(report.to_dict())
        return
    parts = ", ".join(f"{name} {n}" for name, n in report.deleted.items() if n)
    sys.stdout.write(f"swept {report.total} expired items" + (f": {parts}" if parts else "") + "\n")


@consent_app.command("grant")
def consent_grant(
    tenant: Tenant,
    user: User,
    basis: Annotated[
        str, typer.Option("--basis", help="consent, contract, legal_obligation, ...")
    ] = "consent",
    purpose: Annotated[str, typer.Option("--purpose", help="Purpose ('*': all).")] = "*",
    categories: Annotated[
        str, typer.Option("--categories", help="Comma-separated: special, financial, personal.")
    ] = "special,financial",
    by: Annotated[
        str | None, typer.Option("--by", help="Who records it (default: the user).")
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="Evidence or reason (required unless the user).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a legal basis for a user and release the held data it covers: memories are
    indexed at once, held documents are ingested here (no server worker runs them)."""

    async def work(services: MemoryServices) -> tuple[Any, list[Any]]:
        result = await services.consent.grant(
            tenant=tenant,
            subject=user,
            basis=basis,
            purpose=purpose,
            categories=tuple(c.strip() for c in categories.split(",") if c.strip()),
            recorded_by=by or user,
            note=note,
        )
        jobs = [await _run_released(services, job_id) for job_id in result.document_jobs]
        return result, jobs

    result, jobs = _with_services(work)
    failed = [job for job in jobs if job.status in ("failed", "dead")]
    if as_json:
        _emit_json(
            {
                **result.to_dict(),
                "documents": [
                    {"document_id": j.document_id, "job_id": j.id, "status": j.status} for j in jobs
                ],
            }
        )
    else:
        sys.stdout.write(
            f"recorded {result.basis.basis} {result.basis.id} for {user}; "
            f"released {result.released} held memories and "
            f"{result.released_documents} held documents\n"
        )
        for job in failed:
            _err.print(
                f"[bold red]error:[/] document {job.document_id} was not indexed: "
                f"{job.status} {escape(job.error_code or '')} {escape(job.error_message or '')}",
                soft_wrap=True,
            )
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


async def _run_released(services: MemoryServices, job_id: str) -> Any:
    """Ingest a released document here; one another process's worker already runs (a
    shared Chroma server) is left to it."""
    from memory.document_types import DocumentNotFoundError

    try:
        return await services.documents.run_job(job_id)
    except DocumentNotFoundError:
        return await services.documents.job(job_id)


@consent_app.command("withdraw")
def consent_withdraw(
    tenant: Tenant,
    user: User,
    basis_id: Annotated[str, typer.Argument(help="The legal basis id (lb_...).")],
    by: Annotated[
        str | None, typer.Option("--by", help="Who withdraws (default: the user).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Withdraw a legal basis: the data held under it is deleted."""

    async def work(services: MemoryServices) -> Any:
        return await services.consent.withdraw(
            tenant=tenant, subject=user, basis_id=basis_id, by=by or user
        )

    result = _with_services(work)
    if as_json:
        _emit_json(result.to_dict())
        return
    sys.stdout.write(
        f"withdrew {basis_id}; deleted {result.deleted} memories and "
        f"{result.deleted_documents} documents\n"
    )


@consent_app.command("reject")
def consent_reject(tenant: Tenant, user: User, as_json: JsonOpt = False) -> None:
    """Refuse a legal basis for what is held: the held data is deleted."""

    async def work(services: MemoryServices) -> Any:
        return await services.consent.reject_held(tenant=tenant, subject=user)

    result = _with_services(work)
    if as_json:
        _emit_json(result.to_dict())
        return
    sys.stdout.write(
        f"deleted {result.deleted} held memories and {result.deleted_documents} held documents\n"
    )


@consent_app.command("list")
def consent_list(tenant: Tenant, user: User, as_json: JsonOpt = False) -> None:
    """List a user's legal bases (withdrawn ones too) and what is held awaiting one."""

    async def work(services: MemoryServices) -> tuple[list[Any], Any]:
        bases = await services.consent.list_bases(tenant=tenant, subject=user)
        return bases, await services.consent.list_held(tenant=tenant, subject=user)

    bases, held = _with_services(work)
    if as_json:
        _emit_json({"bases": [b.to_dict() for b in bases], **held.to_dict()})
        return
    for b in bases:
        state = f"withdrawn {b.withdrawn_at:%Y-%m-%d}" if b.withdrawn_at else "active"
        sys.stdout.write(
            f"{b.id}  {b.basis}  purpose={b.purpose}  {','.join(b.categories)}  "
            f"by {b.recorded_by} {b.recorded_at:%Y-%m-%d}  {state}\n"
        )
    for d in held.documents:
        sys.stdout.write(f"held document {d.id}  {d.sensitivity}  {d.source}\n")
    sys.stdout.write(
        f"{len(held.memories)} memories and {len(held.documents)} documents "
        "awaiting a legal basis\n"
    )
