"""JSON-able views of graph values (messages, interrupts) for events, the CLI and the API."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.types import Interrupt
from pydantic import BaseModel


def message_to_dict(message: BaseMessage) -> dict[str, Any]:
    """The message as LangGraph Server sends it (``model_dump``: every field, with ``type``)."""
    return message.model_dump()


def to_jsonable(value: Any) -> Any:
    """Convert graph output to plain JSON types (unknown objects become their repr)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseMessage):
        return to_jsonable(message_to_dict(value))
    if isinstance(value, Interrupt):
        return {"value": to_jsonable(value.value), "id": value.id}
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="json"))
    return repr(value)
