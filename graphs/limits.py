"""Run limits: counted in graph state, enforced by routing to a stop node."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

# Stop reasons (the status table in ARCHITECTURE.md).
COMPLETED = "completed"
WAITING_FOR_HUMAN = "waiting_for_human"
STEP_LIMIT = "step_limit"
TOOL_BUDGET = "tool_budget"
TOKEN_BUDGET = "token_budget"
SPEND_BUDGET = "spend_budget"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
ERROR = "error"
LIMIT_REASONS = frozenset({STEP_LIMIT, TOOL_BUDGET, TOKEN_BUDGET, SPEND_BUDGET, TIMEOUT})


class LimitsError(ValueError):
    pass


@dataclass(frozen=True)
class Limits:
    max_steps: int = 25
    max_tool_calls: int = 20
    max_wall_seconds: float = 600.0
    max_run_tokens: int = 0
    """Model tokens (in + out) per run; 0: no limit. Enforced by the model node."""

    @classmethod
    def merged(cls, *layers: Mapping[str, Any] | None) -> Limits:
        """Later layers override earlier ones (settings → assistant → run).

        Raises:
            LimitsError: an unknown limit name or a value that is not a positive number.
        """
        names = {field.name for field in fields(cls)}
        values: dict[str, Any] = {}
        for layer in layers:
            for key, value in (layer or {}).items():
                if key not in names:
                    raise LimitsError(f"unknown limit {key!r}; limits: {', '.join(sorted(names))}")
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise LimitsError(f"limit {key} must be a non-negative number, not {value!r}")
                values[key] = value
        limits = cls(**values)
        if limits.max_steps < 1 or limits.max_wall_seconds <= 0:
            raise LimitsError("max_steps must be ≥ 1 and max_wall_seconds > 0")
        return limits

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LimitHit:
    reason: str
    message: str


def before_model(steps: int, limits: Limits, deadline: float) -> LimitHit | None:
    if time.time() >= deadline:
        return _timeout(limits)
    if steps >= limits.max_steps:
        return LimitHit(
            STEP_LIMIT,
            f"the run reached its step limit ({limits.max_steps} model calls); "
            "raise max_steps and resume the thread to continue",
        )
    return None


def before_tools(used: int, proposed: int, limits: Limits, deadline: float) -> LimitHit | None:
    if time.time() >= deadline:
        return _timeout(limits)
    if used + proposed > limits.max_tool_calls:
        return LimitHit(
            TOOL_BUDGET,
            f"the run would exceed its tool budget ({limits.max_tool_calls} calls; "
            f"{used} used, {proposed} more proposed); raise max_tool_calls and resume",
        )
    return None


def _timeout(limits: Limits) -> LimitHit:
    return LimitHit(
        TIMEOUT,
        f"the run reached its wall-time limit ({limits.max_wall_seconds:g} s); "
        "raise max_wall_seconds and resume the thread to continue",
    )
