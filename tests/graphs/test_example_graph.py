"""The README's example of your own graph (examples/approved_note.py) works as documented:
registered by file path, it reads through the tool gate, stops for a reviewer with the
standard payload, and writes only what the reviewer approved (or edited)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import Note

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "approved_note.py"
PRINCIPAL = local_principal(user="ann")


async def _titles(system: object) -> list[str]:
    async with system.db.session() as session:  # type: ignore[attr-defined]
        return [n.title for n in (await session.execute(select(Note))).scalars()]


async def test_the_example_graph_waits_for_a_reviewer_then_writes(data_dir: Path) -> None:
    settings = Settings(
        data_dir=data_dir,
        graphs={"approved_note": f"{EXAMPLE}:graph"},
        assistants={"short_titles": {"graph_id": "approved_note", "options": {"title_chars": 6}}},
    )
    async with open_system(settings) as system:
        runner = Runner(system)
        first = await runner.run(
            RunRequest(
                principal=PRINCIPAL, assistant_id="short_titles", input_text="Launch on Friday"
            )
        )
        assert first.status == "interrupted", first.final_message
        assert await _titles(system) == []  # nothing is written before the decision

        approved = await runner.run(
            RunRequest(
                principal=PRINCIPAL, thread_id=first.thread_id, decisions=[{"type": "approve"}]
            )
        )
        assert approved.status == "success", approved.final_message
        assert approved.final_message == "Saved note 1: Launch"
        assert await _titles(system) == ["Launch"]  # the assistant's option shaped the title

        second = await runner.run(
            RunRequest(principal=PRINCIPAL, assistant_id="approved_note", input_text="Drop it")
        )
        edited = {
            "type": "edit",
            "edited_action": {"name": "notes_create", "args": {"title": "Kept", "body": "x"}},
        }
        await runner.run(
            RunRequest(principal=PRINCIPAL, thread_id=second.thread_id, decisions=[edited])
        )
        third = await runner.run(
            RunRequest(principal=PRINCIPAL, assistant_id="approved_note", input_text="Nope")
        )
        rejected = await runner.run(
            RunRequest(
                principal=PRINCIPAL,
                thread_id=third.thread_id,
                decisions=[{"type": "reject", "message": "not needed"}],
            )
        )
        assert rejected.final_message == "Not written: not needed"
        assert sorted(await _titles(system)) == ["Kept", "Launch"]
