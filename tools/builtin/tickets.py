"""Workspace tickets on SQL: create, search, update, close; delete is destructive.

Tickets are shared within a tenant (a team's queue); every query filters on the
tenant. Like notes, a ticket written after untrusted content was read is marked
``untrusted`` and taints whoever reads it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select

from store.models import Ticket, utcnow
from tools.types import ToolContext, ToolError, ToolSpec

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


class TicketsCreateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=500, description="One-line summary.")
    body: str = Field(max_length=100_000, description="What needs doing, and why.")
    priority: Priority = Field(default="normal", description="low, normal, high or urgent.")


class TicketsSearchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(max_length=500, description="Words to look for in titles and bodies.")
    status: Status | None = Field(default=None, description="open or closed; null: both.")
    limit: int = Field(default=10, ge=1, le=100, description="Most tickets to return.")


class TicketsSearchOutput(BaseModel):
    tickets: list[TicketOut]


class TicketsUpdateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_id: int = Field(ge=1, description="Id of the ticket to change.")
    title: str | None = Field(
        default=None, min_length=1, max_length=500, description="New summary; null keeps it."
    )
    body: str | None = Field(
        default=None, max_length=100_000, description="New text; null keeps it."
    )
    priority: Priority | None = Field(default=None, description="New priority; null keeps it.")


class TicketsCloseInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_id: int = Field(ge=1, description="Id of the ticket to close.")


class TicketsDeleteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_id: int = Field(ge=1, description="Id of the ticket to delete.")


class TicketsDeleteOutput(BaseModel):
    id: int
    deleted: bool
    title: str


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


async def _ticket(ctx: ToolContext, ticket_id: int) -> Ticket:
    ticket = (
        await ctx.session.execute(
            select(Ticket).where(Ticket.id == ticket_id, Ticket.tenant == ctx.principal.tenant)
        )
    ).scalar_one_or_none()
    if ticket is None:
        raise ToolError("not_found", f"there is no ticket {ticket_id} in your workspace")
    return ticket


async def tickets_create(ctx: ToolContext, args: TicketsCreateInput) -> TicketOut:
    ticket = Ticket(
        tenant=ctx.principal.tenant,
        owner=ctx.principal.user,
        title=args.title,
        body=args.body,
        priority=args.priority,
        status="open",
        untrusted=ctx.tainted,
        created_at=utcnow(),
    )
    ctx.session.add(ticket)
    await ctx.session.flush()
    return _out(ticket)


async def tickets_search(ctx: ToolContext, args: TicketsSearchInput) -> TicketsSearchOutput:
    statement = select(Ticket).where(Ticket.tenant == ctx.principal.tenant)
    if args.status is not None:
        statement = statement.where(Ticket.status == args.status)
    for word in args.query.split():
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(Ticket.title.ilike(pattern, escape="\\"), Ticket.body.ilike(pattern, escape="\\"))
        )
    statement = statement.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(args.limit)
    tickets = (await ctx.session.execute(statement)).scalars().all()
    if any(ticket.untrusted for ticket in tickets):
        ctx.mark_untrusted()
    return TicketsSearchOutput(tickets=[_out(ticket) for ticket in tickets])


async def tickets_update(ctx: ToolContext, args: TicketsUpdateInput) -> TicketOut:
    ticket = await _ticket(ctx, args.ticket_id)
    for name in ("title", "body", "priority"):
        value = getattr(args, name)
        if value is not None:
            setattr(ticket, name, value)
    ticket.updated_at = utcnow()
    ticket.untrusted = ticket.untrusted or ctx.tainted
    await ctx.session.flush()
    return _out(ticket)


async def tickets_update_preview(ctx: ToolContext, args: TicketsUpdateInput) -> dict[str, Any]:
    ticket = await _ticket(ctx, args.ticket_id)
    changes = {
        name: {"from": getattr(ticket, name), "to": getattr(args, name)}
        for name in ("title", "body", "priority")
        if getattr(args, name) is not None and getattr(args, name) != getattr(ticket, name)
    }
    return {"would": f"change ticket {ticket.id} ({ticket.title!r})", "changes": changes}


async def tickets_close(ctx: ToolContext, args: TicketsCloseInput) -> TicketOut:
    ticket = await _ticket(ctx, args.ticket_id)
    if ticket.status != "closed":
        ticket.status = "closed"
        ticket.closed_at = ticket.updated_at = utcnow()
        await ctx.session.flush()
    return _out(ticket)


async def tickets_close_preview(ctx: ToolContext, args: TicketsCloseInput) -> dict[str, Any]:
    ticket = await _ticket(ctx, args.ticket_id)
    if ticket.status == "closed":
        return {"would": f"nothing: ticket {ticket.id} is already closed"}
    return {"would": f"close ticket {ticket.id} ({ticket.title!r})"}


async def tickets_delete(ctx: ToolContext, args: TicketsDeleteInput) -> TicketsDeleteOutput:
    ticket = await _ticket(ctx, args.ticket_id)
    await ctx.session.delete(ticket)
    await ctx.session.flush()
    return TicketsDeleteOutput(id=args.ticket_id, deleted=True, title=ticket.title)


async def tickets_delete_preview(ctx: ToolContext, args: TicketsDeleteInput) -> dict[str, Any]:
    ticket = await _ticket(ctx, args.ticket_id)
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
