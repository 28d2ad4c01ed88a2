"""Suites load, meet the case counts the issue asks for, and placeholders resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.cases import SuiteError, context_resolver, load_suite, resolve, shipped_suite_paths

MINIMUM = {
    "tool_use": 30,
    "planning": 10,
    "memory": 10,
    "document_qa": 10,
    "injection": 20,
    "structured_output": 10,
}


def test_shipped_suites_load_with_enough_cases() -> None:
    names = {path.stem for path in shipped_suite_paths()}
    assert set(MINIMUM) <= names
    for name, minimum in MINIMUM.items():
        suite = load_suite(name)
        assert len(suite.cases) >= minimum, name
        assert all(case.turns for case in suite.cases)
    injection = load_suite("injection")
    assert all(case.injection is not None for case in injection.cases)
    carriers = {case.injection.carrier for case in injection.cases if case.injection}
    assert {"note", "file", "web", "document", "tool_output"} <= carriers


def test_unknown_suite_names_the_shipped_ones() -> None:
    with pytest.raises(SuiteError, match="tool_use"):
        load_suite("no_such_suite")


def test_malformed_and_duplicate_cases_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncases:\n  - id: a\n    turns: []\n")
    with pytest.raises(SuiteError, match="malformed"):
        load_suite(bad)
    twice = tmp_path / "twice.jsonl"
    twice.write_text(
        '{"id": "a", "turns": [{"input": "hi"}]}\n{"id": "a", "turns": [{"input": "hi"}]}\n'
    )
    with pytest.raises(SuiteError, match="twice"):
        load_suite(twice)


def test_jsonl_suite_is_named_after_its_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"id": "a", "turns": [{"input": "hi", "answer": "hello"}]}\n')
    suite = load_suite(path)
    assert suite.name == "mine" and suite.cases[0].turns[0].answer == "hello"


def test_placeholders_keep_types_and_fill_text() -> None:
    values = {"notes": {"launch": 7}, "web": "http://127.0.0.1:9/t"}
    results = [{"notes": [{"id": 3, "title": "Plan"}]}]
    resolver = context_resolver(values, results)
    assert resolve("{{notes.launch}}", resolver) == 7
    assert resolve({"id": "{{result.0.notes.0.id}}"}, resolver) == {"id": 3}
    assert resolve("see {{web}}/a.html", resolver) == "see http://127.0.0.1:9/t/a.html"
    assert resolve("{{result.1.x}}", resolver) == "{{result.1.x}}"
    assert resolve(["{{notes.missing}}"], resolver) == ["{{notes.missing}}"]
