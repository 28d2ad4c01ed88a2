"""Pseudonyms put back in a run's events before they leave for the client.

The model sees ``<PERSON_1>`` where a recalled memory named the user (``memory.nodes``) or
the user typed personal data (``memory.minimisation``), and writes the token in its
answer. The agent stores the reply restored (``memory.thread_pseudonyms``); this module
restores what is streamed while the model writes (``messages`` events, token by token)
and, as a safety net, the AI messages inside
``values``, ``updates``, ``debug`` and ``end`` events (leaving out the private
``pseudonyms`` channel), so a chat frontend shows the user's own values and what it
streamed agrees with the thread's state. The runner applies it where
events are recorded in the run's event log (``runtime.events.EventLog``), so a stream
rejoined with ``Last-Event-ID`` replays the same restored events.

The runner applies it to every agent run, with or without long-term memory: personal
data the user typed is minimised too (``memory.minimisation.minimise_new_input``). Only the
run's own map is used: ``StreamRestorer`` reads the map of one
``memory.thread_pseudonyms.RunPseudonyms`` (made afresh for each run) for the run's
principal, at the time of each event, since the model node fills it during the run. A run
with no pseudonyms pays one dict lookup per event.

A token split across chunks (``"<PER"`` then ``"SON_1> ok"``) is handled by holding back
the end of a chunk only while it is the beginning of a token the map knows; it goes out
with the message's next chunk, or when the message ends (its last chunk, or the next event
that is not a ``messages`` event of the run, such as the node's ``updates`` or the run's
``end``), as an extra chunk of the same message.

Tool calls stream the same way: each piece of a call's arguments (``tool_call_chunks``,
per call index) is restored, with values escaped for the JSON string they land in, and the
start of a token held back until the call's next piece; what LangChain derives from the
pieces (``tool_calls``, ``invalid_tool_calls``) and the provider's raw form in
``additional_kwargs`` follow them, so the arguments a client accumulates show the values
that tools, reviewers and the stored history see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from langchain_core.messages import AIMessageChunk

from identity import Principal
from memory.thread_pseudonyms import STATE_KEY as PSEUDONYMS_KEY
from memory.thread_pseudonyms import restore_tool_calls_data
from privacy import PseudonymMap, restore

Emitted = tuple[str, Any]
"""(event name, JSON-able data) as the event log records it."""

_AI_TYPES = frozenset({"ai", "AIMessageChunk"})
_EMPTY_CHUNK_FIELDS: dict[str, Any] = {
    "additional_kwargs": {},
    "response_metadata": {},
    "tool_calls": [],
    "invalid_tool_calls": [],
    "tool_call_chunks": [],
    "usage_metadata": None,
}
_TOKEN = re.compile(r"<[A-Z_]+_\d+>")
_TOOL_CALL = "tool_call"
"""First item of the held-tail index of a tool call's arguments: ``(_TOOL_CALL, index)``."""


def token_prefixes(tokens: Iterable[str]) -> frozenset[str]:
    """Every proper prefix of every token (``"<"``, ``"<P"``, … ``"<PERSON_1"``)."""
    return frozenset(token[:end] for token in tokens for end in range(1, len(token)))


def split_held(text: str, prefixes: frozenset[str]) -> tuple[str, str]:
    """``text`` as (what may go out now, the tail to hold back).

    The tail is held only when it is a proper prefix of a known token: tokens start with
    the only ``<`` they contain, so it can only begin at the last ``<`` of ``text``.
    Ordinary text (including a ``<`` that cannot start a known token) is never held.
    """
    start = text.rfind("<")
    if start < 0 or text[start:] not in prefixes:
        return text, ""
    return text[:start], text[start:]


def restore_content(content: Any, mapping: PseudonymMap) -> Any:
    """Message content (a string, or a list of blocks whose ``text`` blocks are restored)
    with the tokens ``mapping`` knows replaced by their values; unchanged content is
    returned as it is."""
    if isinstance(content, str):
        return restore(content, mapping) if "<" in content else content
    if isinstance(content, list):
        return [_restore_block(block, mapping) for block in content]
    return content


