"""Feedback on runs: scores and comments from users and reviewers, exportable as eval cases.

One row per (run, author, key): giving feedback again under the same key replaces the
earlier judgement instead of piling up votes. :func:`feedback_case` turns one row into a
regression case for ``relaygraph eval`` (``relaygraph feedback export``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from identity import Principal
from privacy import redact, scan_text
from runtime.observability import mask
from store import Database
from store.models import Feedback, Run, RunEvent

DEFAULT_KEY = "user_score"
GOOD_SCORE = 0.5
"""Scores at or above this judge an answer good (thumbs 1 of 0/1, 1 of -1/1); below, bad."""
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

    async def export_cases(
        self,
        tenant: str,
        *,
        key: str | None = None,
        max_score: float | None = None,
        good_score: float = GOOD_SCORE,
    ) -> FeedbackCases:
        """Regression cases (``evals.cases.Case`` as plain data) from ``tenant``'s feedback,
        one per feedback row, oldest first; only that tenant's feedback on its own runs.
        Feedback that gives nothing to check is listed in ``skipped`` with the reason."""
        statement = (
            select(Feedback, Run)
            .join(Run, Run.run_id == Feedback.run_id)
            .where(Feedback.tenant == tenant, Run.tenant == tenant)
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
        exported = FeedbackCases()
        for row, run in pairs:
            try:
                case = feedback_case(row, run, ends.get(run.run_id), good_score=good_score)
            except FeedbackError as exc:
                exported.skipped.append(f"feedback {row.id} on run {run.run_id}: {exc}")
            else:
                exported.cases.append(case)
        return exported


@dataclass
class FeedbackCases:
    cases: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def feedback_case(
    row: Feedback, run: Run, end: Mapping[str, Any] | None, *, good_score: float = GOOD_SCORE
) -> dict[str, Any]:
    """One eval case from one piece of feedback: the thread's user messages up to the judged
    run as turns (earlier turns first, so the answer is reproduced in its context), the run's
    assistant, and expectations from the judgement. A bad score or a comment without a good
    score becomes an LLM-judge rubric (the comment, else "do better than this answer"); a
    good score makes the judged answer the turn's reference answer, checked with
    ``answer_contains`` when it is short enough to expect verbatim, else by a rubric. Text
    is redacted (personal data, credentials) before it leaves the store.

    Raises:
        FeedbackError: the run has no user message, or the feedback gives nothing to check.
    """
    end = end or {}
    turns = _turns(run, end)
    if not turns:
        raise FeedbackError("the run has no user message to replay")
    answer = (
        end.get("final_message") if end.get("stop_reason", "completed") == "completed" else None
    )
    answer = answer.strip() if isinstance(answer, str) else ""
    turns[-1].pop("answer", None)  # the judged answer: a reference only if it was good
    comment = (row.comment or "").strip()
    good = row.score is not None and row.score >= good_score
    expect: dict[str, Any] = {"state": False, "trajectory": None}
    if good:
        if not answer:
            raise FeedbackError("a good score on a run without an answer gives no reference")
        clean = _redacted(answer)
        turns[-1]["answer"] = clean
        needle = clean.rstrip(" .!")
        if clean == answer and _verbatim(needle):
            expect["answer_contains"] = [needle]
        else:
            expect["judge"] = (
                "The answer must agree in substance with this reference answer, which was "
                f"rated good: «{clean}»"
            )
    elif comment:
        expect["judge"] = _redacted(comment)
    elif answer and row.score is not None:
        expect["judge"] = (
            f"An earlier answer to this request was rated bad ({row.key}: {row.score:g}): "
            f"«{_redacted(answer)}». The answer must not repeat that answer's mistakes."
        )
    else:
        raise FeedbackError("a bad score without a comment or an answer gives nothing to check")
    verdict = "good" if good else "bad" if row.score is not None else "comment"
    score = "no score" if row.score is None else f"score {row.score:g}"
    description = (
        f"{verdict.capitalize()} feedback ({row.key}, {score}) on assistant {run.assistant_id}"
    )
    if good and comment:
        description += f": {_redacted(comment)}"
    return {
        "id": f"feedback-{row.id}",
        "description": description,
        "tags": ["feedback", verdict, f"key:{row.key}"],
        "assistant": run.assistant_id,
        "turns": turns,
        "expect": expect,
        "source": {
            "feedback_id": row.id,
            "key": row.key,
            "score": row.score,
            "run_id": run.run_id,
            "thread_id": run.thread_id,
            "graph_version": run.graph_version,
            "prompt_version": run.prompt_version,
            "judged_answer": _redacted(answer) if answer else None,
        },
    }


_VERBATIM = re.compile(r"[^\n<>]{1,40}")


def _verbatim(answer: str) -> bool:
    """A short one-line answer ("Copenhagen", "42 kr.") can be expected verbatim from any
    model; anything longer is phrased differently by each and needs a judge."""
    return bool(_VERBATIM.fullmatch(answer)) and len(answer.split()) <= 6


def _redacted(text: str) -> str:
    """``text`` with personal data (``privacy``) and credential-shaped strings removed."""
    return mask(redact(text, scan_text(text).findings))


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):  # content blocks: keep the text, not files or images
        parts = [
            block.get("text", "") if isinstance(block, Mapping) else str(block)
            for block in content
            if isinstance(block, str) or (isinstance(block, Mapping) and "text" in block)
        ]
        return "\n".join(p for p in parts if p).strip()
    return ""


def _role(message: Any) -> str | None:
    if not isinstance(message, Mapping):
        return None
    role = message.get("type") or message.get("role")
    return {"human": "user", "user": "user", "ai": "ai", "assistant": "ai"}.get(str(role))


def _turns(run: Run, end: Mapping[str, Any]) -> list[dict[str, Any]]:
    """User messages (redacted) with the assistant's reply to each, from the thread's state
    at the end of the run; without it (the run failed early), the run's own input."""
    messages = _messages(end.get("values"))
    if not any(_role(m) == "user" for m in messages):
        messages = _messages((run.kwargs or {}).get("input"))
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = _role(message)
        text = _text(message) if role else ""
        if role == "user" and text:
            turns.append({"input": _redacted(text)})
        elif role == "ai" and text and turns and not message.get("tool_calls"):
            turns[-1]["answer"] = _redacted(text)
    return turns


def _messages(values: Any) -> list[Any]:
    messages = values.get("messages") if isinstance(values, Mapping) else None
    return messages if isinstance(messages, list) else []
