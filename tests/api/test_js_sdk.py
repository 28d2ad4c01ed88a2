"""The official JS client, ``@langchain/langgraph-sdk`` (pinned in js/package.json), against a
real relaygraph server: ``js/client.mjs`` walks assistants, threads, a streamed run up to an
interrupt, state, a streamed resume, history, create + join, cancel, wait and a 404, asserts
every step and prints one JSON summary line, which is checked again here.

Needs Node and npm: missing, the test fails in CI (``CI=true``) and is skipped elsewhere.
``npm ci`` installs the pinned SDK into ``js/node_modules`` when that is not current.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.node_clients import node_with_packages, run_client

pytestmark = [pytest.mark.slow, pytest.mark.js]

JS = Path(__file__).resolve().parent / "js"
MODEL = f"scripted:{Path(__file__).with_name('js_sdk_model.py')}:turn"


@pytest.fixture
def node() -> str:
    """Node, after `npm ci` made js/node_modules current (before any server starts)."""
    return node_with_packages(JS, needed_for="the JS SDK test")


def test_langgraph_js_sdk_walk(node: str, serve: Any) -> None:
    server = serve(model=MODEL)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANGGRAPH_API_URL": server.base_url,
        "RELAYGRAPH_TEST_KEY": server.keys["alice"],
    }
    summary = run_client(node, JS / "client.mjs", env=env)

    pinned = json.loads((JS / "package.json").read_text())["dependencies"]
    assert summary["sdk_version"] == pinned["@langchain/langgraph-sdk"]
    steps = summary["steps"]
    assert list(steps) == [
        "assistants_search",
        "assistants_pagination",
        "threads_create",
        "stream_until_interrupt",
        "join_stream_rejoin",
        "get_state_interrupted",
        "stream_resume",
        "get_history",
        "state_at_checkpoint",
        "create_and_join",
        "cancel",
        "wait",
        "stateless_stream",
        "unknown_thread_404",
    ]
    assert "agent" in steps["assistants_search"]["graph_ids"]
    paging = steps["assistants_pagination"]
    assert paging["pages"] == paging["assistants"] >= 2 and paging["last_next"] is None
    assert steps["threads_create"]["metadata"]["purpose"] == "js-sdk"

    streamed = steps["stream_until_interrupt"]
    assert {"metadata", "values", "updates", "messages"} <= set(streamed["events"])
    assert "error" not in streamed["events"]
    assert (streamed["interrupt_tool"], streamed["interrupt_args"]) == (
        "notes_delete",
        {"note_id": 1},
    )
    assert streamed["message_node"] == "model"
    assert streamed["reconnects"] == 0, "the stream closed before the run ended"
    rejoined = steps["join_stream_rejoin"]
    assert rejoined["after"] == 3 and rejoined["events"] == streamed["count"] - 3
    assert rejoined["values_only"] == ["metadata", "values"]

    state = steps["get_state_interrupted"]
    assert state["next"] == ["gate"] and state["interrupts"] == 1
    assert state["thread_status"] == "interrupted" and state["thread_graph_id"] == "agent"

    resumed = steps["stream_resume"]
    assert resumed["last_message"] == "finished" and "notes_delete" in resumed["tools"]
    assert resumed["thread_status"] == "idle"

    history = steps["get_history"]
    assert history["length"] > 5 and history["newest_last_message"] == "finished"
    assert history["paused_at_gate"] >= 1 and history["limited"] == 2
    at_checkpoint = steps["state_at_checkpoint"]
    assert at_checkpoint["next"] == ["gate"] and at_checkpoint["same_by_config"] is True

    joined = steps["create_and_join"]
    assert joined["joined_last_message"] == "echo: background"
    assert joined["final_status"] == "success" and joined["runs_on_thread"] == 3

    cancel = steps["cancel"]
    assert cancel["status"] == "interrupted" and cancel["thread_status"] == "idle"
    assert cancel["no_wait_status"] == "interrupted"

    waited = steps["wait"]
    assert waited["last_message"] == "echo: waited"
    assert waited["stateless_last_message"] == "echo: stateless"

    stateless = steps["stateless_stream"]
    assert stateless["last_message"] == "echo: no thread"
    assert {"metadata", "values", "messages"} <= set(stateless["events"])

    assert steps["unknown_thread_404"] == {
        "get": 404,
        "error": "not_found",
        "state": 404,
        "stream": 404,
    }