def restore_json_piece(text: str, mapping: PseudonymMap) -> str:
    """A piece of a tool call's arguments as streamed (JSON text, perhaps cut anywhere)
    with the tokens ``mapping`` knows replaced by their values, escaped as inside a JSON
    string (a quote, backslash or newline in a value keeps the arguments valid JSON)."""
    if "<" not in text:
        return text

    def value(match: re.Match[str]) -> str:
        found = mapping.tokens.get(match.group())
        return match.group() if found is None else json.dumps(found, ensure_ascii=False)[1:-1]

    return _TOKEN.sub(value, text)


def _restore_block(block: Any, mapping: PseudonymMap) -> Any:
    if isinstance(block, str):
        return restore_content(block, mapping)
    if _is_text_block(block):
        return {**block, "text": restore_content(block["text"], mapping)}
    return block


def restore_values(value: Any, mapping: PseudonymMap) -> Any:
    """JSON-able event data with the content of every AI message in it (and any
    ``final_message``) restored. Tool calls, tool results and human messages are left as
    they are: these events come from the state, whose tool calls were stored restored
    (``memory.thread_pseudonyms.restore_message``), and the user's own words are theirs.
    The private ``pseudonyms`` channel (in a node's ``updates``) is left out."""
    if isinstance(value, dict):
        if value.get("type") in _AI_TYPES and "content" in value:
            return {**value, "content": restore_content(value["content"], mapping)}
        out = {
            key: restore_values(item, mapping)
            for key, item in value.items()
            if key != PSEUDONYMS_KEY
        }
        final = out.get("final_message")
        if isinstance(final, str):
            out["final_message"] = restore_content(final, mapping)
        return out
    if isinstance(value, list):
        return [restore_values(item, mapping) for item in value]
    return value


def without_private(event: str, data: Any) -> Any:
    """Event data without the private ``pseudonyms`` channel, for a run whose map is still
    empty (a thread's saved map is read at its first model call, after the run's first
    ``values`` event): LangGraph streams every channel in ``values`` (top level) and
    ``debug`` events, whatever the graph's output schema says."""
    if event == "values" or event.startswith("values|"):
        if isinstance(data, dict) and PSEUDONYMS_KEY in data:
            return {key: item for key, item in data.items() if key != PSEUDONYMS_KEY}
        return data
    if event == "debug" or event.startswith("debug|"):
        return _strip_private(data)
    return data


def _strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strip_private(item) for key, item in value.items() if key != PSEUDONYMS_KEY}
    if isinstance(value, list):
        return [_strip_private(item) for item in value]
    return value


class _Held:
    """A message's held-back tail: what is needed to send it later as its own chunk."""

    __slots__ = ("event", "index", "message", "metadata", "text")

    def __init__(
        self, event: str, message: dict[str, Any], metadata: Any, index: Any, text: str
    ) -> None:
        self.event = event
        self.message = message
        self.metadata = metadata
        self.index = index
        self.text = text

    def as_chunk(self) -> Emitted:
        if isinstance(self.index, tuple):  # a tool call's arguments: (_TOOL_CALL, index)
            piece = {
                "name": None,
                "args": self.text,
                "id": None,
                "index": self.index[1],
                "type": "tool_call_chunk",
            }
            empty = [] if isinstance(self.message.get("content"), list) else ""
            extra = self.message.get("additional_kwargs")
            raw = isinstance(extra, dict) and isinstance(extra.get("tool_calls"), list)
            base = {**self.message, **_EMPTY_CHUNK_FIELDS, "content": empty}
            if raw:  # the provider's raw form, as the message's other chunks carry it
                raw_piece = {"index": self.index[1], "function": {"arguments": self.text}}
                base["additional_kwargs"] = {"tool_calls": [raw_piece]}
            return self.event, [_with_tool_pieces(base, [piece]), self.metadata]
        content: Any = self.text
        if self.index is not _STRING:
            block: dict[str, Any] = {"type": "text", "text": self.text}
            if self.index is not None:
                block["index"] = self.index
            content = [block]
        chunk = {**self.message, **_EMPTY_CHUNK_FIELDS, "content": content}
        return self.event, [chunk, self.metadata]


