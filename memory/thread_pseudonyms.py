"""A thread's pseudonym maps, kept in its state so answers are stored as the user sees them.

The model only ever sees tokens such as ``<PERSON_1>`` for what minimisation replaced
(``memory.minimisation``). Its reply is restored before it is stored (``restore_message``),
so the thread's history, its state as the API shows it, the run's events and its
``final_message`` all show the user's own values. Tool-call arguments are restored too
(``restore_message``): tools run inside our boundary, so the gate, approval previews and
interrupts shown to reviewers, the ledger, the audit and the tool itself see the value the
user meant, never ``<EMAIL_1>``. Before the next model call the values are put back into
tokens in the whole history (``pseudonymise_history``: every message's text, tool-call
arguments, and tool results that carry the values), so they still never reach a provider.
The map that does both is saved in the state under ``pseudonyms``, per tenant and user
(``{tenant: {user: {token: value}}}``), which also keeps each token meaning the same value
across the thread's runs. Only the entry of the run's principal is
ever read; a malformed entry (the state can be written through the API) is ignored.

Every agent run has one ``RunPseudonyms`` (made by the runner, in its ``RunContext``): the
minimisation policy and the run's map per tenant and user, continued from the saved one.
The model node minimises the user's new messages into it, restores replies with it, and
the runner restores the run's events with it (``memory.restore_stream``), whether or not
the assistant has long-term memory; with memory, the recalled block's map is the same one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from identity import Principal
from memory.minimisation import DEFAULT_POLICY, MinimisationPolicy
from privacy import PseudonymMap, restore

STATE_KEY = "pseudonyms"
Saved = dict[str, dict[str, dict[str, str]]]
"""The state value: ``{tenant: {user: {token: value}}}``."""


def saved_map(state: Mapping[str, Any], principal: Principal) -> PseudonymMap | None:
    """The map saved in ``state`` for ``principal`` (None when there is none or it is not
    a valid map)."""
    tokens = _entry(state.get(STATE_KEY), principal)
    if not isinstance(tokens, dict) or not tokens:
        return None
    if not all(isinstance(value, str) and value for value in tokens.values()):
        return None
    try:
        return PseudonymMap.from_dict({"tokens": tokens})
    except ValueError:
        return None


def saved_update(
    state: Mapping[str, Any], principal: Principal, mapping: PseudonymMap
) -> Saved | None:
    """The new ``pseudonyms`` state value when ``mapping`` knows tokens that ``state`` has
    not saved for ``principal``; None when nothing changed (no write)."""
    saved = state.get(STATE_KEY)
    saved = saved if isinstance(saved, dict) else {}
    if not mapping.tokens or _entry(saved, principal) == mapping.tokens:
        return None
    tenant = saved.get(principal.tenant)
    tenant = dict(tenant) if isinstance(tenant, dict) else {}
    tenant[principal.user] = dict(mapping.tokens)
    return {**saved, principal.tenant: tenant}


def _entry(saved: Any, principal: Principal) -> Any:
    tenant = saved.get(principal.tenant) if isinstance(saved, dict) else None
    return tenant.get(principal.user) if isinstance(tenant, dict) else None


@dataclass
class RunPseudonyms:
    """One run's pseudonyms: the ``policy`` that decides what is minimised before a model
    provider sees it, and the run's map per tenant and user. A map starts from the one the
    thread's state saved for that principal (tokens keep their numbers across runs) and is
    only ever read for that principal: another user or thread never gets it."""

    policy: MinimisationPolicy = DEFAULT_POLICY
    _maps: dict[tuple[str, str], PseudonymMap] = field(init=False, repr=False, default_factory=dict)

    def map_for(
        self,
        state: Mapping[str, Any],
        principal: Principal,
        continuing: PseudonymMap | None = None,
    ) -> PseudonymMap:
        """The run's map for ``principal``, made at the first call: ``continuing`` when
        given (the map this run's recalled memories already used, itself continued from
        ``state``), else the one ``state`` saved, else an empty one. Later calls return
        that same map, which minimisation updates in place."""
        key = (principal.tenant, principal.user)
        mapping = self._maps.get(key)
        if mapping is None:
            if continuing is None:
                continuing = saved_map(state, principal) or PseudonymMap()
            mapping = self._maps[key] = continuing
        return mapping

    def pseudonyms_of(self, principal: Principal) -> PseudonymMap | None:
        """The run's map for ``principal`` (None before the first model call, and for
        anyone else): read by ``memory.restore_stream`` at each event."""
        return self._maps.get((principal.tenant, principal.user))


def _values_pattern(mapping: PseudonymMap) -> tuple[re.Pattern[str], dict[str, str]]:
    by_value = {value: token for token, value in mapping.tokens.items()}
    # Tool results are JSON text: a value with a quote, backslash, newline or (ASCII-escaped)
    # non-ASCII letter appears there escaped, and must become its token all the same.
    for value, token in list(by_value.items()):
        for escaped in (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
            by_value.setdefault(escaped, token)
    # Longest first, whole words only: "Maria Jensen" before "Maria", never inside "Marian".
    alternatives = "|".join(re.escape(value) for value in sorted(by_value, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)"), by_value


def pseudonymise_values(text: str, mapping: PseudonymMap) -> str:
    """``text`` with every value ``mapping`` holds replaced by its token."""
    if not mapping.tokens or not text:
        return text
    pattern, by_value = _values_pattern(mapping)
    return pattern.sub(lambda m: by_value[m.group()], text)


def _map_content(content: Any, change: Any) -> Any:
    if isinstance(content, str):
        return change(content)
    if isinstance(content, list):
        return [
            {**block, "text": change(block["text"])}
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
            else change(block)
            if isinstance(block, str)
            else block
            for block in content
        ]
    return content


Change = Callable[[str], str]


def _map_args(value: Any, change: Change) -> Any:
    """Tool-call arguments with ``change`` applied to every string in them (dict keys too),
    however deeply nested in lists and dicts; numbers, booleans and None are kept."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {
            (change(key) if isinstance(key, str) else key): _map_args(item, change)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_map_args(item, change) for item in value]
    return value


