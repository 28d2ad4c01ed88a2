"""Feedback on runs: scores and comments from users and reviewers, exportable as eval cases.

One row per (run, author, key): giving feedback again under the same key replaces the
earlier judgement instead of piling up votes.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from identity import Principal
from store import Database
from store.models import Feedback, Run, RunEvent

DEFAULT_KEY = "user_score"
FEEDBACK = Counter("relaygraph_feedback", "Feedback given on runs, by key.", ["key"])
FEEDBACK_SCORE = Histogram(
    "relaygraph_feedback_score",
    "Scores given as feedback, by key.",
    ["key"],
    buckets=(-1, -0.5, 0, 0.25, 0.5, 0.75, 1, 2, 3, 4, 5),
)


class FeedbackError(ValueError):
    pass


@dataclass(frozen=True)
class FeedbackInput:
    key: str = DEFAULT_KEY
    score: float | None = None
    comment: str | None = None

    def check(self) -> None:
        """Raises: FeedbackError when the feedback says nothing or its score is not finite."""
        if self.score is None and not (self.comment or "").strip():
            raise FeedbackError("give a score, a comment or both")
        if self.score is not None and not math.isfinite(self.score):
            raise FeedbackError("the score must be a finite number")


def feedback_dict(row: Feedback) -> dict[str, Any]:
    return {
        "feedback_id": row.id,
        "run_id": row.run_id,
        "thread_id": row.thread_id,
        "key": row.key,
        "score": row.score,
        "comment": row.comment,
        "author": row.author,
        "author_roles": row.author_roles,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


class FeedbackService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def give(self, principal: Principal, run: Run, given: FeedbackInput) -> Feedback:
        """Record ``principal``'s feedback on ``run`` (the caller checked they may see it).

        Raises:
            FeedbackError: the feedback is empty or its score is not a finite number.
        """
        given.check()
        try:
            row = await self._upsert(principal, run, given)
        except IntegrityError:  # the same author's concurrent first insert won: update it
            row = await self._upsert(principal, run, given)
        FEEDBACK.labels(key=given.key).inc()
        if given.score is not None:
            FEEDBACK_SCORE.labels(key=given.key).observe(given.score)
        return row

    async def _upsert(self, principal: Principal, run: Run, given: FeedbackInput) -> Feedback:
        async with self.db.transaction() as session:
            row = (
                await session.execute(
                    select(Feedback).where(
                        Feedback.run_id == run.run_id,
                        Feedback.author == principal.user,
                        Feedback.key == given.key,
                    )
                )
            ).scalar_one_or_none()
            if row is None:
                row = Feedback(
                    tenant=run.tenant,
                    thread_id=run.thread_id,
                    run_id=run.run_id,
                    author=principal.user,
                    key=given.key,
                )
                session.add(row)
            row.author_roles = sorted(principal.roles)
            row.score = given.score
            row.comment = given.comment
            await session.flush()
        return row

    async def for_run(self, run_id: str) -> list[Feedback]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Feedback).where(Feedback.run_id == run_id).order_by(Feedback.id)
            )
            return list(rows.scalars())

    async def export(
        self, tenant: str, *, key: str | None = None, max_score: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Eval cases from a tenant's feedback: the run's last user message as input, its
        answer as the output that was judged, and the judgement."""
        statement = (
            select(Feedback, Run)
            .join(Run, Run.run_id == Feedback.run_id)
            .where(Feedback.tenant == tenant)
            .order_by(Feedback.id)
        )
        if key is not None:
            statement = statement.where(Feedback.key == key)
        if max_score is not None:
            statement = statement.where(Feedback.score <= max_score)
        async with self.db.session() as session:
            pairs = (await session.execute(statement)).all()
            ends: dict[str, Any] = {}
            run_ids = list({run.run_id for _, run in pairs})
            for start in range(0, len(run_ids), 500):
                rows = await session.execute(
                    select(RunEvent.run_id, RunEvent.data).where(
                        RunEvent.run_id.in_(run_ids[start : start + 500]),
                        RunEvent.event == "end",
                    )
                )
                ends.update({run_id: data for run_id, data in rows})
        for row, run in pairs:
            end = ends.get(run.run_id) or {}
            yield {
                "id": f"feedback-{row.id}",
                "input": _last_user_message((end.get("values") or {}).get("messages") or []),
                "output": end.get("final_message"),
                "assistant_id": run.assistant_id,
                "feedback": {
                    "key": row.key,
                    "score": row.score,
                    "comment": row.comment,
                    "author": row.author,
                },
                "source": {"thread_id": run.thread_id, "run_id": run.run_id},
            }


def _last_user_message(messages: list[Any]) -> str | None:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("type") in ("human", "user"):
            content = message.get("content")
            return content if isinstance(content, str) else str(content)
    return None
