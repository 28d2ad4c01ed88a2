"""The human-interrupt contract: the payload a gate raises and the decisions that resume it.

Payload: ``{"action_requests": [{"name", "args", "description"}], "review_configs":
[{"action_name", "allowed_decisions"}]}``. Resume: ``{"decisions": [{"type": "approve"} |
{"type": "edit", "edited_action": {"name", "args"}} | {"type": "reject", "message"}]}``.
Agent Inbox's older list of ``accept / edit / response / ignore`` responses is accepted too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from identity import Principal
from tools import ToolCall, ToolRegistry

ALLOWED_DECISIONS = ["approve", "edit", "reject"]
DECIDER_KEY = "decided_by"
"""Where the server records, inside a resume value, who gave it (never the client)."""


class InvalidDecision(ValueError):
    """A resume value does not answer the pending interrupt."""


@dataclass(frozen=True)
class Decision:
    type: Literal["approve", "edit", "reject"]
    name: str | None = None
    args: dict[str, Any] | None = None
    message: str | None = None


def approval_request(
    pending: Sequence[tuple[ToolCall, str]], registry: ToolRegistry
) -> dict[str, Any]:
    requests = []
    for call, reason in pending:
        tool = registry.get(call.name)
        risk = tool.risk if tool else "unknown"
        requests.append(
            {
                "name": call.name,
                "args": call.args,
                "description": f"Approval needed ({risk} tool): {reason}",
            }
        )
    return {
        "action_requests": requests,
        "review_configs": [
            {"action_name": call.name, "allowed_decisions": list(ALLOWED_DECISIONS)}
            for call, _ in pending
        ],
    }


def parse_decisions(value: Any, *, expected: int) -> list[Decision]:
    """Turn a resume value into one decision per pending action.

    Raises:
        InvalidDecision: the value has the wrong shape or the wrong number of decisions.
    """
    if isinstance(value, dict) and "decisions" in value:
        raw = value["decisions"]
    elif isinstance(value, list):
        raw = value
    elif isinstance(value, dict) and "type" in value:
        raw = [value]
    else:
        raise InvalidDecision(
            'resume with {"decisions": [{"type": "approve"} | {"type": "edit", '
            '"edited_action": {"name", "args"}} | {"type": "reject", "message"}]}'
        )
    if not isinstance(raw, list) or len(raw) != expected:
        count = len(raw) if isinstance(raw, list) else "no list of"
        raise InvalidDecision(f"{expected} action(s) await a decision; got {count} decision(s)")
    return [_one(item, position) for position, item in enumerate(raw)]


def _one(item: Any, position: int) -> Decision:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        raise InvalidDecision(f"decision {position} must be an object with a 'type'")
    kind = item["type"]
    if kind in ("approve", "accept"):
        return Decision("approve")
    if kind in ("reject", "response", "ignore"):
        message = item.get("message") if kind == "reject" else item.get("args")
        if kind == "ignore":
            message = "the reviewer ignored this request"
        if message is not None and not isinstance(message, str):
            raise InvalidDecision(f"decision {position}: the message must be a string")
        return Decision("reject", message=message)
    if kind == "edit":
        action = item.get("edited_action") or item.get("args")
        if not isinstance(action, dict):
            raise InvalidDecision(f"decision {position}: edit needs edited_action {{name, args}}")
        args = action.get("args")
        if not isinstance(args, dict):
            raise InvalidDecision(f"decision {position}: edited_action.args must be an object")
        name = action.get("name") or action.get("action")
        return Decision("edit", name=name, args=args)
    raise InvalidDecision(
        f"decision {position}: unknown type {kind!r}; use approve, edit or reject"
    )


def stamp_decider(value: Any, decider: Principal) -> Any:
    """The resume value with ``decider`` recorded in it (whatever a client sent under
    :data:`DECIDER_KEY` is replaced). The stamp is checkpointed with the answer, so a
    gate re-run on replay checks each answer against the person who actually gave it.
    Values that are no decision list are returned unchanged (parsing reports them)."""
    if isinstance(value, list):
        value = {"decisions": value}
    elif isinstance(value, dict) and "type" in value and "decisions" not in value:
        value = {"decisions": [value]}
    if not isinstance(value, dict) or "decisions" not in value:
        return value
    return {**value, DECIDER_KEY: decider.to_dict()}


def decider_of(value: Any) -> Principal | None:
    """Who gave a resume value, if the server stamped it (:func:`stamp_decider`)."""
    stamp = value.get(DECIDER_KEY) if isinstance(value, dict) else None
    if not isinstance(stamp, dict):
        return None
    try:
        return Principal.from_dict(stamp)
    except (KeyError, TypeError):
        return None
