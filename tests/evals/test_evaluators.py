"""Each evaluator on hand-made cases where it must pass and where it must fail."""

from __future__ import annotations

import pytest

from evals import evaluators as ev

SEARCH = {"tool": "notes_search", "args": {"query": "launch", "limit": 5}}
DELETE = {"tool": "notes_delete", "args": {"note_id": 3}}
CREATE = {"tool": "tickets_create", "args": {"title": "x", "body": "y"}}


def test_final_state_compares_hashes() -> None:
    assert ev.final_state("abc", "abc").passed
    failed = ev.final_state("abc", "abd", "notes differ")
    assert not failed.passed and failed.value == 0.0 and "notes differ" in failed.detail


@pytest.mark.parametrize(
    ("mode", "actual", "expected", "passes"),
    [
        ("strict", [SEARCH, DELETE], [SEARCH, DELETE], True),
        ("strict", [DELETE, SEARCH], [SEARCH, DELETE], False),
        ("strict", [SEARCH], [SEARCH, DELETE], False),
        ("unordered", [DELETE, SEARCH], [SEARCH, DELETE], True),
        ("unordered", [DELETE, SEARCH, CREATE], [SEARCH, DELETE], False),
        ("subset", [SEARCH], [SEARCH, DELETE], True),
        ("subset", [SEARCH, CREATE], [SEARCH, DELETE], False),
        ("superset", [CREATE, SEARCH, DELETE], [SEARCH, DELETE], True),
        ("superset", [SEARCH, CREATE], [SEARCH, DELETE], False),
        ("unordered", [SEARCH, SEARCH], [SEARCH, DELETE], False),
    ],
)
def test_trajectory_modes(
    mode: ev.TrajectoryMode, actual: list[ev.Call], expected: list[ev.Call], passes: bool
) -> None:
    score = ev.trajectory_match(actual, expected, mode)
    assert score.passed is passes
    assert score.name == f"trajectory_{mode}"
    assert (score.detail == "") is passes


def test_argument_match_modes() -> None:
    made = {"query": "launch", "limit": 5}
    assert ev.args_match(made, {"query": "launch", "limit": 5}, "exact")
    assert not ev.args_match(made, {"query": "launch"}, "exact")
    assert ev.args_match(made, {"query": "launch"}, "subset")
    assert not ev.args_match(made, {"query": "offsite"}, "subset")
    assert not ev.args_match({"limit": 5}, {"query": "launch"}, "subset")
    assert ev.args_match(made, {"query": "anything at all"}, "ignore")
    wrong_args = [{"tool": "notes_search", "args": {"query": "other"}}]
    assert not ev.trajectory_match(wrong_args, [SEARCH], "strict", "exact").passed
    assert ev.trajectory_match(wrong_args, [SEARCH], "strict", "ignore").passed


def test_precision_and_recall() -> None:
    precision, recall = ev.tool_call_precision_recall([SEARCH, CREATE], [SEARCH, DELETE])
    assert precision.value == 0.5 and recall.value == 0.5
    assert not precision.passed and not recall.passed
    precision, recall = ev.tool_call_precision_recall([SEARCH, DELETE], [DELETE, SEARCH])
    assert precision.passed and recall.passed
    precision, recall = ev.tool_call_precision_recall([], [])
    assert precision.value == recall.value == 1.0
    precision, recall = ev.tool_call_precision_recall([], [SEARCH])
    assert precision.value == 0.0 and recall.value == 0.0


def test_answer_contains_and_regex() -> None:
    assert ev.answer_contains("The launch is on FRIDAY", ["friday", "launch"]).passed
    missing = ev.answer_contains("The launch is on Monday", ["friday", "launch"])
    assert not missing.passed and missing.value == 0.5 and "friday" in missing.detail
    assert ev.answer_regex("ticket #42 closed", r"#\d+ closed").passed
    assert not ev.answer_regex("ticket closed", r"#\d+ closed").passed


