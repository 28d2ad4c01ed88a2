"""runtime/feedback.py ``feedback_case``: which expectation each kind of feedback becomes,
what is replayed, and what is redacted on the way out."""

from __future__ import annotations

from typing import Any

import pytest

from evals.cases import Case
from runtime.feedback import FeedbackError, feedback_case
from store.models import Feedback, Run

QUESTION = {"type": "human", "content": "What is the capital of Denmark?"}


def _run(**kwargs: Any) -> Run:
    return Run(
        run_id="run-1",
        thread_id="thread-1",
        tenant="a",
        assistant_id="support",
        graph_version="v3",
        prompt_version="p2",
        kwargs=kwargs.get("kwargs"),
    )


def _feedback(score: float | None, comment: str | None = None) -> Feedback:
    return Feedback(
        id=7, tenant="a", run_id="run-1", key="user_score", score=score, comment=comment
    )


def _end(*messages: dict[str, Any], final: str | None, stop: str = "completed") -> dict[str, Any]:
    return {"final_message": final, "stop_reason": stop, "values": {"messages": list(messages)}}


def _ai(text: str) -> dict[str, Any]:
    return {"type": "ai", "content": text, "tool_calls": []}


def test_a_good_short_answer_is_expected_verbatim() -> None:
    case = feedback_case(
        _feedback(1), _run(), _end(QUESTION, _ai("Copenhagen."), final="Copenhagen.")
    )
    Case.model_validate(case)
    assert case["assistant"] == "support"
    assert case["turns"] == [{"input": "What is the capital of Denmark?", "answer": "Copenhagen."}]
    assert case["expect"] == {"state": False, "trajectory": None, "answer_contains": ["Copenhagen"]}
    assert case["tags"] == ["feedback", "good", "key:user_score"]
    assert case["source"]["run_id"] == "run-1" and case["source"]["prompt_version"] == "p2"


def test_a_good_long_answer_becomes_a_reference_for_the_judge() -> None:
    long = "Refunds are possible within 30 days when the item is unused; store credit after."
    case = feedback_case(_feedback(0.9, "spot on"), _run(), _end(QUESTION, final=long))
    assert "answer_contains" not in case["expect"]
    assert long in case["expect"]["judge"] and "reference answer" in case["expect"]["judge"]
    assert case["turns"][-1]["answer"] == long
    assert case["description"].endswith(": spot on")


def test_a_bad_score_with_a_comment_becomes_the_rubric_without_the_bad_answer() -> None:
    rubric = "The answer must not guess; it must say it does not know."
    end = _end(QUESTION, _ai("Aarhus."), final="Aarhus.")
    case = feedback_case(_feedback(0, rubric), _run(), end)
    assert case["expect"] == {"state": False, "trajectory": None, "judge": rubric}
    assert case["turns"] == [{"input": "What is the capital of Denmark?"}]  # no gold answer
    assert case["source"]["judged_answer"] == "Aarhus."
    assert "bad" in case["tags"]


def test_a_bad_score_alone_asks_for_better_than_the_judged_answer() -> None:
    case = feedback_case(_feedback(-1), _run(), _end(QUESTION, final="Aarhus."))
    assert "«Aarhus.»" in case["expect"]["judge"] and "user_score: -1" in case["expect"]["judge"]
    with pytest.raises(FeedbackError, match="nothing to check"):
        feedback_case(_feedback(0), _run(), _end(QUESTION, final=None))


def test_a_comment_without_a_score_is_a_rubric() -> None:
    case = feedback_case(_feedback(None, "Answer in Danish."), _run(), _end(QUESTION, final="x"))
    assert case["expect"]["judge"] == "Answer in Danish." and "comment" in case["tags"]


def test_a_good_score_needs_an_answer_that_completed() -> None:
    waiting = _end(QUESTION, final=None, stop="waiting_for_human")
    with pytest.raises(FeedbackError, match="no reference"):
        feedback_case(_feedback(1), _run(), waiting)
    failed = _end(QUESTION, final="ValueError: boom", stop="error")
    with pytest.raises(FeedbackError, match="no reference"):
        feedback_case(_feedback(1), _run(), failed)


def test_earlier_turns_come_first_with_their_replies() -> None:
    end = _end(
        QUESTION,
        {"type": "ai", "content": "", "tool_calls": [{"name": "notes_search", "args": {}}]},
        {"type": "tool", "content": "[]"},
        _ai("Copenhagen."),
        {"type": "human", "content": [{"type": "text", "text": "How many live there?"}]},
        final="Two thirds of a million.",
    )
    case = feedback_case(_feedback(1), _run(), end)
    assert case["turns"] == [
        {"input": "What is the capital of Denmark?", "answer": "Copenhagen."},
        {"input": "How many live there?", "answer": "Two thirds of a million."},
    ]


def test_without_an_end_event_the_runs_own_input_is_replayed() -> None:
    run = _run(kwargs={"input": {"messages": [{"role": "user", "content": "Hello there"}]}})
    case = feedback_case(_feedback(0, "Greet back."), run, None)
    assert case["turns"] == [{"input": "Hello there"}]
    with pytest.raises(FeedbackError, match="no user message"):
        feedback_case(_feedback(0, "x"), _run(kwargs={"command": {"resume": {}}}), None)


def test_personal_data_and_credentials_are_redacted() -> None:
    asked = {"type": "human", "content": "Mail alice@example.com my key sk-abcdefghijklmnop1234"}
    answer = "Call Anna Jensen."
    case = feedback_case(
        _feedback(1, "Thanks, alice@example.com"), _run(), _end(asked, final=answer)
    )
    text = str(case)
    assert "alice@example.com" not in text and "sk-abcdef" not in text and "Anna" not in text
    assert case["turns"][0]["input"] == "Mail <EMAIL> my key [redacted]"
    # A redacted answer cannot be expected verbatim: the judge gets it as a reference.
    assert "answer_contains" not in case["expect"] and "<PERSON>" in case["expect"]["judge"]
