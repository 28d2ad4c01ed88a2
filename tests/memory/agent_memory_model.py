"""A scripted model (``scripted:tests.memory.agent_memory_model:echo_memories``) that
answers with the untrusted-memory block it was given, so a test sees the model's prompt
(also recorded in ``PROMPTS``)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage

PROMPTS: list[list[BaseMessage]] = []
"""Every prompt the model was given, in order (what a provider would have seen)."""


def echo_memories(messages: list[BaseMessage]) -> dict[str, Any]:
    PROMPTS.append(list(messages))
    blocks = [
        str(m.content)
        for m in messages
        if isinstance(m, SystemMessage) and "<untrusted_memories>" in str(m.content)
    ]
    return {"content": "SEEN: " + (" | ".join(blocks) if blocks else "no memories")}
