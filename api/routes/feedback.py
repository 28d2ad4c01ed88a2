"""Feedback on runs: ``/threads/{thread_id}/runs/{run_id}/feedback``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import ConfigDict, Field

from api.deps import CurrentPrincipal, ServicesDep
from api.errors import ApiError
from api.routes.runs import visible_run
from api.schemas import ValidText
from runtime.feedback import DEFAULT_KEY, FeedbackError, FeedbackInput, feedback_dict

router = APIRouter(tags=["feedback"])


class FeedbackCreate(ValidText):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(default=DEFAULT_KEY, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    score: float | None = Field(default=None, allow_inf_nan=False, ge=-1e6, le=1e6)
    comment: str | None = Field(default=None, max_length=4000)


@router.post("/threads/{thread_id}/runs/{run_id}/feedback")
async def give_feedback(
    thread_id: str,
    run_id: str,
    body: FeedbackCreate,
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> dict[str, Any]:
    """Score and/or comment on a run; the same author and key replace their earlier one."""
    run = await visible_run(svc, principal, thread_id, run_id)
    try:
        row = await svc.feedback.give(
            principal, run, FeedbackInput(key=body.key, score=body.score, comment=body.comment)
        )
    except FeedbackError as exc:
        raise ApiError(422, "invalid_feedback", str(exc)) from None
    return feedback_dict(row)


@router.get("/threads/{thread_id}/runs/{run_id}/feedback")
async def list_feedback(
    thread_id: str, run_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> list[dict[str, Any]]:
    await visible_run(svc, principal, thread_id, run_id)
    return [feedback_dict(row) for row in await svc.feedback.for_run(run_id)]
