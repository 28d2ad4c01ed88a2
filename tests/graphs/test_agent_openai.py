"""The agent loop through the real langchain-openai client and a local OpenAI stub."""

from __future__ import annotations

import json
from pathlib import Path

from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from tests.helpers import count_notes


async def test_agent_calls_tools_over_http_and_finishes(data_dir: Path, openai_stub) -> None:  # type: ignore[no-untyped-def]
    openai_stub.reply(
        content="Saving.",
        tool_calls=[{"name": "notes_create", "args": {"title": "t", "body": "b"}}],
    )
    openai_stub.reply(content="Saved as note 1.")
    settings = Settings(
        data_dir=data_dir,
        model=f"openai-compatible:stub-model@{openai_stub.base_url}",
        openai_api_key="sk-real-openai-key",
        model_max_retries=0,
    )
    async with open_system(settings) as system:
        summary = await Runner(system).run(
            RunRequest(principal=local_principal(), input_text="note t")
        )
        assert (summary.stop_reason, summary.final_message) == ("completed", "Saved as note 1.")
        assert await count_notes(system) == 1

    first, second = openai_stub.requests
    assert first["model"] == "stub-model"
    assert first["messages"][0]["role"] == "system"
    tools = {tool["function"]["name"]: tool["function"] for tool in first["tools"]}
    assert {"notes_create", "notes_search", "notes_delete", "tickets_create"} <= set(tools)
    assert "http_fetch" not in tools  # only offered once domains are allowed
    assert tools["notes_create"]["parameters"]["required"] == ["title", "body"]
    tool_reply = second["messages"][-1]
    assert tool_reply["role"] == "tool" and json.loads(tool_reply["content"])["title"] == "t"
    # The OpenAI key is never sent to another host.
    assert all(
        "sk-real-openai-key" not in headers.get("authorization", "")
        for headers in openai_stub.request_headers
    )


async def test_provider_error_ends_the_run_in_error(data_dir: Path, openai_stub) -> None:  # type: ignore[no-untyped-def]
    openai_stub.fail(status=500, message="upstream exploded")
    settings = Settings(
        data_dir=data_dir,
        model=f"openai-compatible:stub-model@{openai_stub.base_url}",
        model_max_retries=0,
    )
    async with open_system(settings) as system:
        summary = await Runner(system).run(RunRequest(principal=local_principal(), input_text="x"))
    assert (summary.status, summary.run_status) == ("error", "error")
    assert "upstream exploded" in (summary.error or "")


async def test_web_search_answers_taint_the_run_and_are_audited(
    data_dir: Path, openai_stub
) -> None:  # type: ignore[no-untyped-def]
    openai_stub.reply(
        "Paris is the capital of France.",
        citations=[
            {"url": "https://example.org/paris", "title": "Paris", "cited": "Paris is the capital"}
        ],
        search_query="capital of France",
    )
    settings = Settings(
        data_dir=data_dir,
        model="openai:gpt-4o-mini",
        openai_api_key="sk-test",
        openai_base_url=openai_stub.base_url,
        model_max_retries=0,
        assistants={
            "searcher": {
                "graph_id": "agent",
                "model": "openai:gpt-4o-mini",
                "options": {"web_search": True},
            }
        },
    )
    principal = local_principal()
    async with open_system(settings) as system:
        runner = Runner(system)
        summary = await runner.run(
            RunRequest(principal=principal, assistant_id="searcher", input_text="capital?")
        )
        assert summary.stop_reason == "completed"
        graph = runner.graph(system.graphs.get("agent"))
        state = await graph.aget_state({"configurable": {"thread_id": summary.thread_id}})
        audited = await system.executor.audit.entries(
            tenant=principal.tenant, tool="web_search", with_payloads=True
        )
    assert {"type": "web_search"} in openai_stub.requests[-1]["tools"]
    # What the search read is untrusted: later writes in this run need approval.
    assert state.values["tainted"] is True
    [entry] = audited
    assert entry["event"] == "web_search" and entry["actor"] == principal.user
    assert entry["args"] == {"queries": ["capital of France"]}
    assert entry["result"]["citations"][0]["url"] == "https://example.org/paris"
