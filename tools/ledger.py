"""The tool-call ledger: one row per side-effecting call, keyed by (thread, task, call)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from identity import Principal
from store.models import ToolCall as LedgerRow
from store.models import utcnow
from tools.types import CallKey, ToolCall


async def find(session: AsyncSession, key: CallKey) -> LedgerRow | None:
    statement = select(LedgerRow).where(
        LedgerRow.thread_id == key.thread_id,
        LedgerRow.task_id == key.task_id,
        LedgerRow.tool_call_id == key.tool_call_id,
    )
    return (await session.execute(statement)).scalar_one_or_none()


def new_row(
    key: CallKey,
    call: ToolCall,
    principal: Principal,
    *,
    args: dict[str, Any],
    status: str,
    run_id: str | None,
    approved_by: str | None,
) -> LedgerRow:
    return LedgerRow(
        thread_id=key.thread_id,
        task_id=key.task_id,
        tool_call_id=key.tool_call_id,
        run_id=run_id,
        tenant=principal.tenant,
        principal=principal.user,
        tool=call.name,
        args=args,
        status=status,
        approved_by=approved_by,
    )


def complete(row: LedgerRow, *, result: Any = None, error: str | None = None) -> None:
    row.status = "failed" if error is not None else "succeeded"
    row.result = result
    row.error = error
    row.completed_at = utcnow()