_STRING = object()
"""The ``index`` of a held tail of string content (list content uses the block's index)."""


class StreamRestorer:
    """Restores one run's events with the map ``lookup`` returns at each event (None or
    an empty map: the event goes out unchanged, but for the private channel, which is
    never sent).

    ``outgoing(event, data)`` returns the events to record in its place: held tails of
    earlier messages first (when ``event`` ends them), then the event, restored.
    """

    def __init__(self, lookup: Callable[[], PseudonymMap | None]) -> None:
        self._lookup = lookup
        self._held: dict[tuple[str, Any, Any], _Held] = {}
        self._prefixes: frozenset[str] = frozenset()
        self._prefixes_for = 0

    def outgoing(self, event: str, data: Any) -> Sequence[Emitted]:
        mapping = self._lookup()
        if mapping is None or not mapping.tokens:
            return ((event, without_private(event, data)),)
        if event == "messages" or event.startswith("messages|"):
            return self._message_event(event, data, mapping)
        out = self.flush()
        out.append((event, restore_values(data, mapping)))
        return out

    def flush(self) -> list[Emitted]:
        """Every held tail as a chunk of its message (the messages ended)."""
        held = [item.as_chunk() for item in self._held.values()]
        self._held.clear()
        return held

    def _known_prefixes(self, mapping: PseudonymMap) -> frozenset[str]:
        # Tokens are only ever added to a map, so its size says whether this is current.
        if self._prefixes_for != len(mapping.tokens):
            self._prefixes = token_prefixes(mapping.tokens)
            self._prefixes_for = len(mapping.tokens)
        return self._prefixes

    def _message_event(self, event: str, data: Any, mapping: PseudonymMap) -> list[Emitted]:
        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], dict)):
            return [(event, restore_values(data, mapping))]
        message, metadata = data
        if message.get("type") not in _AI_TYPES:
            return [(event, data)]
        if message.get("type") == "ai":  # a whole message (not streamed): nothing to hold
            self._take_held(event, message.get("id"))
            # The model's own reply, as it wrote it: its tool calls are restored here.
            whole = restore_tool_calls_data(restore_values(message, mapping), mapping)
            return [(event, [whole, metadata])]
        ends = message.get("chunk_position") == "last" or bool(
            (message.get("response_metadata") or {}).get("finish_reason")
        )
        prefixes = frozenset() if ends else self._known_prefixes(mapping)
        content = message.get("content")
        if isinstance(content, str):
            content = self._chunk_text(event, message, metadata, _STRING, content, prefixes)
        elif isinstance(content, list):
            content = [
                {
                    **block,
                    "text": self._chunk_text(
                        event, message, metadata, block.get("index"), block["text"], prefixes
                    ),
                }
                if _is_text_block(block)
                else block
                for block in content
            ]
        chunk = {**message, "content": content}
        pieces = message.get("tool_call_chunks")
        if isinstance(pieces, list) and pieces:
            ready = [
                self._tool_piece(event, message, metadata, item, prefixes, mapping)
                for item in pieces
            ]
            if ready != pieces:
                chunk = _with_tool_pieces(chunk, ready)
        else:
            chunk = restore_tool_calls_data(chunk, mapping)
        out: list[Emitted] = [(event, [chunk, metadata])]
        if ends:  # held tails of the message's other blocks end with it
            out += [held.as_chunk() for held in self._take_held(event, message.get("id"))]
        return [(name, _restored_chunk(item, mapping)) for name, item in out]

    def _take_held(self, event: str, message_id: Any) -> list[_Held]:
        keys = [key for key in self._held if key[0] == event and key[1] == message_id]
        return [self._held.pop(key) for key in keys]

    def _tool_piece(
        self,
        event: str,
        message: dict[str, Any],
        metadata: Any,
        item: Any,
        prefixes: frozenset[str],
        mapping: PseudonymMap,
    ) -> Any:
        """A tool-call chunk with its piece of arguments restored, after the call's held
        tail and without a new one. The index says which call a piece continues; a piece
        without one is a whole call (nothing held)."""
        if not isinstance(item, dict) or not isinstance(item.get("args"), str):
            return item
        index = item.get("index")
        held = prefixes if index is not None else frozenset()
        args = self._chunk_text(event, message, metadata, (_TOOL_CALL, index), item["args"], held)
        return {**item, "args": restore_json_piece(args, mapping)}

    def _chunk_text(
        self,
        event: str,
        message: dict[str, Any],
        metadata: Any,
        index: Any,
        text: str,
        prefixes: frozenset[str],
    ) -> str:
        """The chunk's text with the message's held tail in front and a new tail (the
        start of a token) held back; restored by the caller."""
        key = (event, message.get("id"), index)
        before = self._held.pop(key, None)
        if before is not None:
            text = before.text + text
        ready, tail = split_held(text, prefixes) if prefixes else (text, "")
        if tail:
            self._held[key] = _Held(event, message, metadata, index, tail)
        return ready


