"""A thread's pseudonym maps, kept in its state so answers are stored as the user sees them.

The model only ever sees tokens such as ``<PERSON_1>`` for what minimisation replaced
(``memory.minimisation``). Its reply is restored before it is stored (``restore_message``),
so the thread's history, its state as the API shows it, the run's events and its
``final_message`` all show the user's own values. Before the next model call the values in
earlier answers are put back into tokens (``pseudonymise_history``), so they still never
reach a provider. The map that does both is saved in the state under ``pseudonyms``, per
tenant and user (``{tenant: {user: {token: value}}}``), which also keeps each token
meaning the same value across the thread's runs. Only the entry of the run's principal is
ever read; a malformed entry (the state can be written through the API) is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from identity import Principal
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


def _values_pattern(mapping: PseudonymMap) -> tuple[re.Pattern[str], dict[str, str]]:
    by_value = {value: token for token, value in mapping.tokens.items()}
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


def pseudonymise_history(messages: Sequence[Any], mapping: PseudonymMap | None) -> list[Any]:
    """The conversation as a provider may see it: in AI messages (restored when they were
    stored) the values ``mapping`` holds are tokens again. Other messages are unchanged."""
    if mapping is None or not mapping.tokens:
        return messages if isinstance(messages, list) else list(messages)
    pattern, by_value = _values_pattern(mapping)

    def change(text: str) -> str:
        return pattern.sub(lambda m: by_value[m.group()], text)

    out: list[Any] = []
    for message in messages:
        if getattr(message, "type", None) == "ai":
            content = _map_content(message.content, change)
            if content != message.content:
                message = message.model_copy(update={"content": content})
        out.append(message)
    return out


def restore_message(message: Any, mapping: PseudonymMap | None) -> Any:
    """A copy of the model's reply with its text content restored (tool-call arguments
    keep their tokens: the tools receive what the model wrote)."""
    if mapping is None or not mapping.tokens:
        return message
    content = _map_content(message.content, lambda text: restore(text, mapping))
    if content == message.content:
        return message
    return message.model_copy(update={"content": content})
