"""Per-deployment circuit breaker: a dead provider is skipped at once instead of being
retried on every call.

closed → (``failure_threshold`` consecutive failures) → open → (``cooldown_seconds``) →
half-open: one probe call is let through; success closes, failure opens again.
State lives in the process (each worker learns on its own; a breaker is a fast path,
not shared truth).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    cooldown_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    _probing: bool = field(default=False, repr=False)

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown_seconds:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go to the deployment now; in half-open state only one probe
        at a time is let through (claimed by this call)."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self.failures += 1
        if self._probing or self.failures >= self.failure_threshold:
            self.opened_at = self.clock()
        self._probing = False

    def release(self) -> None:
        """The call that claimed the probe ended without a verdict (cancelled)."""
        self._probing = False
