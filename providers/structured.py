"""Structured output: the caller passes a pydantic model and gets a validated instance.

The schema is offered as the one tool the model must call (every provider, and the
scripted model, speaks tool calls), so the router's capability check, fallback, usage
and budgets apply as to any call. An answer that fails validation gets one repair
attempt that shows the model its answer and the validation error; a second failure is a
``StructuredOutputError`` carrying both errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ValidationError

from providers.errors import StructuredOutputError

T = TypeVar("T", bound=BaseModel)


def _candidate(reply: AIMessage, name: str) -> Any:
    for call in reply.tool_calls:
        if call["name"] == name:
            return call["args"]
    text = reply.text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return text


async def generate_structured(
    model: BaseChatModel, messages: Sequence[BaseMessage], schema: type[T], **call: Any
) -> T:
    """Ask ``model`` for an instance of ``schema``; ``call`` goes to the router (``call=CallInfo``).

    Raises:
        StructuredOutputError: the answer is invalid, also after one repair attempt.
        ProviderError: the call itself failed (see the router).
    """
    tool = convert_to_openai_tool(schema)
    name = tool["function"]["name"]
    bound = model.bind_tools([schema], tool_choice=name)
    extra = {"structured": True, **call} if _is_router(model) else {}
    history = list(messages)
    errors: list[str] = []
    for attempt in range(2):
        reply = await bound.ainvoke(history, **extra)
        assert isinstance(reply, AIMessage)
        candidate = _candidate(reply, name)
        try:
            return schema.model_validate(candidate)
        except ValidationError as exc:
            errors.append(str(exc))
            if attempt:
                break
            call_id = reply.tool_calls[0]["id"] if reply.tool_calls else None
            repair = (
                f"Your answer did not match the {name} schema:\n{exc}\n"
                f"Call {name} again with corrected arguments."
            )
            if call_id:
                history += [reply, ToolMessage(repair, tool_call_id=call_id, status="error")]
            else:
                from langchain_core.messages import HumanMessage

                history += [reply, HumanMessage(repair)]
    raise StructuredOutputError(
        f"the model's answer does not match {schema.__name__}, also after one repair "
        f"attempt: {errors[-1]}"
    )


def _is_router(model: BaseChatModel) -> bool:
    from providers.router import RouterChatModel

    return isinstance(model, RouterChatModel)
