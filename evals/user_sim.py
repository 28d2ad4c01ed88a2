"""Simulated users for multi-turn evals (tau2-bench's user simulator, in two flavours).

``ScriptedUser`` is offline and deterministic: it turns a task's user scenario (its
instructions and, when given, the message history to continue) into scripted user turns,
one fact or request per turn, plus the user-side tool calls the user makes on its own world
(e.g. dismissing a notification after the agent confirms). ``LLMUser`` plays the user with a
chat model from the instructions and says ``###STOP###`` when the task is done (tau2's
convention); ``converse`` runs it against an agent for at most ``max_turns`` turns.

User-side tools act on the ``user`` part of a fixture world; an adapter registers them in
``USER_TOOLS`` (name -> function(world, **args)).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

STOP = "###STOP###"
MAX_TURNS = 10

UserTool = Callable[..., Any]
USER_TOOLS: dict[str, UserTool] = {}
"""User-side tools by name; each takes the fixture world and the call's arguments."""


def apply_user_action(world: dict[str, Any], tool: str, args: dict[str, Any]) -> Any:
    """Raises:
    KeyError: no user tool has that name."""
    return USER_TOOLS[tool](world, **args)


@dataclass
class UserTurn:
    text: str
    actions_after: list[dict[str, Any]] = field(default_factory=list)
    """User-side tool calls (``{"tool", "args"}``) made after the agent answers this turn."""


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_QUOTED_ID = re.compile(r"'([A-Za-z0-9_]+)'")
_TASK_ID = re.compile(r"\btask_\d+\b")


def _first_person(sentence: str) -> str:
    """An instruction sentence ("Request that task_1 be marked…", "Now you want to…",
    "Tell the agent you have…, ask them to…") as the user would say it."""
    text = sentence.strip()
    rules = [
        (r"^Now you want to ", "Now I want to "),
        (r"^You want to ", "I want to "),
        (r"^Request that ", "Please make sure "),
        (r"^Request ", "I would like "),
        (r"^Tell the agent (?:that )?you have ", "I have "),
        (r"^Tell the agent (?:that )?", ""),
        (r"\band ask them to ", "Please "),
        (r"\bask them to ", "please "),
        (r"\byou\b", "I"),
        (r"\byour\b", "my"),
    ]
    for pattern, repl in rules:
        text = re.sub(pattern, repl, text)
    text = re.sub(r"\.\s*Please ", ". Please ", text.replace(" Please ", ". Please "))
    return text[:1].upper() + text[1:]


_ASK = re.compile(r"^(Now you want to|You want to|Request|Tell the agent|Create|Ask)\b")
_USER_TOOL = re.compile(r"\buse (?:the )?([a-z_]+)(?: tool)?\b", re.IGNORECASE)


class ScriptedUser:
    """A deterministic user from a tau2 user scenario's instructions.

    Each request sentence of the instructions (``Request…``, ``Now you want to…``,
    ``Tell the agent…``) becomes a user turn, in order; a sentence telling the user to use a
    user-side tool becomes an action: made before the requests when it only reads
    (``check_notifications``: the facts it reveals, e.g. a task id, are filled into the next
    turn), or after the agent has answered the turn before it (``dismiss_notification``)."""

    def __init__(self, instructions: str, world: dict[str, Any] | None = None) -> None:
        self.instructions = instructions
        self.world = world or {}

    def turns(self) -> list[UserTurn]:
        turns: list[UserTurn] = []
        revealed: list[str] = []
        for sentence in _SENTENCE.split(self.instructions.strip()):
            tool = _USER_TOOL.search(sentence)
            if tool and tool.group(1) in USER_TOOLS:
                name = tool.group(1)
                ids = _QUOTED_ID.findall(sentence)
                if name.startswith("check_"):
                    revealed += self._reveal(name)
                    continue
                args = {"notification_id": ids[0]} if ids else {}
                if turns:
                    turns[-1].actions_after.append({"tool": name, "args": args})
                continue
            if _ASK.match(sentence.strip()):
                text = _first_person(sentence)
                ids = [i for i in revealed if i not in text]
                if ids and "this task" in text:
                    text = text.replace("this task", f"task {ids[0]}")
                turns.append(UserTurn(text))
        return turns

    def _reveal(self, tool: str) -> list[str]:
        """Task ids the user learns from a read-only user tool (its notifications)."""
        found = apply_user_action(self.world, tool, {}) if self.world else []
        return [i for i in _TASK_ID.findall(str(found))]


# --- LLM-backed user ---------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You are playing a user talking to a customer service agent. Follow the instructions "
    "below; reveal information only when the agent needs it, one piece at a time; never "
    "invent facts the instructions do not give. Write only what the user says. When the task "
    f"is done (or cannot be done), reply with exactly {STOP}.\n\nInstructions:\n"
)


class LLMUser:
    """The user played by a chat model (any LangChain chat model, e.g. ``system.model(alias)``);
    the agent's messages are its human turns and its own replies are AI turns."""

    def __init__(self, model: Any, instructions: str, persona: str | None = None) -> None:
        self.model = model
        self.system = SYSTEM_PROMPT + instructions + (f"\n\nPersona: {persona}" if persona else "")

    async def reply(self, transcript: list[tuple[str, str]]) -> str:
        """The user's next message given ``(role, text)`` pairs, role ``user`` or ``agent``."""
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        messages: list[Any] = [SystemMessage(self.system)]
        if not transcript:
            messages.append(HumanMessage("Hi! How can I help you today?"))
        for role, text in transcript:
            messages.append(AIMessage(text) if role == "user" else HumanMessage(text))
        answer = await self.model.ainvoke(messages)
        return str(answer.content).strip()


async def converse(
    user: LLMUser, agent: Callable[[str], Awaitable[str]], max_turns: int = MAX_TURNS
) -> list[tuple[str, str]]:
    """Alternate user and agent until the user says ``###STOP###`` or ``max_turns`` user
    turns were made; returns the transcript (the stop message is not sent to the agent)."""
    transcript: list[tuple[str, str]] = []
    for _ in range(max_turns):
        said = await user.reply(transcript)
        if STOP in said:
            break
        transcript.append(("user", said))
        transcript.append(("agent", await agent(said)))
    return transcript
