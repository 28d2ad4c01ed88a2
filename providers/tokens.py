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
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage

CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD = 4


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
