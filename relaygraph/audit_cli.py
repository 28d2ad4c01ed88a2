"""``relaygraph audit``: verify the audit hash chain, list entries.

Exit codes: 0 the chain checks out; 3 it does not (tampering, or rows deleted);
2 bad input or configuration.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relaygraph.store_cli import with_store

audit_app = typer.Typer(
    name="audit",
    help="Check and read the append-only audit log of tool calls and approvals.",
    no_args_is_help=True,
    add_completion=False,
)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)
EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_CHAIN_BROKEN = 3

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _run(work: Any) -> Any:
    from tools import AuditLog

    return with_store(lambda db: work(AuditLog(db)))


@audit_app.command("verify")
def verify(as_json: JsonOpt = False) -> None:
    """Recompute the hash chain over every entry; exit 3 if anything does not match."""
    report = _run(lambda audit: audit.verify())
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    elif report.ok:
        _out.print(
            f"audit chain OK: {report.entries} entries "
            f"({report.erased_payloads} with erased arguments)"
        )
    else:
        _err.print(f"[bold red]audit chain BROKEN[/]: {len(report.problems)} problem(s)")
        for problem in report.problems[:50]:
            _err.print(f"  {escape(problem)}", soft_wrap=True)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_CHAIN_BROKEN)


@audit_app.command("list")
def list_entries(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant to show.")] = "default",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    tool: Annotated[str | None, typer.Option("--tool", help="Only this tool.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The newest entries of a tenant."""
    entries = _run(lambda audit: audit.entries(tenant=tenant, limit=limit, tool=tool))
    if as_json:
        sys.stdout.write(json.dumps(entries, indent=2, default=str) + "\n")
        return
    table = Table("seq", "at", "actor", "tool", "decision", "status", "approver", "ms")
    for entry in entries:
        latency = entry["latency_ms"]
        table.add_row(
            str(entry["seq"]),
            entry["at"][:19],
            entry["actor"],
            entry["tool"],
            entry["decision"],
            entry["status"],
            entry["approver"] or "",
            "" if latency is None else f"{latency:.1f}",
        )
    _out.print(table)
