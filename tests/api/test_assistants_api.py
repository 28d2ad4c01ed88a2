"""Assistants created or changed through the API: their options are checked against the
graph's options model at once (422 with the reason), not at their first run."""

from __future__ import annotations

from typing import Any

import httpx


def test_options_are_validated_at_create_and_patch(serve: Any) -> None:
    server = serve([{"content": "hi"}])
    headers = server.headers("ada")

    def post(body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{server.base_url}/assistants", json=body, headers=headers)

    bad = post({"graph_id": "planner", "config": {"configurable": {"options": {"review": 1}}}})
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"] == "invalid_request"
    message = bad.json()["message"]
    assert "graph 'planner'" in message and "review: Extra inputs are not permitted" in message
    assert "it understands: review_plan (bool)" in message

    wrong_type = post(
        {"graph_id": "agent", "config": {"configurable": {"options": {"web_search": "often"}}}}
    )
    assert wrong_type.status_code == 422 and "web_search" in wrong_type.json()["message"]

    made = post(
        {
            "graph_id": "planner",
            "assistant_id": "careful-planner",
            "config": {"configurable": {"options": {"review_plan": True}}},
        }
    )
    assert made.status_code == 200, made.text

    url = f"{server.base_url}/assistants/careful-planner"
    patched = httpx.patch(
        url,
        json={"config": {"configurable": {"options": {"review_plan": "sometimes"}}}},
        headers=headers,
    )
    assert patched.status_code == 422 and "review_plan" in patched.json()["message"]
    kept = httpx.get(url, headers=headers).json()
    assert kept["config"]["configurable"]["options"] == {"review_plan": True}
    assert kept["version"] == 1  # the refused change left no trace

    moved = httpx.patch(url, json={"graph_id": "triage"}, headers=headers)
    assert moved.status_code == 422 and "graph 'triage'" in moved.json()["message"]


def test_settings_sent_in_context_are_checked_and_used(serve: Any) -> None:
    # LangGraph's newer clients send an assistant's run settings as `context`, not
    # `config.configurable`: they were stored and ignored (a typo passed silently).
    server = serve([{"content": "hi"}])
    headers = server.headers("ada")
    url = f"{server.base_url}/assistants"

    bad = httpx.post(
        url, json={"graph_id": "planner", "context": {"options": {"bogus": 1}}}, headers=headers
    )
    assert bad.status_code == 422, bad.text
    assert "bogus: Extra inputs are not permitted" in bad.json()["message"]

    made = httpx.post(
        url,
        json={
            "graph_id": "planner",
            "assistant_id": "context-planner",
            "config": {"configurable": {"options": {"review_plan": False}}},
            "context": {"options": {"review_plan": True}},
        },
        headers=headers,
    )
    assert made.status_code == 200, made.text
    changed = {"context": {"options": {"review_plan": "x"}}}
    moved = httpx.patch(f"{url}/context-planner", json=changed, headers=headers)
    assert moved.status_code == 422 and "review_plan" in moved.json()["message"]


def test_context_wins_over_configurable_when_both_name_a_setting() -> None:
    from runtime.assistants import _config_of
    from store.models import Assistant

    row = Assistant(
        assistant_id="a",
        tenant="t",
        graph_id="planner",
        config={"configurable": {"options": {"review_plan": False}, "model": "m1"}},
        context={"options": {"review_plan": True}},
    )
    config = _config_of(row)
    assert config.options == {"review_plan": True}
    assert config.model == "m1"


def test_an_unknown_assistant_names_the_ones_there_are(serve: Any) -> None:
    server = serve([{"content": "hi"}])
    headers = server.headers("ada")
    thread = httpx.post(f"{server.base_url}/threads", json={}, headers=headers).json()
    answer = httpx.post(
        f"{server.base_url}/threads/{thread['thread_id']}/runs",
        json={"assistant_id": "nosuch", "input": {}},
        headers=headers,
    )
    assert answer.status_code == 404, answer.text
    message = answer.json()["message"]
    assert "assistants: agent, planner, triage" in message
    assert "POST /assistants/search" in message
    # Built-in assistants' timestamps carry their time zone like every other.
    builtin = httpx.get(f"{server.base_url}/assistants/agent", headers=headers).json()
    assert builtin["created_at"].endswith(("Z", "+00:00")), builtin["created_at"]
