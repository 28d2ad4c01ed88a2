"""What the workspace tools (notes, tickets) share: records with a title and a body,
visible within a scope, found by id, searched by words, changed field by field, deleted.

A record written by a run that had read untrusted content is marked ``untrusted``;
returning one marks the call's output untrusted, so injected text cannot be laundered
through the workspace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, or_, select

from store.models import utcnow
from tools.types import ToolContext, ToolError

Title = Annotated[str, Field(min_length=1, max_length=500)]
"""A record's title (the SQL column holds 500 characters)."""
Body = Annotated[str, Field(max_length=100_000)]
Query = Annotated[str, Field(max_length=500, description="Words to look for in titles and bodies.")]
RecordId = Annotated[int, Field(ge=1)]
Limit = Annotated[int, Field(ge=1, le=100)]


class RecordInput(BaseModel):
    """Base of the workspace tools' inputs: unknown arguments are refused."""

    model_config = ConfigDict(extra="forbid")


class DeletedRecord(BaseModel):
    id: int
    deleted: bool
    title: str


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class RecordKind:
    """One kind of workspace record: its SQL model, its name in messages, and who sees
    which rows (``visible``: the WHERE conditions for the acting principal)."""

    model: Any
    noun: str
    visible: Callable[[ToolContext], Sequence[ColumnElement[bool]]]

    async def create(self, ctx: ToolContext, **values: Any) -> Any:
        record = self.model(
            tenant=ctx.principal.tenant,
            owner=ctx.principal.user,
            untrusted=ctx.tainted,
            **values,
        )
        ctx.session.add(record)
        await ctx.session.flush()
        return record

    async def get(self, ctx: ToolContext, record_id: int) -> Any:
        """Raises:
        ToolError: ``not_found`` (also for a record the principal may not see)."""
        record = (
            await ctx.session.execute(
                select(self.model).where(self.model.id == record_id, *self.visible(ctx))
            )
        ).scalar_one_or_none()
        if record is None:
            raise ToolError("not_found", f"there is no {self.noun} {record_id} in your workspace")
        return record

    async def search(
        self, ctx: ToolContext, query: str, limit: int, *where: ColumnElement[bool]
    ) -> list[Any]:
        """The newest visible records with every word of ``query`` in title or body."""
        model = self.model
        statement = select(model).where(*self.visible(ctx), *where)
        for word in query.split():
            pattern = f"%{escape_like(word)}%"
            statement = statement.where(
                or_(model.title.ilike(pattern, escape="\\"), model.body.ilike(pattern, escape="\\"))
            )
        statement = statement.order_by(model.created_at.desc(), model.id.desc()).limit(limit)
        records = list((await ctx.session.execute(statement)).scalars().all())
        if any(record.untrusted for record in records):
            ctx.mark_untrusted()
        return records

    async def update(self, ctx: ToolContext, record_id: int, changes: Mapping[str, Any]) -> Any:
        """Set the fields of ``changes`` that are not None (None keeps a field)."""
        record = await self.get(ctx, record_id)
        for name, value in changes.items():
            if value is not None:
                setattr(record, name, value)
        record.updated_at = utcnow()
        record.untrusted = record.untrusted or ctx.tainted
        await ctx.session.flush()
        return record

    async def update_preview(
        self, ctx: ToolContext, record_id: int, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        record = await self.get(ctx, record_id)
        diff = {
            name: {"from": getattr(record, name), "to": value}
            for name, value in changes.items()
            if value is not None and value != getattr(record, name)
        }
        return {"would": f"change {self.noun} {record.id} ({record.title!r})", "changes": diff}

    async def delete(self, ctx: ToolContext, record_id: int) -> Any:
        """Delete the record and return it (its fields stay readable)."""
        record = await self.get(ctx, record_id)
        await ctx.session.delete(record)
        await ctx.session.flush()
        return record