def _map_json_text(text: Any, change: Change) -> Any:
    """Arguments as the provider sent them (a JSON string): mapped as parsed JSON, so an
    escaped value is found and a restored value is escaped; text that is not JSON (a
    broken call) is mapped as text."""
    if not isinstance(text, str) or not text:
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        return change(text)
    mapped = _map_args(parsed, change)
    return text if mapped == parsed else json.dumps(mapped, ensure_ascii=False)


def _map_raw_call(raw: Any, change: Change) -> Any:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or "arguments" not in function:
        return raw
    arguments = _map_json_text(function["arguments"], change)
    if arguments == function["arguments"]:
        return raw
    return {**raw, "function": {**function, "arguments": arguments}}


def _tool_call_update(field_of: Callable[[str], Any], change: Change) -> dict[str, Any]:
    """The fields of an AI message (read with ``field_of``: an attribute of a message or a
    key of its JSON form) whose tool calls' arguments ``change`` alters, mapped: parsed
    (``tool_calls``), as text (``invalid_tool_calls``, ``tool_call_chunks``) and the
    provider's raw form in ``additional_kwargs``."""
    update: dict[str, Any] = {}
    calls = field_of("tool_calls") or []
    mapped_calls = [
        {**call, "args": _map_args(call.get("args"), change)} if isinstance(call, dict) else call
        for call in calls
    ]
    if mapped_calls != calls:
        update["tool_calls"] = mapped_calls
    for name in ("invalid_tool_calls", "tool_call_chunks"):
        items = field_of(name) or []
        mapped = [
            {**item, "args": _map_json_text(item.get("args"), change)}
            if isinstance(item, dict)
            else item
            for item in items
        ]
        if mapped != items:
            update[name] = mapped
    extra = field_of("additional_kwargs")
    raw_calls = extra.get("tool_calls") if isinstance(extra, dict) else None
    if isinstance(extra, dict) and isinstance(raw_calls, list):
        raw_mapped = [_map_raw_call(raw, change) for raw in raw_calls]
        if raw_mapped != raw_calls:
            update["additional_kwargs"] = {**extra, "tool_calls": raw_mapped}
    return update


def _map_message(message: Any, change: Change) -> Any:
    """A copy of ``message`` with ``change`` applied to its text content and, for an AI
    message, to its tool calls' arguments (parsed, invalid and the provider's raw form in
    ``additional_kwargs``); ``message`` itself when nothing changed."""
    update: dict[str, Any] = {}
    content = _map_content(message.content, change)
    if content != message.content:
        update["content"] = content
    if getattr(message, "type", None) in ("ai", "AIMessageChunk"):
        update.update(_tool_call_update(lambda name: getattr(message, name, None), change))
    return message.model_copy(update=update) if update else message


def pseudonymise_history(messages: Sequence[Any], mapping: PseudonymMap | None) -> list[Any]:
    """The conversation as a provider may see it: every value ``mapping`` holds is its token
    again wherever the stored history has it: the text of every message (answers and
    tool-call arguments were stored restored, tool results carry what the tools were given
    or found, and a user may type a value the map hides), and AI messages' tool-call
    arguments. The stored messages are not changed."""
    if mapping is None or not mapping.tokens:
        return messages if isinstance(messages, list) else list(messages)
    pattern, by_value = _values_pattern(mapping)

    def change(text: str) -> str:
        return pattern.sub(lambda m: by_value[m.group()], text)

    return [_map_message(message, change) for message in messages]


def restore_message(message: Any, mapping: PseudonymMap | None) -> Any:
    """A copy of the model's reply with the tokens ``mapping`` knows restored in its text
    and its tool calls' arguments (the gate, reviewers, the ledger, the audit and the tools
    work inside our boundary, on the values the user meant). Unknown tokens stay."""
    if mapping is None or not mapping.tokens:
        return message
    return _map_message(message, lambda text: restore(text, mapping))


def restore_tool_calls_data(message: dict[str, Any], mapping: PseudonymMap) -> dict[str, Any]:
    """The JSON form of an AI message (as events carry it) with the tokens ``mapping`` knows
    restored in its tool calls' arguments: parsed (``tool_calls``), as text
    (``invalid_tool_calls``, ``tool_call_chunks``) and the provider's raw form in
    ``additional_kwargs``; ``message`` itself when nothing changed. Its content is left to
    the caller."""
    update = _tool_call_update(message.get, lambda text: restore(text, mapping))
    return {**message, **update} if update else message
