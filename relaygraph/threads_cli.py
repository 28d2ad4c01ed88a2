"""``relaygraph threads``: list a tenant's threads, newest activity first, so a lost
THREAD_ID (and what an interrupted thread waits for) is found without the console.

Threads come from ``runtime.threads.ThreadService.search``, the query behind
``POST /threads/search``. Without ``--user`` the CLI reads the whole tenant, as an admin
would; with ``--user`` it sees what that user sees (their own threads).
Exit codes: 0 listed (even none), 2 bad input or configuration.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from identity import Principal
    from runtime.threads import ThreadService

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)
EXIT_BAD_INPUT = 2
STATUSES = ("interrupted", "idle", "busy", "error")


def threads_command(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant whose threads to list.")] = (
        "default"
    ),
    user: Annotated[
        str | None,
        typer.Option("--user", help="Only this user's threads (default: the whole tenant)."),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only threads in this status: " + ", ".join(STATUSES) + "."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most threads to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List threads, most recently active first: id, status, assistant, owner, last update,
    and what an interrupted thread waits for (resume it with `relaygraph resume`)."""
    if status is not None and status not in STATUSES:
        _fail(f"unknown status {status!r}; choose one of: {', '.join(STATUSES)}")
    try:
        rows = asyncio.run(_list_threads(tenant=tenant, user=user, status=status, limit=limit))
    except _known_errors() as exc:
        _fail(_message(exc))
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    _print_rows(rows, tenant=tenant, user=user, status=status)


async def _list_threads(
    *, tenant: str, user: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    from runtime.observability import configure_observability
    from runtime.runs import Runner, RunNotFound
    from runtime.settings import Settings
    from runtime.system import open_system
    from runtime.threads import ThreadService

    settings = Settings()
    configure_observability(settings)
    async with open_system(settings) as system:
        service = ThreadService(Runner(system))
        principal = _principal(tenant, user)
        found = await service.search(
            principal, status=status, limit=limit, sort_by="updated_at", sort_order="desc"
        )
        assert isinstance(found, list)
        rows = []
        for thread in found:
            try:
                rows.append(await _row(service, principal, thread))
            except RunNotFound:  # deleted since the search
                continue
        return rows


def _principal(tenant: str, user: str | None) -> Principal:
    from identity import Principal, local_principal

    if user is None:
        return local_principal(tenant=tenant)
    return Principal.with_roles(tenant, user, ["user"])  # sees exactly their own threads


async def _row(
    service: ThreadService, principal: Principal, thread: dict[str, Any]
) -> dict[str, Any]:
    record = await service.get_row(principal, thread["thread_id"])
    metadata = thread.get("metadata") or {}
    return {
        "thread_id": thread["thread_id"],
        "status": thread["status"],
        "assistant_id": record.assistant_id or metadata.get("assistant_id"),
        "graph_id": record.graph_id or metadata.get("graph_id"),
        "owner": record.owner,
        "created_at": _iso(thread["created_at"]),
        "updated_at": _iso(thread["updated_at"]),
        "pending": _pending(thread.get("interrupts") or {}),
    }


def _pending(interrupts: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The proposed actions of every pending interrupt (``action_requests``); an interrupt
    of another shape (a user graph's own) is kept whole as ``{"value": ...}``."""
    pending: list[dict[str, Any]] = []
    for task_interrupts in interrupts.values():
        for interrupt in task_interrupts:
            value = interrupt.get("value")
            actions = value.get("action_requests") if isinstance(value, dict) else None
            if isinstance(actions, list) and actions:
                pending.extend(
                    {
                        "name": action.get("name"),
                        "args": action.get("args"),
                        "description": action.get("description"),
                    }
                    for action in actions
                    if isinstance(action, dict)
                )
            else:
                pending.append({"value": value})
    return pending


def _pending_lines(pending: list[dict[str, Any]]) -> list[str]:
    lines = []
    for action in pending:
        if "value" in action:
            lines.append(json.dumps(action["value"], ensure_ascii=False, default=str))
        else:
            args = json.dumps(action.get("args"), ensure_ascii=False, default=str)
            lines.append(f"{action.get('name')} {args}")
    return lines


def _print_rows(
    rows: list[dict[str, Any]], *, tenant: str, user: str | None, status: str | None
) -> None:
    """One line per thread (id, status, assistant, owner, last update), then what an
    interrupted one waits for. Lines, not a table: ids stay whole and copyable however
    narrow the terminal."""
    if not rows:
        whose = f"of user {user} " if user else ""
        which = f"{status} " if status else ""
        _out.print(f"no {escape(which)}threads {escape(whose)}in tenant {escape(tenant)}")
        return
    assistant_width = max(len(row["assistant_id"] or "-") for row in rows)
    owner_width = max(len(row["owner"]) for row in rows)
    colour = {"interrupted": "magenta", "error": "red", "busy": "yellow"}
    for row in rows:
        shown_status = f"{row['status']:<11}"
        if row["status"] in colour:
            shown_status = f"[{colour[row['status']]}]{shown_status}[/]"
        assistant = (row["assistant_id"] or "-").ljust(assistant_width)
        owner = str(row["owner"]).ljust(owner_width)
        _out.print(
            f"[bold]{row['thread_id']}[/]  {shown_status}  {escape(assistant)}  "
            f"{escape(owner)}  updated {_shown_time(row['updated_at'])} UTC",
            soft_wrap=True,
        )
        for line in _pending_lines(row["pending"]):
            _out.print(f"  [dim]waiting for[/] {escape(line)}", soft_wrap=True)
    if any(row["status"] == "interrupted" for row in rows):
        from relaygraph.cli import invoked_command

        _out.print(
            f"\ndecide: [bold]{escape(invoked_command())} resume THREAD --approve[/] "
            "(or --reject 'why', --edit '{\"args\": {...}}')",
            soft_wrap=True,
        )


def _iso(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return None if value is None else str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _shown_time(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def _known_errors() -> tuple[type[BaseException], ...]:
    from graphs.registry import GraphLoadError
    from runtime.runs import RunRequestError
    from store import StoreError

    return (RunRequestError, StoreError, GraphLoadError, ValueError)


def _message(exc: BaseException) -> str:
    from pydantic import ValidationError

    from runtime.settings import configuration_error_message

    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return configuration_error_message(exc)
    return str(exc)


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)
