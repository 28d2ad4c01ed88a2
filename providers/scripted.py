"""A deterministic chat model for tests and the offline demo.

``scripted:PATH.json`` plays a list of turns, ``{"content": str, "tool_calls":
[{"name", "args"}]}``; ``scripted:module:function`` (or
``scripted:/path/file.py:function``) calls ``function(messages)`` for the next
turn. The turn is derived from the messages (the number of AI messages so far),
never from process state, so a run replays identically after a restart, with
the same tool-call ids.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.errors import ModelSpecError, ScriptError

TurnFunction = Callable[[list[BaseMessage]], dict[str, Any]]


class ScriptedToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class ScriptedTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)


def load_script(path: Path) -> list[ScriptedTurn]:
    """Read and validate a JSON script.

    Raises:
        ModelSpecError: the file is missing, not JSON, or not a list of turns.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelSpecError(f"scripted model: script file {path} does not exist") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelSpecError(f"scripted model: script {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise ModelSpecError(
            f"scripted model: script {path} must be a JSON list of turns "
            '({"content": str, "tool_calls": [{"name", "args"}]})'
        )
    try:
        return [ScriptedTurn.model_validate(turn) for turn in raw]
    except ValidationError as exc:
        raise ModelSpecError(f"scripted model: script {path} has a malformed turn: {exc}") from exc


def load_function(target: str) -> TurnFunction:
    """Import ``module:function`` or ``/path/to/file.py:function``.

    Raises:
        ModelSpecError: the module, file or function cannot be found.
    """
    location, sep, name = target.rpartition(":")
    if not sep or not location or not name:
        raise ModelSpecError(f"scripted model: {target!r} is not module:function")
    try:
        if location.endswith(".py"):
            path = Path(location)
            module_spec = importlib.util.spec_from_file_location(f"_scripted_{path.stem}", path)
            if module_spec is None or module_spec.loader is None or not path.exists():
                raise ModelSpecError(f"scripted model: file {path} does not exist")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(location)
    except ModelSpecError:
        raise
    except Exception as exc:
        raise ModelSpecError(f"scripted model: cannot import {location!r}: {exc}") from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ModelSpecError(f"scripted model: {location!r} has no function {name!r}")
    return function  # type: ignore[no-any-return]


def turn_index(messages: Sequence[BaseMessage]) -> int:
    return sum(1 for message in messages if isinstance(message, AIMessage))


def to_ai_message(turn: dict[str, Any] | ScriptedTurn, index: int) -> AIMessage:
    """Build the AI message for turn ``index``, with deterministic tool-call ids.

    Raises:
        ScriptError: the turn does not have the scripted shape.
    """
    try:
        parsed = turn if isinstance(turn, ScriptedTurn) else ScriptedTurn.model_validate(turn)
    except ValidationError as exc:
        raise ScriptError(f"scripted model: turn {index} is malformed: {exc}") from exc
    tool_calls = [
        {
            "name": call.name,
            "args": call.args,
            "id": call.id or f"call_{index}_{position}",
            "type": "tool_call",
        }
        for position, call in enumerate(parsed.tool_calls)
    ]
    return AIMessage(content=parsed.content, tool_calls=tool_calls, id=f"scripted-{index}")


class ScriptedChatModel(BaseChatModel):
    """Plays turns from a JSON script or a Python function; see the module docstring."""

    spec: str
    turns: list[ScriptedTurn] | None = None
    function: TurnFunction | None = None
    structured_answers: bool = False
    """Answer a forced tool call (structured output) with a schema-valid object derived
    from the request (``providers.scripted_structured``) instead of the next turn."""
    forced_tool: dict[str, Any] | None = None
    """The tool a ``bind_tools(..., tool_choice=NAME)`` forced: name and JSON schema."""

    @property
    def _llm_type(self) -> str:
        return "relaygraph-scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"spec": self.spec}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        forced = _forced_name(kwargs.get("tool_choice"))
        if not self.structured_answers or forced is None:
            return self
        for tool in tools:
            function = convert_to_openai_tool(tool)["function"]
            if function["name"] == forced:
                return self.model_copy(update={"forced_tool": function})
        return self

    def next_turn(self, messages: list[BaseMessage]) -> AIMessage:
        index = turn_index(messages)
        if self.forced_tool is not None:
            from providers.scripted_structured import structured_arguments

            args = structured_arguments(self.forced_tool.get("parameters") or {}, messages)
            return to_ai_message(
                {"tool_calls": [{"name": self.forced_tool["name"], "args": args}]}, index
            )
        if self.turns is not None:
            if index >= len(self.turns):
                raise ScriptError(
                    f"scripted model {self.spec}: the script has {len(self.turns)} turns "
                    f"and turn {index + 1} was requested; add turns to the script"
                )
            return to_ai_message(self.turns[index], index)
        assert self.function is not None
        try:
            turn = self.function(list(messages))
        except ScriptError:
            raise
        except Exception as exc:
            raise ScriptError(f"scripted model {self.spec}: the function raised {exc!r}") from exc
        return to_ai_message(turn, index)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self.next_turn(messages)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # JSON scripts answer at once; a turn function may block, so it gets a thread.
        if self.turns is not None:
            message = self.next_turn(messages)
        else:
            message = await asyncio.to_thread(self.next_turn, messages)
        return ChatResult(generations=[ChatGeneration(message=message)])


