"""Workspace notes on SQL: create, search, update, delete (destructive: always approved).

Notes belong to a tenant and an owner; every query filters on both, so one
user's notes are never visible to another. A note written by a run that had
read untrusted content is marked ``untrusted``: reading it later taints the
reading run too, so injected text cannot be laundered through the workspace.
What notes and tickets share lives in ``tools/builtin/_records.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from store.models import Note
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


class NoteOut(BaseModel):
    id: int
    title: str
    body: str
    created_at: datetime


class NotesCreateInput(RecordInput):
    title: Title = Field(description="Short title of the note.")
    body: Body = Field(description="The note's text.")


class NotesSearchInput(RecordInput):
    query: Query
    limit: Limit = Field(default=10, description="Most notes to return.")


class NotesSearchOutput(BaseModel):
    notes: list[NoteOut]


class NotesUpdateInput(RecordInput):
    note_id: RecordId = Field(description="Id of the note to change.")
    title: Title | None = Field(default=None, description="New title; null keeps it.")
    body: Body | None = Field(default=None, description="New text; null keeps it.")


class NotesDeleteInput(RecordInput):
    note_id: RecordId = Field(description="Id of the note to delete.")


NotesDeleteOutput = DeletedRecord


def _out(note: Note) -> NoteOut:
    return NoteOut(id=note.id, title=note.title, body=note.body, created_at=note.created_at)


NOTES = RecordKind(
    Note,
    "note",
    lambda ctx: (Note.tenant == ctx.principal.tenant, Note.owner == ctx.principal.user),
)
"""Notes are private to their owner within the tenant."""


async def notes_create(ctx: ToolContext, args: NotesCreateInput) -> NoteOut:
    return _out(await NOTES.create(ctx, title=args.title, body=args.body))


async def notes_search(ctx: ToolContext, args: NotesSearchInput) -> NotesSearchOutput:
    notes = await NOTES.search(ctx, args.query, args.limit)
    return NotesSearchOutput(notes=[_out(note) for note in notes])


def _changes(args: NotesUpdateInput) -> dict[str, Any]:
    return {"title": args.title, "body": args.body}


async def notes_update(ctx: ToolContext, args: NotesUpdateInput) -> NoteOut:
    return _out(await NOTES.update(ctx, args.note_id, _changes(args)))


async def notes_update_preview(ctx: ToolContext, args: NotesUpdateInput) -> dict[str, Any]:
    return await NOTES.update_preview(ctx, args.note_id, _changes(args))


async def notes_delete(ctx: ToolContext, args: NotesDeleteInput) -> NotesDeleteOutput:
    note = await NOTES.delete(ctx, args.note_id)
    return NotesDeleteOutput(id=args.note_id, deleted=True, title=note.title)


async def notes_delete_preview(ctx: ToolContext, args: NotesDeleteInput) -> dict[str, Any]:
    note = await NOTES.get(ctx, args.note_id)
    return {
        "would": f"delete note {note.id} ({note.title!r}) for good",
        "note": {"id": note.id, "title": note.title, "body_chars": len(note.body)},
    }


async def notes_create_preview(ctx: ToolContext, args: NotesCreateInput) -> dict[str, Any]:
    return {"would": f"create a note titled {args.title!r} ({len(args.body)} characters)"}


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
