"""Offline token counts and fitting a conversation into a context window.

tiktoken downloads its encodings on first use, which fails offline, and Gemini has no
local tokenizer at all; so counts here are a deliberate over-estimate (about 3.5
characters per token for text, 4 tokens of framing per message, JSON size for tool
calls). Budgets and fitting err on the safe side; the provider's own ``usage_metadata``
is what gets billed and recorded after the call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage

CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD = 4
SUMMARY_PREFIX = "Summary of the earlier conversation (older turns were condensed to fit):"

Summariser = Callable[[list[BaseMessage], int], Awaitable[str]]
"""Condenses ``messages`` into text of at most about ``max_tokens`` tokens."""


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_message_tokens(message: BaseMessage) -> int:
    content = message.content
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    tokens = MESSAGE_OVERHEAD + estimate_text_tokens(text)
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]
        tokens += estimate_text_tokens(json.dumps(calls, default=str))
    return tokens


def estimate_tokens(messages: Sequence[BaseMessage], tools: Sequence[Any] = ()) -> int:
    """Estimated prompt tokens of ``messages`` plus tool definitions."""
    total = sum(estimate_message_tokens(m) for m in messages)
    if tools:
        total += estimate_text_tokens(json.dumps(list(tools), default=str))
    return total


def _units(messages: Sequence[BaseMessage]) -> list[list[BaseMessage]]:
    """Messages grouped so that an AI message with tool calls and the tool results that
    answer it stay together: providers reject a result without its call and vice versa."""
    units: list[list[BaseMessage]] = []
    for message in messages:
        if isinstance(message, ToolMessage) and units and _is_call_unit(units[-1]):
            units[-1].append(message)
        else:
            units.append([message])
    return units


def _is_call_unit(unit: list[BaseMessage]) -> bool:
    head = unit[0]
    return isinstance(head, AIMessage) and bool(head.tool_calls)


def fit_messages(
    messages: Sequence[BaseMessage], budget: int, tools: Sequence[Any] = ()
) -> list[BaseMessage] | None:
    """The newest part of the conversation that fits ``budget`` prompt tokens.

    System messages are always kept; older turns are dropped whole (a tool call with its
    results is one unit); the newest unit is always kept. None when even that does not fit.
    """
    if estimate_tokens(messages, tools) <= budget:
        return list(messages)
    system = [m for m in messages if isinstance(m, SystemMessage)]
    rest = [m for m in messages if not isinstance(m, SystemMessage)]
    units = _units(rest)
    used = estimate_tokens(system, tools)
    kept: list[list[BaseMessage]] = []
    for unit in reversed(units):
        cost = sum(estimate_message_tokens(m) for m in unit)
        if used + cost > budget:
            break
        kept.append(unit)
        used += cost
    if not kept:
        return None
    kept.reverse()
    # A conversation must not open with tool results or an assistant turn whose user turn
    # was dropped; the leading AI unit is kept (providers accept it) but never a bare result.
    return [*system, *(m for unit in kept for m in unit)]


def _split(
    messages: Sequence[BaseMessage], budget: int, tools: Sequence[Any]
) -> tuple[list[BaseMessage], list[BaseMessage], list[BaseMessage]] | None:
    """(system, dropped, kept) of the trim ``fit_messages`` would make; None: nothing fits."""
    system: list[BaseMessage] = [m for m in messages if isinstance(m, SystemMessage)]
    units = _units([m for m in messages if not isinstance(m, SystemMessage)])
    used = estimate_tokens(system, tools)
    count = 0
    for unit in reversed(units):
        cost = sum(estimate_message_tokens(m) for m in unit)
        if used + cost > budget:
            break
        used += cost
        count += 1
    if count == 0:
        return None
    dropped = [m for unit in units[: len(units) - count] for m in unit]
    kept = [m for unit in units[len(units) - count :] for m in unit]
    return system, dropped, kept


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """``text`` cut to about ``max_tokens`` estimated tokens (on a word boundary if near)."""
    limit = int(max(max_tokens, 0) * CHARS_PER_TOKEN)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut).rstrip() + " …"


def _line(message: BaseMessage) -> str:
    content = message.content
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    text = " ".join(text.split())
    first = text.split(". ")[0]
    first = first if len(first) <= 240 else first[:240] + " …"
    if isinstance(message, ToolMessage):
        return f"- tool result ({message.name or message.tool_call_id}): {first}"
    if isinstance(message, AIMessage):
        calls = ", ".join(
            f"{c['name']}({truncate_to_tokens(json.dumps(c['args'], default=str), 20)})"
            for c in message.tool_calls
        )
        said = f"assistant: {first}" if first else "assistant"
        return f"- {said}" + (f" [called {calls}]" if calls else "")
    return f"- {message.type}: {first}"


async def extractive_summary(messages: list[BaseMessage], max_tokens: int) -> str:
    """A deterministic, offline summary: one line per message (its first sentence, tool
    calls by name), the oldest line (usually the original request) and as many of the
    newest lines as fit ``max_tokens``."""
    lines = [_line(m) for m in messages]
    if not lines:
        return ""
    chosen = [lines[0]]
    used = estimate_text_tokens(lines[0]) + 1
    tail: list[str] = []
    for line in reversed(lines[1:]):
        cost = estimate_text_tokens(line) + 1
        if used + cost > max_tokens:
            break
        tail.append(line)
        used += cost
    skipped = len(lines) - 1 - len(tail)
    if skipped:
        chosen.append(f"- … {skipped} more message(s) …")
    chosen += reversed(tail)
    return truncate_to_tokens("\n".join(chosen), max_tokens)


async def fit_or_summarise(
    messages: Sequence[BaseMessage],
    budget: int,
    tools: Sequence[Any] = (),
    summariser: Summariser | None = None,
    *,
    max_drop_fraction: float = 0.5,
    summary_fraction: float = 0.2,
) -> list[BaseMessage] | None:
    """Fit ``messages`` into ``budget``: trim older turns as ``fit_messages`` does, but
    when trimming alone would drop more than ``max_drop_fraction`` of the conversation's
    tokens, replace the dropped turns with a summary (a system message after the others,
    at most ``summary_fraction`` of the budget). Tool calls and their results are kept or
    dropped together. ``summariser`` defaults to ``extractive_summary``; if it fails, the
    extractive one is used. None when even the newest turn does not fit.
    """
    if estimate_tokens(messages, tools) <= budget:
        return list(messages)
    plain = _split(messages, budget, tools)
    if plain is None:
        return None
    system, dropped, kept = plain
    conversation = sum(estimate_message_tokens(m) for m in [*dropped, *kept])
    dropped_tokens = sum(estimate_message_tokens(m) for m in dropped)
    if conversation == 0 or dropped_tokens / conversation <= max_drop_fraction:
        return [*system, *kept]
    summary_tokens = max(int(budget * summary_fraction), 32)
    room = _split(messages, budget - summary_tokens - MESSAGE_OVERHEAD, tools)
    if room is None:
        return [*system, *kept]
    system, dropped, kept = room
    text = ""
    if summariser is not None:
        try:
            text = await summariser(dropped, summary_tokens - 16)
        except Exception:
            text = ""
    if not text.strip():
        text = await extractive_summary(dropped, summary_tokens - 16)
    body = truncate_to_tokens(f"{SUMMARY_PREFIX}\n{text.strip()}", summary_tokens)
    summary = SystemMessage(body, response_metadata={"relaygraph_summary": len(dropped)})
    return [*system, summary, *kept]
