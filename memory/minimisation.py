"""Minimisation before text leaves our boundary: pseudonymise personal data in what is sent
to a model provider, and put it back in what comes back.

The policy says at which sensitivities a text is pseudonymised (``special`` by default, GDPR
Art. 5(1)(c) and 9): every finding in such a text (names, e-mails, national ids, and the
special-category terms themselves) becomes a stable token such as ``<EMAIL_1>``. The
``PseudonymMap`` is the only way back; it stays with the run (e.g. in graph state or the
caller's memory) and is never sent to the provider. ``restore_text`` undoes the tokens in the
model's answer before a person sees it.

In every agent run (with or without long-term memory) the model node minimises what the
user wrote (``minimise_new_input``) into the run's map (``memory.thread_pseudonyms
.RunPseudonyms``, the same one recalled memories use), so personal data typed in a message
reaches the provider as tokens too, and restores the reply with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from privacy import (
    DEFAULT_OPTIONS,
    PseudonymMap,
    ScanOptions,
    Sensitivity,
    pseudonymise,
    restore,
    scan_text,
)


@dataclass(frozen=True)
class MinimisationPolicy:
    """``levels``: the sensitivities at which a text is pseudonymised before a provider
    sees it. Empty turns minimisation off; add ``financial`` or ``personal`` to widen it."""

    levels: frozenset[Sensitivity] = frozenset({Sensitivity.SPECIAL})
    scan_options: ScanOptions = DEFAULT_OPTIONS

    @classmethod
    def from_names(cls, names: Sequence[str]) -> MinimisationPolicy:
        """From setting values such as ``["special", "financial"]``.

        Raises:
            ValueError: an unknown sensitivity name.
        """
        return cls(levels=frozenset(Sensitivity(name) for name in names))


DEFAULT_POLICY = MinimisationPolicy()


def minimise_text(
    text: str, policy: MinimisationPolicy = DEFAULT_POLICY, mapping: PseudonymMap | None = None
) -> tuple[str, PseudonymMap]:
    """``text`` as a provider may see it, and the (updated) map to restore it.

    Text below the policy's levels is returned unchanged.
    """
    mapping = mapping if mapping is not None else PseudonymMap()
    if not policy.levels or not text:
        return text, mapping
    scan = scan_text(text, policy.scan_options)
    if scan.sensitivity not in policy.levels:
        return text, mapping
    return pseudonymise(text, scan.findings, mapping)


def minimise_messages(
    messages: Sequence[Any],
    policy: MinimisationPolicy = DEFAULT_POLICY,
    mapping: PseudonymMap | None = None,
) -> tuple[list[Any], PseudonymMap]:
    """Copies of LangChain messages (or ``{"role", "content"}`` dicts) with text content
    minimised; content blocks of type ``text`` are minimised one by one, other blocks are
    left to the content scanner (``privacy.scan_content``), which holds what it cannot read.
    """
    mapping = mapping if mapping is not None else PseudonymMap()
    out: list[Any] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else message.content
        new_content, mapping = _minimise_content(content, policy, mapping)
        if new_content is content:
            out.append(message)
        elif isinstance(message, dict):
            out.append({**message, "content": new_content})
        else:
            out.append(message.model_copy(update={"content": new_content}))
    return out, mapping


def _minimise_content(
    content: Any, policy: MinimisationPolicy, mapping: PseudonymMap
) -> tuple[Any, PseudonymMap]:
    if isinstance(content, str):
        new, mapping = minimise_text(content, policy, mapping)
        return (content if new == content else new), mapping
    if isinstance(content, list):
        changed = False
        blocks: list[Any] = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                new, mapping = minimise_text(str(block.get("text", "")), policy, mapping)
                if new != block.get("text"):
                    block = {**block, "text": new}
                    changed = True
            elif isinstance(block, str):
                new, mapping = minimise_text(block, policy, mapping)
                changed = changed or new != block
                block = new
            blocks.append(block)
        return (blocks if changed else content), mapping
    return content, mapping


def minimise_new_input(
    messages: Sequence[Any], policy: MinimisationPolicy, mapping: PseudonymMap
) -> list[Any]:
    """The conversation with the user's messages that no model has answered yet (those
    after the last AI message) minimised into ``mapping``, which is updated in place: the
    values found there get tokens the run's other messages, its stream and its stored
    answers share. Earlier user messages were new once: their values are in the thread's
    saved map, which ``memory.thread_pseudonyms.pseudonymise_history`` applies to the whole
    history before every call, so each message is scanned once, not at every call.
    The messages themselves are not changed (copies are returned where text changed)."""
    out = list(messages)
    if not policy.levels:
        return out
    start = next(
        (position + 1 for position in range(len(out) - 1, -1, -1) if _role(out[position]) == "ai"),
        0,
    )
    for position in range(start, len(out)):
        if _role(out[position]) == "human":
            (out[position],), _ = minimise_messages([out[position]], policy, mapping)
    return out


def _role(message: Any) -> str | None:
    """``human``, ``ai`` or another type of a LangChain message or ``{"role"}`` dict."""
    if isinstance(message, dict):
        role = message.get("role") or message.get("type")
        return {"user": "human", "assistant": "ai"}.get(str(role), role)
    kind = getattr(message, "type", None)
    return "ai" if kind == "AIMessageChunk" else kind


def restore_text(text: str, mapping: PseudonymMap) -> str:
    """Put the original values back into a provider's answer (unknown tokens stay)."""
    return restore(text, mapping)
