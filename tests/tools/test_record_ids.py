"""Note and ticket ids are never reused (migration 0014), on SQLite and PostgreSQL: an
approval bound to ``{"note_id": N}`` must not fit a later note that got number N again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from identity import Principal
from runtime.settings import Settings
from runtime.system import open_system
from tools import CallContext, ToolCall

pytestmark = pytest.mark.usefixtures("backend")

ANN = Principal.with_roles("acme", "ann", ["user"])
APPROVED = CallContext(approved_by="rita")


async def _call(system: Any, name: str, **args: Any) -> dict[str, Any]:
    outcome = await system.executor.execute(ToolCall(name, args, "c1"), ANN, APPROVED)
    assert outcome.ok and outcome.output is not None, outcome.content()
    return dict(outcome.output)


@pytest.mark.parametrize("kind", ["notes", "tickets"])
async def test_a_deleted_records_id_is_not_given_to_the_next_one(data_dir: Path, kind: str) -> None:
    argument = f"{kind[:-1]}_id"
    fields = {"body": "text"}
    async with open_system(Settings(data_dir=data_dir)) as system:
        first = (await _call(system, f"{kind}_create", title="first", **fields))["id"]
        last = (await _call(system, f"{kind}_create", title="last", **fields))["id"]
        deleted = await _call(system, f"{kind}_delete", **{argument: last})
        assert deleted["deleted"] is True

        created = (await _call(system, f"{kind}_create", title="new", **fields))["id"]

    assert created not in (first, last)
    assert created > last