SCHEMA = {
    "type": "object",
    "required": ["title", "priority"],
    "properties": {"title": {"type": "string"}, "priority": {"enum": ["low", "high"]}},
}


def test_structured_output() -> None:
    assert ev.structured_output('{"title": "a", "priority": "low"}', SCHEMA).passed
    assert ev.structured_output('```json\n{"title": "a", "priority": "high"}\n```', SCHEMA).passed
    bad_enum = ev.structured_output('{"title": "a", "priority": "urgent"}', SCHEMA)
    assert not bad_enum.passed and "priority" in bad_enum.detail
    assert not ev.structured_output('{"title": "a"', SCHEMA).passed
    assert not ev.structured_output("Sure! Here it is.", SCHEMA).passed


def test_json_equals() -> None:
    assert ev.json_equals('{"title": "a", "n": 2, "extra": 1}', {"title": "a", "n": 2}).passed
    wrong = ev.json_equals('{"title": "a", "n": 3}', {"title": "a", "n": 2})
    assert not wrong.passed and wrong.value == 0.5
    assert not ev.json_equals("[1, 2]", {"title": "a"}).passed


def test_retrieval_recall_at_k() -> None:
    retrieved = ["faq.md", "handbook.md", "faq.md", "security.md"]
    assert ev.retrieval_recall_at_k(retrieved, ["handbook.md"], k=2).passed
    assert not ev.retrieval_recall_at_k(retrieved, ["security.md"], k=2).passed
    half = ev.retrieval_recall_at_k(retrieved, ["handbook.md", "travel.md"], k=5)
    assert half.value == 0.5 and not half.passed


def test_citation_correctness() -> None:
    retrieved = ["handbook.md", "faq.md"]
    good = ev.citation_correctness("25 days [handbook.md].", retrieved, ["handbook.md"])
    assert good.passed
    assert not ev.citation_correctness("25 days.", retrieved, ["handbook.md"]).passed
    invented = ev.citation_correctness("25 days [policy.pdf].", retrieved, ["handbook.md"])
    assert not invented.passed and "policy.pdf" in invented.detail
    irrelevant = ev.citation_correctness("[handbook.md] and [faq.md]", retrieved, ["handbook.md"])
    assert not irrelevant.passed and irrelevant.value == 0.5
    assert ev.cited_sources("see [1] and [a.md]") == ["a.md"]


def test_within_budget() -> None:
    assert ev.within_budget("tokens", 900, 1000).passed
    assert not ev.within_budget("tokens", 1200, 1000).passed
    assert ev.within_budget("latency_s", 99.0, None).passed


class _Judge:
    def __init__(self, verdict: str) -> None:
        self.verdict = verdict
        self.prompts: list[str] = []

    async def ainvoke(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.verdict


async def test_llm_judge_reads_the_verdict() -> None:
    judge = _Judge("PASS: it answers the question")
    assert (await ev.llm_judge(judge, "mentions Friday", "when?", "Friday")).passed
    assert "mentions Friday" in judge.prompts[0]
    assert not (await ev.llm_judge(_Judge("FAIL: no date"), "r", "q", "a")).passed


def test_environment_checks() -> None:
    world = {"agent": {"tasks": {"task_2": {"status": "pending"}}, "users": {"u": {"tasks": [1]}}}}
    ok = ev.environment_checks(
        world,
        [
            {"path": "agent/tasks/task_2/status", "equals": "pending"},
            {"path": "agent/users/u/tasks", "length": 1},
        ],
    )
    assert ok.passed
    wrong = ev.environment_checks(world, [{"path": "agent/tasks/task_2/status", "equals": "done"}])
    assert not wrong.passed and "pending" in wrong.detail
    missing = ev.environment_checks(world, [{"path": "agent/tasks/task_9/status", "equals": "x"}])
    assert not missing.passed and "missing" in missing.detail
