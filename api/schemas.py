"""Request bodies (LangGraph Server field names). Unknown fields are ignored, as the
SDKs send options relaygraph does not use (feedback_keys, langsmith_tracer, ...)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError
from starlette.requests import Request

from api.errors import ApiError

MAX_OFFSET = 1_000_000
MAX_QUERY_INT = 2**53 - 1
"""Bound for integer query parameters with no natural maximum (an audit sequence number):
the largest integer JSON clients handle exactly, and well inside SQL's 64-bit integers."""


def _text_problem(text: str) -> str | None:
    if text.isascii():
        return "a NUL character (U+0000)" if "\x00" in text else None
    if "\x00" in text:
        return "a NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "an unpaired UTF-16 surrogate (a lone \\udXXX escape)"
    return None


def _holds_invalid_text(value: Any) -> bool:
    stack = [value]
    while stack:  # iterative: the JSON parser allows nesting deeper than our recursion
        item = stack.pop()
        if isinstance(item, str):
            if _text_problem(item):
                return True
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and _text_problem(key):
                    return True
                stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def find_invalid_text(value: Any) -> str | None:
    """Where ``value`` (parsed JSON) holds a string, as a key or a value, that cannot be
    stored and sent back as UTF-8 text: ``"<where>: <what>"``, or None when all is well.

    Such strings are refused at the door: stored, they would make every later read of the
    row (a thread's metadata, a store item, an export) fail to encode, and PostgreSQL
    refuses NUL in text and JSON outright.
    """
    if not _holds_invalid_text(value):  # the common case, without building paths
        return None
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                return f"{where or 'the body'}: a string holds {problem}"
        elif isinstance(item, dict):
            for key, child in item.items():
                path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and (problem := _text_problem(key)):
                    return f"{where or 'the body'}: a key holds {problem}"
                stack.append((path, child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{index}]", child) for index, child in enumerate(item))
    return None


async def refuse_nul_in_url(request: Request) -> None:
    """App-wide dependency (async: a plain def would hop to the thread pool on every
    request): no path or query parameter may hold NUL, which PostgreSQL
    refuses in any text (a lookup with it would fail there, not answer).

    Raises:
        ApiError: 404 for a path parameter (no id holds NUL: bodies with it are refused),
            422 for a query parameter.
    """
    if "\x00" in request.scope["path"]:
        raise ApiError(404, "not_found", "nothing here: no id holds a NUL character (%00)")
    if b"%00" in request.scope["query_string"]:
        names = [name for name, value in request.query_params.multi_items() if "\x00" in value]
        names += [name for name in request.query_params if "\x00" in name]
        raise ApiError(
            422,
            "invalid_request",
            f"query parameter {', '.join(names) or '?'} holds a NUL character (%00); remove it",
        )


class ValidText(BaseModel):
    """Refuses bodies with text that is not valid Unicode, or holds NUL (see
    ``find_invalid_text``), anywhere, including free-form fields (``metadata``, ``input``)."""

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        problem = find_invalid_text(data)
        if problem:
            raise PydanticCustomError(
                "invalid_text",
                "{problem}, which cannot be stored: send valid Unicode text without NUL",
                {"problem": problem},
            )
        return data


def json_integer(value: Any) -> Any:
    """JSON has one number type: 10.0 is the integer 10 (JSON Schema agrees), true is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer as JSON means it: integral floats accepted, booleans and strings refused.
JsonInt = Annotated[int, BeforeValidator(json_integer)]


def _configurable_object(value: dict[str, Any]) -> dict[str, Any]:
    if "configurable" in value and value["configurable"] is None:
        return {key: item for key, item in value.items() if key != "configurable"}
    if "configurable" in value and not isinstance(value["configurable"], dict):
        raise ValueError(
            "config.configurable must be an object of settings, e.g. "
            '{"configurable": {"model": "demo"}}'
        )
    return value


# A RunnableConfig: free-form, but ``configurable`` (what runs and assistants read) is an
# object; the schema says so too.
RunConfig = Annotated[
    dict[str, Any],
    AfterValidator(_configurable_object),
    Field(
        json_schema_extra={
            "properties": {"configurable": {"anyOf": [{"type": "object"}, {"type": "null"}]}}
        }
    ),
]
StreamMode = Literal["values", "updates", "messages", "messages-tuple", "custom", "debug", "events"]


class RequestBody(ValidText):
    """Base of every JSON body: unknown fields ignored, types strict (JSON ``false`` is not
    the integer 0, ``"10"`` is not a number), text valid (``ValidText``)."""

    model_config = ConfigDict(extra="ignore", strict=True)


_Body = RequestBody


class ThreadCreate(_Body):
    thread_id: str | None = Field(default=None, max_length=64)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: Any = None


class ThreadPatch(_Body):
    metadata: dict[str, Any] = Field(default_factory=dict)


class ThreadSearch(_Body):
    ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: JsonInt = Field(default=10, ge=1, le=1000)
    offset: JsonInt = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[str] | None = None


class ThreadCount(_Body):
    ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class CheckpointRef(_Body):
    thread_id: str | None = None
    checkpoint_ns: str | None = ""
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class StateUpdate(_Body):
    values: Any = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None
    as_node: str | None = Field(default=None, min_length=1, max_length=128)


class StateCheckpointQuery(_Body):
    checkpoint: CheckpointRef | None = None
    subgraphs: bool = False


class HistoryQuery(_Body):
    limit: JsonInt = Field(default=10, ge=1, le=1000)
    before: CheckpointRef | str | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None


class RunCommand(_Body):
    resume: Any = None
    update: Any = None
    goto: Any = None


class RunCreate(_Body):
    assistant_id: str = Field(min_length=1, max_length=128)
    input: Any = None
    command: RunCommand | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    on_disconnect: Literal["cancel", "continue"] = "cancel"
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_completion: Literal["delete", "keep"] | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    after_seconds: float | None = None

    def modes(self) -> tuple[str, ...]:
        modes = [self.stream_mode] if isinstance(self.stream_mode, str) else self.stream_mode
        return tuple(modes) or ("values",)

    def checkpoint_ref(self) -> str | None:
        if self.checkpoint_id:
            return self.checkpoint_id
        return self.checkpoint.checkpoint_id if self.checkpoint else None


class AssistantCreate(_Body):
    graph_id: str = Field(min_length=1, max_length=128)
    assistant_id: str | None = Field(default=None, min_length=1, max_length=128)
    config: RunConfig = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatch(_Body):
    graph_id: str | None = Field(default=None, min_length=1, max_length=128)
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


class AssistantSearch(_Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: JsonInt = Field(default=10, ge=1, le=1000)
    offset: JsonInt = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


class RunsCancel(_Body):
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None