def _is_text_block(block: Any) -> bool:
    return (
        isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )


def _with_tool_pieces(message: dict[str, Any], pieces: list[Any]) -> dict[str, Any]:
    """``message`` (a chunk's JSON form) carrying ``pieces`` as its tool-call chunks, with
    what LangChain derives from them (``tool_calls``, ``invalid_tool_calls``) derived again
    and the provider's raw form in ``additional_kwargs`` given the same pieces by index."""
    out = {**message, "tool_call_chunks": pieces}
    try:
        chunks: list[Any] = [piece for piece in pieces if isinstance(piece, dict)]
        derived = AIMessageChunk(content="", tool_call_chunks=chunks)
    except (TypeError, ValueError):  # not LangChain's shape: keep what the chunk had
        pass
    else:
        out["tool_calls"] = [dict(call) for call in derived.tool_calls]
        out["invalid_tool_calls"] = [dict(call) for call in derived.invalid_tool_calls]
    extra = message.get("additional_kwargs")
    raw_calls = extra.get("tool_calls") if isinstance(extra, dict) else None
    if isinstance(extra, dict) and isinstance(raw_calls, list):
        by_index = {
            piece.get("index"): piece.get("args") for piece in pieces if isinstance(piece, dict)
        }
        out["additional_kwargs"] = {
            **extra,
            "tool_calls": [
                {**raw, "function": {**raw["function"], "arguments": by_index[raw.get("index")]}}
                if isinstance(raw, dict)
                and isinstance(raw.get("function"), dict)
                and raw.get("index") in by_index
                else raw
                for raw in raw_calls
            ],
        }
    return out


def _restored_chunk(data: list[Any], mapping: PseudonymMap) -> list[Any]:
    message, metadata = data
    return [{**message, "content": restore_content(message["content"], mapping)}, metadata]


class PseudonymSource(Protocol):
    """What holds a run's maps: ``memory.thread_pseudonyms.RunPseudonyms`` (every agent
    run) or ``memory.nodes.AgentMemory``."""

    def pseudonyms_of(self, principal: Principal) -> PseudonymMap | None: ...


def event_restorer(source: PseudonymSource, principal: Principal) -> StreamRestorer:
    """The restorer of one run: ``source`` holds the run's own maps and ``principal`` is
    its requester, so only that user's pseudonyms from that run are used."""
    return StreamRestorer(lambda: source.pseudonyms_of(principal))
