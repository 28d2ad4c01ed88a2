"""``relaygraph approvals``: list, approve and reject calls waiting for a reviewer.

The CLI acts as an operator with every role in ``--tenant``; ``--as`` names the
approver recorded in the audit log (with four-eyes on, it must differ from the
requester). Exit codes: 0 done, 2 bad input (unknown id, expired, already decided).
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relaygraph.store_cli import with_store

approvals_app = typer.Typer(
    name="approvals",
    help="List, approve and reject tool calls from MCP clients waiting for a reviewer.",
    no_args_is_help=True,
    add_completion=False,
)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)
EXIT_BAD_INPUT = 2

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant of the approvals.")]
AsOpt = Annotated[
    str | None, typer.Option("--as", help="Approver name recorded (default: the OS user).")
]


def _run(work: Any, tenant: str, user: str | None) -> Any:
    from identity import local_principal
    from runtime.settings import Settings
    from runtime.system import approval_policy
    from store import Database
    from tools import ApprovalError, ApprovalService, AuditLog

    async def with_service(db: Database) -> Any:
        service = ApprovalService(db, AuditLog(db), approval_policy(Settings()))
        principal = local_principal(tenant=tenant, user=user or getpass.getuser())
        return await work(service, principal)

    return with_store(with_service, (ApprovalError,))


def _emit(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")


@approvals_app.command("list")
def list_command(
    tenant: TenantOpt = "default",
    status: Annotated[
        str, typer.Option("--status", help="pending, approved, rejected, used, expired or all.")
    ] = "pending",
    as_json: JsonOpt = False,
) -> None:
    """Approvals of a tenant, newest first (pending ones by default)."""
    if status not in ("pending", "approved", "rejected", "used", "expired", "all"):
        _err.print(f"[bold red]error:[/] unknown status {escape(status)!r}")
        raise typer.Exit(EXIT_BAD_INPUT)
    wanted = None if status == "all" else status
    approvals = _run(
        lambda service, principal: service.list_approvals(principal=principal, status=wanted),
        tenant,
        None,
    )
    if as_json:
        _emit([approval.to_dict() for approval in approvals])
        return
    if not approvals:
        _out.print(f"no {status} approvals in tenant {escape(tenant)}")
        return
    table = Table()
    # The id is what a reviewer copies into `approve`/`reject`: never shorten it, however
    # narrow the terminal (the other columns wrap instead).
    table.add_column("id", no_wrap=True, min_width=max(len(a.approval_id) for a in approvals))
    table.add_column("tool", no_wrap=True, min_width=max(len(a.tool) for a in approvals))
    for header in ("risk", "requester", "status", "expires", "what"):
        table.add_column(header)
    for approval in approvals:
        table.add_row(
            approval.approval_id,
            approval.tool,
            approval.risk,
            approval.requester,
            approval.status,
            approval.expires_at.strftime("%Y-%m-%d %H:%M"),
            str(approval.preview.get("would", ""))[:80],
        )
    _out.print(table)


def _decide(kind: str, approval_id: str, tenant: str, user: str | None, note: str | None) -> None:
    from tools import ApprovalError

    async def work(service: Any, principal: Any) -> Any:
        try:
            if kind == "approve":
                return await service.approve(approval_id, approver=principal, note=note)
            return await service.reject(approval_id, approver=principal, reason=note)
        except ApprovalError as exc:
            if exc.code != "approval_not_found":
                raise
            # Approvals live in the requester's tenant; the CLI's default is 'default'.
            raise ApprovalError(
                exc.code,
                f"there is no approval {approval_id!r} in tenant {tenant!r}; pass the "
                "requester's tenant with --tenant (`relaygraph approvals list --tenant T` "
                "shows its pending approvals)",
            ) from None

    approval = _run(work, tenant, user)
    _out.print(f"{approval.approval_id}: {approval.status} by {escape(approval.decided_by or '')}")


@approvals_app.command("approve")
def approve_command(
    approval_id: Annotated[str, typer.Argument(help="The approval id (apr_...).")],
    tenant: TenantOpt = "default",
    approver: AsOpt = None,
    note: Annotated[str | None, typer.Option("--note", help="Why (kept in the audit log).")] = None,
) -> None:
    """Approve a pending call; the client then repeats it with the approval id."""
    _decide("approve", approval_id, tenant, approver, note)


@approvals_app.command("reject")
def reject_command(
    approval_id: Annotated[str, typer.Argument(help="The approval id (apr_...).")],
    tenant: TenantOpt = "default",
    approver: AsOpt = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, shown to the caller.")
    ] = None,
) -> None:
    """Reject a pending call."""
    _decide("reject", approval_id, tenant, approver, reason)
