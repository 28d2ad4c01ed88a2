"""Workspace tickets on SQL: create, search, update, close; delete is destructive.

Tickets are shared within a tenant (a team's queue); every query filters on the
tenant. Like notes, a ticket written after untrusted content was read is marked
``untrusted`` and taints whoever reads it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from store.models import Ticket, utcnow
from tools.builtin._records import (
    Body,
    DeletedRecord,
    Limit,
    Query,
    RecordId,
    RecordInput,
    RecordKind,
    Title,
)
from tools.types import ToolContext, ToolSpec

Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["open", "closed"]


class TicketOut(BaseModel):
    id: int
    title: str
    body: str
    status: Status
    priority: Priority
    owner: str
    created_at: datetime
    closed_at: datetime | None


class TicketsCreateInput(RecordInput):
    title: Title = Field(description="One-line summary.")
    body: Body = Field(description="What needs doing, and why.")
    priority: Priority = Field(default="normal", description="low, normal, high or urgent.")


class TicketsSearchInput(RecordInput):
    query: Query
    status: Status | None = Field(default=None, description="open or closed; null: both.")
    limit: Limit = Field(default=10, description="Most tickets to return.")


class TicketsSearchOutput(BaseModel):
    tickets: list[TicketOut]


class TicketsUpdateInput(RecordInput):
    ticket_id: RecordId = Field(description="Id of the ticket to change.")
    title: Title | None = Field(default=None, description="New summary; null keeps it.")
    body: Body | None = Field(default=None, description="New text; null keeps it.")
    priority: Priority | None = Field(default=None, description="New priority; null keeps it.")


class TicketsCloseInput(RecordInput):
    ticket_id: RecordId = Field(description="Id of the ticket to close.")


class TicketsDeleteInput(RecordInput):
    ticket_id: RecordId = Field(description="Id of the ticket to delete.")


TicketsDeleteOutput = DeletedRecord


def _out(ticket: Ticket) -> TicketOut:
    return TicketOut(
        id=ticket.id,
        title=ticket.title,
        body=ticket.body,
        status=ticket.status,  # type: ignore[arg-type]
        priority=ticket.priority,  # type: ignore[arg-type]
        owner=ticket.owner,
        created_at=ticket.created_at,
        closed_at=ticket.closed_at,
    )


TICKETS = RecordKind(Ticket, "ticket", lambda ctx: (Ticket.tenant == ctx.principal.tenant,))
"""Tickets are shared by everyone in the tenant."""


async def tickets_create(ctx: ToolContext, args: TicketsCreateInput) -> TicketOut:
    ticket = await TICKETS.create(
        ctx, title=args.title, body=args.body, priority=args.priority, status="open"
    )
    return _out(ticket)


async def tickets_search(ctx: ToolContext, args: TicketsSearchInput) -> TicketsSearchOutput:
    where = () if args.status is None else (Ticket.status == args.status,)
    tickets = await TICKETS.search(ctx, args.query, args.limit, *where)
    return TicketsSearchOutput(tickets=[_out(ticket) for ticket in tickets])


def _changes(args: TicketsUpdateInput) -> dict[str, Any]:
    return {"title": args.title, "body": args.body, "priority": args.priority}


async def tickets_update(ctx: ToolContext, args: TicketsUpdateInput) -> TicketOut:
    return _out(await TICKETS.update(ctx, args.ticket_id, _changes(args)))


async def tickets_update_preview(ctx: ToolContext, args: TicketsUpdateInput) -> dict[str, Any]:
    return await TICKETS.update_preview(ctx, args.ticket_id, _changes(args))


async def tickets_close(ctx: ToolContext, args: TicketsCloseInput) -> TicketOut:
    ticket = await TICKETS.get(ctx, args.ticket_id)
    if ticket.status != "closed":
        ticket.status = "closed"
        ticket.closed_at = ticket.updated_at = utcnow()
        await ctx.session.flush()
    return _out(ticket)


async def tickets_close_preview(ctx: ToolContext, args: TicketsCloseInput) -> dict[str, Any]:
    ticket = await TICKETS.get(ctx, args.ticket_id)
    if ticket.status == "closed":
        return {"would": f"nothing: ticket {ticket.id} is already closed"}
    return {"would": f"close ticket {ticket.id} ({ticket.title!r})"}


async def tickets_delete(ctx: ToolContext, args: TicketsDeleteInput) -> TicketsDeleteOutput:
    ticket = await TICKETS.delete(ctx, args.ticket_id)
    return TicketsDeleteOutput(id=args.ticket_id, deleted=True, title=ticket.title)


async def tickets_delete_preview(ctx: ToolContext, args: TicketsDeleteInput) -> dict[str, Any]:
    ticket = await TICKETS.get(ctx, args.ticket_id)
    return {
        "would": f"delete ticket {ticket.id} ({ticket.title!r}, {ticket.status}) for good",
        "ticket": {"id": ticket.id, "title": ticket.title, "status": ticket.status},
    }


async def tickets_create_preview(ctx: ToolContext, args: TicketsCreateInput) -> dict[str, Any]:
    return {"would": f"open a {args.priority} ticket titled {args.title!r}"}


TICKETS_TOOLS = [
    ToolSpec(
        name="tickets_create",
        title="Create ticket",
        description="Open a ticket in the team's queue. Returns the ticket with its id.",
        input_model=TicketsCreateInput,
        output_model=TicketOut,
        handler=tickets_create,
        risk="write",
        scope="tickets:write",
        approval="when_untrusted",
        dry_run=tickets_create_preview,
    ),
    ToolSpec(
        name="tickets_search",
        title="Search tickets",
        description=(
            "Search the team's tickets; every word of the query must appear in the title or "
            "body. Filter by status. An empty query lists the newest tickets."
        ),
        input_model=TicketsSearchInput,
        output_model=TicketsSearchOutput,
        handler=tickets_search,
        risk="read",
        scope="tickets:read",
        idempotent=True,
    ),
    ToolSpec(
        name="tickets_update",
        title="Update ticket",
        description="Change a ticket's summary, text or priority. Returns the ticket.",
        input_model=TicketsUpdateInput,
        output_model=TicketOut,
        handler=tickets_update,
        risk="write",
        scope="tickets:write",
        approval="when_untrusted",
        idempotent=True,
        dry_run=tickets_update_preview,
    ),
    ToolSpec(
        name="tickets_close",
        title="Close ticket",
        description="Close a ticket (closing a closed ticket changes nothing).",
        input_model=TicketsCloseInput,
        output_model=TicketOut,
        handler=tickets_close,
        risk="write",
        scope="tickets:write",
        approval="when_untrusted",
        idempotent=True,
        dry_run=tickets_close_preview,
    ),
    ToolSpec(
        name="tickets_delete",
        title="Delete ticket",
        description="Delete one ticket by id. Destructive: a reviewer must approve it.",
        input_model=TicketsDeleteInput,
        output_model=TicketsDeleteOutput,
        handler=tickets_delete,
        risk="destructive",
        scope="tickets:write",
        approval="always",
        idempotent=True,
        dry_run=tickets_delete_preview,
    ),
]
