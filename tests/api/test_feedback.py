"""Feedback on runs: users and reviewers of the tenant, replaced per author and key,
counted in /metrics, exported as eval cases."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from typer.testing import CliRunner

from relaygraph.feedback_cli import feedback_app

HELLO = {"messages": [{"role": "user", "content": "what is the capital of Denmark?"}]}


def _samples(text: str) -> dict[str, float]:
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in pairs}


async def _finished_run(http: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    tid = (await http.post("/threads", json={}, headers=headers)).json()["thread_id"]
    run = await http.post(
        f"/threads/{tid}/runs", json={"assistant_id": "agent", "input": HELLO}, headers=headers
    )
    run_id = run.json()["run_id"]
    await http.get(f"/threads/{tid}/runs/{run_id}/join", headers=headers)
    return tid, run_id


async def test_feedback_is_given_replaced_listed_and_exported(serve: Any) -> None:
    server = serve([{"content": "Copenhagen."}])
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice, rita, bob = (server.headers(who) for who in ("alice", "rita", "bob"))
        tid, run_id = await _finished_run(http, alice)
        path = f"/threads/{tid}/runs/{run_id}/feedback"

        root = server.base_url.removesuffix("/api/v1")
        before = _samples((await http.get(f"{root}/metrics")).text)
        first = await http.post(path, json={"score": 0, "comment": "too short"}, headers=alice)
        assert first.status_code == 200, first.text
        again = await http.post(path, json={"score": 1}, headers=alice)
        assert again.json()["feedback_id"] == first.json()["feedback_id"]  # replaced
        reviewed = await http.post(
            path, json={"key": "correctness", "score": 1, "comment": "right"}, headers=rita
        )
        assert reviewed.status_code == 200

        listed = (await http.get(path, headers=alice)).json()
        assert [(f["author"], f["key"], f["score"]) for f in listed] == [
            ("alice", "user_score", 1.0),
            ("rita", "correctness", 1.0),
        ]
        # Another tenant sees no such run; empty and malformed feedback is refused.
        assert (await http.post(path, json={"score": 1}, headers=bob)).status_code == 404
        assert (await http.get(path, headers=bob)).status_code == 404
        empty = await http.post(path, json={"comment": "  "}, headers=alice)
        assert empty.status_code == 422 and empty.json()["error"] == "invalid_feedback"
        bad_key = await http.post(path, json={"key": "a b", "score": 1}, headers=alice)
        assert bad_key.status_code == 422
        not_a_number = await http.post(path, json={"score": "NaN"}, headers=alice)
        assert not_a_number.status_code == 422

        after = _samples((await http.get(f"{root}/metrics")).text)
    given = 'relaygraph_feedback_total{key="user_score"}'
    scored = 'relaygraph_feedback_score_count{key="correctness"}'
    assert after[given] - before.get(given, 0) == 2
    assert after[scored] - before.get(scored, 0) == 1

    # Exported as eval cases (tests/relaygraph/test_feedback_cli.py runs them).
    export = ["export", "--tenant", "a", "--format", "jsonl"]
    result = await asyncio.to_thread(CliRunner().invoke, feedback_app, export)
    assert result.exit_code == 0, result.output
    cases = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(cases) == 2
    assert {case["turns"][-1]["input"] for case in cases} == {"what is the capital of Denmark?"}
    assert {case["turns"][-1]["answer"] for case in cases} == {"Copenhagen."}
    assert {case["source"]["key"] for case in cases} == {"user_score", "correctness"}
    assert all(case["source"]["thread_id"] == tid for case in cases)
    assert all(case["source"]["run_id"] == run_id for case in cases)
    export[2] = "b"
    other = await asyncio.to_thread(CliRunner().invoke, feedback_app, export)
    assert other.exit_code == 0 and other.stdout == ""
