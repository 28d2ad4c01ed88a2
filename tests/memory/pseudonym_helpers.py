"""Shared set-up of the end-to-end pseudonym tests: a memory assistant whose model is the
real OpenAI client against the local stub, and the events a run recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from runtime.settings import Settings
from store.models import RunEvent

ASSISTANT = "remembering"
STREAM = ("messages-tuple", "values", "updates")


def stub_settings(data_dir: Path, openai_stub: Any, minimise: list[str] | None) -> Settings:
    """Settings with the ``ASSISTANT`` (memory on) and ``privacy_minimise`` set to
    ``minimise`` (None: the default)."""
    levels = {} if minimise is None else {"privacy_minimise": minimise}
    return Settings(
        data_dir=data_dir,
        model="openai:gpt-4o-mini",
        openai_api_key="sk-test-key-0000000000",
        openai_base_url=openai_stub.base_url,
        model_max_retries=0,
        assistants={ASSISTANT: {"graph_id": "agent", "options": {"memory": True}}},
        **levels,
    )


async def run_events(system: Any, run_id: str) -> list[tuple[str, Any]]:
    """(event, data) of what the run recorded for its client, in order."""
    async with system.db.session() as session:
        rows = (
            (
                await session.execute(
                    select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)
                )
            )
            .scalars()
            .all()
        )
    return [(row.event, row.data) for row in rows]
