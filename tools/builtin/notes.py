"""Workspace notes on SQL: create, search, update, delete (destructive: always approved).

Notes belong to a tenant and an owner; every query filters on both, so one
user's notes are never visible to another. A note written by a run that had
read untrusted content is marked ``untrusted``: reading it later taints the
reading run too, so injected text cannot be laundered through the workspace.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select

from store.models import Note, utcnow
from tools.types import ToolContext, ToolError, ToolSpec


class NoteOut(BaseModel):
    id: int
    title: str
    body: str
    created_at: datetime


class NotesCreateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=500, description="Short title of the note.")
    body: str = Field(max_length=100_000, description="The note's text.")


class NotesSearchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(max_length=500, description="Words to look for in titles and bodies.")
    limit: int = Field(default=10, ge=1, le=100, description="Most notes to return.")


class NotesSearchOutput(BaseModel):
    notes: list[NoteOut]


class NotesUpdateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note_id: int = Field(ge=1, description="Id of the note to change.")
    title: str | None = Field(
        default=None, min_length=1, max_length=500, description="New title; null keeps it."
    )
    body: str | None = Field(
        default=None, max_length=100_000, description="New text; null keeps it."
    )


class NotesDeleteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note_id: int = Field(ge=1, description="Id of the note to delete.")


class NotesDeleteOutput(BaseModel):
    id: int
    deleted: bool
    title: str


def _out(note: Note) -> NoteOut:
    return NoteOut(id=note.id, title=note.title, body=note.body, created_at=note.created_at)


def _owned(ctx: ToolContext):  # type: ignore[no-untyped-def]
    return (Note.tenant == ctx.principal.tenant, Note.owner == ctx.principal.user)


async def _note(ctx: ToolContext, note_id: int) -> Note:
    note = (
        await ctx.session.execute(select(Note).where(Note.id == note_id, *_owned(ctx)))
    ).scalar_one_or_none()
    if note is None:
        raise ToolError("not_found", f"there is no note {note_id} in your workspace")
    return note


async def notes_create(ctx: ToolContext, args: NotesCreateInput) -> NoteOut:
    note = Note(
        tenant=ctx.principal.tenant,
        owner=ctx.principal.user,
        title=args.title,
        body=args.body,
        untrusted=ctx.tainted,
    )
    ctx.session.add(note)
    await ctx.session.flush()
    return _out(note)


async def notes_search(ctx: ToolContext, args: NotesSearchInput) -> NotesSearchOutput:
    statement = select(Note).where(*_owned(ctx))
    for word in args.query.split():
        pattern = f"%{_escape_like(word)}%"
        statement = statement.where(
            or_(Note.title.ilike(pattern, escape="\\"), Note.body.ilike(pattern, escape="\\"))
        )
    statement = statement.order_by(Note.created_at.desc(), Note.id.desc()).limit(args.limit)
    notes = (await ctx.session.execute(statement)).scalars().all()
    if any(note.untrusted for note in notes):
        ctx.mark_untrusted()
    return NotesSearchOutput(notes=[_out(note) for note in notes])


async def notes_update(ctx: ToolContext, args: NotesUpdateInput) -> NoteOut:
    note = await _note(ctx, args.note_id)
    if args.title is not None:
        note.title = args.title
    if args.body is not None:
        note.body = args.body
    note.updated_at = utcnow()
    note.untrusted = note.untrusted or ctx.tainted
    await ctx.session.flush()
    return _out(note)


async def notes_update_preview(ctx: ToolContext, args: NotesUpdateInput) -> dict[str, Any]:
    note = await _note(ctx, args.note_id)
    changes = {
        name: {"from": getattr(note, name), "to": value}
        for name, value in (("title", args.title), ("body", args.body))
        if value is not None and value != getattr(note, name)
    }
    return {"would": f"change note {note.id} ({note.title!r})", "changes": changes}


async def notes_delete(ctx: ToolContext, args: NotesDeleteInput) -> NotesDeleteOutput:
    note = await _note(ctx, args.note_id)
    await ctx.session.delete(note)
    await ctx.session.flush()
    return NotesDeleteOutput(id=args.note_id, deleted=True, title=note.title)


async def notes_delete_preview(ctx: ToolContext, args: NotesDeleteInput) -> dict[str, Any]:
    note = await _note(ctx, args.note_id)
    return {
        "would": f"delete note {note.id} ({note.title!r}) for good",
        "note": {"id": note.id, "title": note.title, "body_chars": len(note.body)},
    }


async def notes_create_preview(ctx: ToolContext, args: NotesCreateInput) -> dict[str, Any]:
    return {"would": f"create a note titled {args.title!r} ({len(args.body)} characters)"}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


NOTES_TOOLS = [
    ToolSpec(
        name="notes_create",
        title="Create note",
        description="Create a note in the user's workspace. Returns the note with its id.",
        input_model=NotesCreateInput,
        output_model=NoteOut,
        handler=notes_create,
        risk="write",
        scope="notes:write",
        approval="when_untrusted",
        dry_run=notes_create_preview,
    ),
    ToolSpec(
        name="notes_search",
        title="Search notes",
        description=(
            "Search the user's notes; every word of the query must appear in the title or "
            "body. An empty query lists the newest notes. Returns notes with their ids."
        ),
        input_model=NotesSearchInput,
        output_model=NotesSearchOutput,
        handler=notes_search,
        risk="read",
        scope="notes:read",
        idempotent=True,
    ),
    ToolSpec(
        name="notes_update",
        title="Update note",
        description="Change the title and/or text of one note by id. Returns the note.",
        input_model=NotesUpdateInput,
        output_model=NoteOut,
        handler=notes_update,
        risk="write",
        scope="notes:write",
        approval="when_untrusted",
        idempotent=True,
        dry_run=notes_update_preview,
    ),
    ToolSpec(
        name="notes_delete",
        title="Delete note",
        description="Delete one note by id. Destructive: a reviewer must approve it.",
        input_model=NotesDeleteInput,
        output_model=NotesDeleteOutput,
        handler=notes_delete,
        risk="destructive",
        scope="notes:write",
        approval="always",
        idempotent=True,
        dry_run=notes_delete_preview,
    ),
]