def build_scripted_model(target: str) -> ScriptedChatModel:
    """Build the scripted model for the part of the spec after ``scripted:``.

    Raises:
        ModelSpecError: the script or function cannot be loaded.
    """
    spec = f"scripted:{target}"
    if target.endswith(".json"):
        return ScriptedChatModel(spec=spec, turns=load_script(Path(target)))
    function = load_function(target)
    return ScriptedChatModel(spec=spec, function=function, structured_answers=function is demo_turn)


def _forced_name(tool_choice: Any) -> str | None:
    """The tool name a ``tool_choice`` forces (``"name"`` or OpenAI's dict form)."""
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "any", "required"):
        return tool_choice
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        return str(name) if name else None
    return None


# --- The offline demo model -------------------------------------------------------------

_QUOTED = re.compile(r"[\"“']([^\"”']+)[\"”']")
_STEP_GOAL = re.compile(r"^Do step \d+:[ \t]*(.+)$", re.M)
_FILLER_WORDS = frozenset(
    "a an the our your my any all some of on in to is are was that this these those "
    "we i me you us please with regarding".split()
)


def _last_human(messages: Sequence[BaseMessage]) -> tuple[int, str]:
    for position in range(len(messages) - 1, -1, -1):
        if isinstance(messages[position], HumanMessage):
            return position, str(messages[position].content)
    return -1, ""


def _instruction(text: str) -> str:
    """What the user message asks for: the goal of a planner step prompt (its last
    ``Do step N: goal`` line; the request and plan around it are context), else the
    whole message."""
    goals = _STEP_GOAL.findall(text)
    return goals[-1].strip() if goals else text


def _key_words(text: str) -> str:
    """``text`` without filler words, so a search matches the notes that mention its
    subject (the notes search wants every word to appear)."""
    words = [w for w in text.split() if w.lower().strip(",;:!?.") not in _FILLER_WORDS]
    return " ".join(words)


def demo_turn(messages: list[BaseMessage]) -> dict[str, Any]:
    """The offline demo model: understands a few note-keeping requests.

    "remember/note X" creates a note, "find/search X" searches, "delete note N"
    (or "forget X") deletes, which waits for a reviewer; anything else is answered
    with a short help text. After a tool result it summarises and stops. In a
    planner step it acts on the step's goal alone.
    """
    position, text = _last_human(messages)
    text = _instruction(text)
    since = messages[position + 1 :]
    results = [m for m in since if isinstance(m, ToolMessage)]
    lowered = text.lower()
    if results:
        last = results[-1]
        if last.status == "error" or str(last.content).startswith("Error"):
            return {"content": f"That did not work: {last.content}"}
        if last.name == "notes_search" and ("delete" in lowered or "forget" in lowered):
            found = json.loads(str(last.content)).get("notes", [])
            already = any(isinstance(m, ToolMessage) and m.name == "notes_delete" for m in since)
            if found and not already:
                return {
                    "content": f"Deleting note {found[0]['id']} ({found[0]['title']!r}).",
                    "tool_calls": [{"name": "notes_delete", "args": {"note_id": found[0]["id"]}}],
                }
            if not found:
                return {"content": "I found no note to delete."}
        return {"content": _summarise(last)}
    quoted = _QUOTED.search(text)
    subject = (quoted.group(1) if quoted else text).strip().rstrip(".")
    if any(word in lowered for word in ("delete", "forget", "remove")):
        note_id = re.search(r"\b(\d+)\b", text)
        if note_id:
            return {
                "content": f"Deleting note {note_id.group(1)}.",
                "tool_calls": [
                    {"name": "notes_delete", "args": {"note_id": int(note_id.group(1))}}
                ],
            }
        query = re.sub(r"(?i)\b(delete|forget|remove|the|note|notes|about)\b", "", subject)
        query = _key_words(query)
        return {
            "content": "Looking for the note first.",
            "tool_calls": [{"name": "notes_search", "args": {"query": query or subject}}],
        }
    if any(word in lowered for word in ("find", "search", "look up", "what do", "recall")):
        query = re.sub(
            r"(?i)\b(find|search|look up|what do you know|recall|notes?|about|for|my|me)\b",
            "",
            subject,
        )
        query = _key_words(query).strip(" ?.") or subject
        return {
            "content": f"Searching my notes for {query!r}.",
            "tool_calls": [{"name": "notes_search", "args": {"query": query, "limit": 5}}],
        }
    if any(word in lowered for word in ("remember", "note", "save", "write down")):
        body = re.sub(
            r"(?i)^(please\s+)?(remember|note|save|write down)( that)?[:\s]*", "", subject
        )
        body = body or subject
        title = body if len(body) <= 60 else body[:57] + "..."
        return {
            "content": "Saving that as a note.",
            "tool_calls": [{"name": "notes_create", "args": {"title": title, "body": body}}],
        }
    return {
        "content": (
            "I am relaygraph's offline demo model. Try: 'remember that the launch is on "
            "Friday', 'find notes about launch', or 'delete the note about launch' "
            "(deleting waits for a reviewer)."
        )
    }


def _summarise(result: ToolMessage) -> str:
    try:
        payload = json.loads(str(result.content))
    except json.JSONDecodeError:
        return f"Done: {result.content}"
    if result.name == "notes_create":
        return f"Saved note {payload.get('id')}: {payload.get('title')!r}."
    if result.name == "notes_search":
        notes = payload.get("notes", [])
        if not notes:
            return "I found no matching notes."
        lines = "; ".join(f"#{n['id']} {n['title']}" for n in notes)
        return f"I found {len(notes)} note(s): {lines}."
    if result.name == "notes_delete":
        return f"Deleted note {payload.get('id')}."
    return f"Done: {result.content}"
