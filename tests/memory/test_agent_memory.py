"""Long-term memory in the agent graph: what a user tells one thread is recalled in their
next thread (the model's prompt shows it as untrusted context, the state traces ids and
scores), never for another user or tenant, and not at all when the assistant's ``memory``
option is off."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from sqlalchemy import select

from graphs.agent import compile_agent, turn_counts
from identity import Principal
from memory.minimisation import MinimisationPolicy
from memory.nodes import AgentMemory
from runtime.memory_services import LazyMemoryServices
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import TraceStep
from tests.memory import agent_memory_model
from tests.memory.memory_helpers import WordHashEmbedder

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)

ALICE = Principal.with_roles("acme", "alice", ["user"])
BOB = Principal.with_roles("acme", "bob", ["user"])
ALICE_ELSEWHERE = Principal.with_roles("globex", "alice", ["user"])
MODEL = "scripted:tests.memory.agent_memory_model:echo_memories"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        model=MODEL,
        assistants={
            "remembering": {"graph_id": "agent", "options": {"memory": True}},
            "forgetful": {"graph_id": "agent", "options": {"memory": False}},
        },
    )


async def _values(system: Any, thread_id: str) -> dict[str, Any]:
    snapshot = await compile_agent(system.checkpointer).aget_state(
        {"configurable": {"thread_id": thread_id}}
    )
    return dict(snapshot.values)


async def _ask(runner: Runner, principal: Principal, text: str, assistant: str) -> Any:
    summary = await runner.run(
        RunRequest(principal=principal, assistant_id=assistant, input_text=text)
    )
    assert summary.stop_reason == "completed", summary
    return summary


async def test_a_fact_told_in_one_thread_is_recalled_in_the_next(settings: Settings) -> None:
    async with open_system(settings) as system:
        system.memory = LazyMemoryServices(system, embedder=WordHashEmbedder())
        runner = Runner(system)
        first = await _ask(
            runner, ALICE, "Remember that my favourite colour is teal.", "remembering"
        )
        assert first.final_message == "SEEN: no memories"
        services = await system.memory.get()
        await services.memories.drain()  # the remember node writes in the background
        stored = [
            m.text for m in await services.memories.list_memories(tenant="acme", user="alice")
        ]
        assert stored == ["My favourite colour is teal"]

        second = await _ask(runner, ALICE, "What is my favourite colour?", "remembering")
        assert second.thread_id != first.thread_id
        assert "<untrusted_memories>" in (second.final_message or "")
        assert "My favourite colour is teal" in (second.final_message or "")
        values = await _values(system, second.thread_id)
        # The block reached the model's prompt only: the thread keeps the human message and
        # the answer, and the turn counts one model step.
        assert [m.type for m in values["messages"]] == ["human", "ai"]
        assert turn_counts(values) == (1, 0)  # type: ignore[arg-type]
        traced = values["recalled_memories"]
        assert len(traced) == 1 and traced[0]["memory_id"].startswith("mem_")
        assert traced[0]["score"] > 0 and "text" not in traced[0]
        assert "recalled_memories" not in await _values(system, first.thread_id)
        async with system.db.session() as session:
            steps = (
                await session.execute(
                    select(TraceStep.retrieved).where(
                        TraceStep.run_id == second.run_id, TraceStep.node == "model"
                    )
                )
            ).scalars()
            retrieved = [item for step in steps for item in step or []]
        assert {"kind": "memory", "id": traced[0]["memory_id"]}.items() <= retrieved[0].items()

        for other in (BOB, ALICE_ELSEWHERE):
            answer = await _ask(runner, other, "What is my favourite colour?", "remembering")
            assert answer.final_message == "SEEN: no memories", other

        # Memory off: nothing recalled, and nothing learnt from the turn.
        off = await _ask(runner, ALICE, "What is my favourite colour?", "forgetful")
        assert off.final_message == "SEEN: no memories"
        assert "recalled_memories" not in await _values(system, off.thread_id)
        await _ask(runner, ALICE, "Remember that I play the cello.", "forgetful")
        await services.memories.drain()
        assert [
            m.text for m in await services.memories.list_memories(tenant="acme", user="alice")
        ] == stored


async def test_pseudonyms_in_the_answer_are_mapped_back_for_their_user_only(
    data_dir: Path,
) -> None:
    """Recalled personal data reaches the model as ``<PERSON_1>``; the user's answer
    (``final_message``) and the stored history show their own value, while every model
    call, also the next turn's, sees the token; no other user or run can map it back."""
    settings = Settings(
        data_dir=data_dir,
        model=MODEL,
        privacy_minimise=["special", "personal"],
        assistants={"remembering": {"graph_id": "agent", "options": {"memory": True}}},
    )
    async with open_system(settings) as system:
        system.memory = LazyMemoryServices(system, embedder=WordHashEmbedder())
        runner = Runner(system)
        await _ask(runner, ALICE, "Remember that my name is Maria Jensen.", "remembering")
        services = await system.memory.get()
        await services.memories.drain()

        answer = await _ask(runner, ALICE, "What is my name?", "remembering")

        assert "My name is Maria Jensen" in (answer.final_message or "")
        assert "<PERSON_1>" not in (answer.final_message or "")
        prompt = "\n".join(str(m.content) for m in agent_memory_model.PROMPTS[-1])
        assert "<PERSON_1>" in prompt and "Maria Jensen" not in prompt  # what the model saw
        values = await _values(system, answer.thread_id)
        assert "My name is Maria Jensen" in values["messages"][-1].text  # stored restored
        assert values["pseudonyms"] == {"acme": {"alice": {"<PERSON_1>": "Maria Jensen"}}}
        again = await runner.run(
            RunRequest(
                principal=ALICE,
                assistant_id="remembering",
                thread_id=answer.thread_id,
                input_text="And again?",
            )
        )
        # Nothing recalled this time: the saved map still hides the earlier answer's value.
        assert again.final_message == "SEEN: no memories"
        prompt = agent_memory_model.PROMPTS[-1]
        earlier_answer = next(m for m in prompt if m.type == "ai")
        assert "<PERSON_1>" in earlier_answer.text and "Maria" not in earlier_answer.text
        assert (await _ask(runner, BOB, "What is my name?", "remembering")).final_message == (
            "SEEN: no memories"
        )

        memory = AgentMemory(services.memories, MinimisationPolicy.from_names(["personal"]))
        alice_run = SimpleNamespace(context=SimpleNamespace(principal=ALICE))
        block, _ = await memory.context_block(
            {"messages": [HumanMessage("What is my name?")]}, alice_run
        )
        assert "<PERSON_1>" in block and "Maria" not in block
        reply = "Your name is <PERSON_1>; <PERSON_2> is unknown."
        assert memory.restore_answer(reply, alice_run) == (
            "Your name is Maria Jensen; <PERSON_2> is unknown."
        )
        for stranger in (BOB, ALICE_ELSEWHERE):
            other_run = SimpleNamespace(context=SimpleNamespace(principal=stranger))
            assert memory.restore_answer(reply, other_run) == reply
        fresh = AgentMemory(services.memories, MinimisationPolicy.from_names(["personal"]))
        assert fresh.restore_answer(reply, alice_run) == reply  # another run: no map
