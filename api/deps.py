"""Request dependencies: the services and the authenticated, rate-limited caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from structlog.contextvars import bind_contextvars

from api.errors import ApiError
from api.sse import StreamSlots
from identity import Principal
from identity.auth import Authenticator, AuthError, Caller
from identity.ratelimit import RateLimiter
from runtime.feedback import FeedbackService
from runtime.runs import Runner
from runtime.system import System
from runtime.threads import ThreadService
from runtime.worker import Worker


@dataclass
class Services:
    system: System
    runner: Runner
    threads: ThreadService
    authenticator: Authenticator
    limiter: RateLimiter
    worker: Worker | None
    feedback: FeedbackService
    streams: StreamSlots = field(default_factory=StreamSlots)


async def services(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop on
    # every request.
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(services)]


async def current_caller(request: Request, svc: ServicesDep) -> Caller:
    """Authenticate the request and count it against the caller's rate limits.

    Raises:
        ApiError: 401 without valid credentials, 429 over a rate limit.
    """
    try:
        caller = await svc.authenticator.identify(request.headers)
    except AuthError as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.headers) from None
    bind_contextvars(tenant=caller.principal.tenant, user=caller.principal.user)
    decision = await svc.limiter.check(caller.principal, caller.key_id)
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            decision.message,
            {"Retry-After": str(max(1, decision.retry_after_seconds))},
        )
    return caller


async def current_principal(caller: Annotated[Caller, Depends(current_caller)]) -> Principal:
    return caller.principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_scope(principal: Principal, scope: str) -> None:
    """Raises: ApiError 403 when ``principal`` lacks ``scope``."""
    if not principal.has_scope(scope):
        raise ApiError(403, "forbidden", f"this needs the scope {scope!r}, which you lack")
