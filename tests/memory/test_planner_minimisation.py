"""Personal data the user types, minimised in the planner's own model calls (issue 5): the
built-in ``planner`` assistant, with the real OpenAI client against the local stub, sends
``<EMAIL_1>`` where the user (or a reviewer's feedback) typed an address in the plan and
replan/final-answer calls, while the plan in the state and in the review, the streamed
events and the final answer show the address. The map is saved in the planner's private
``pseudonyms`` channel, so tokens keep their numbers across the thread's planner runs;
another thread or user never gets it; ``privacy_minimise`` off leaves every call as typed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graphs.planner import compile_planner
from identity import Principal
from runtime.runs import Runner, RunSummary
from runtime.settings import Settings
from runtime.system import open_system
from tests.helpers import call
from tests.memory.pseudonym_helpers import (
    ALICE,
    ANY_TOKEN,
    BOB,
    FIRST,
    SECOND,
    decide,
    outbox,
    run_events,
    run_turn,
    stub_settings,
    thread_state,
)

BOSS = "boss@example.org"
REVIEWED = "reviewed-planner"


def _settings(data_dir: Path, openai_stub: Any, minimise: list[str] | None) -> Settings:
    reviewed = {REVIEWED: {"graph_id": "planner", "options": {"review_plan": True}}}
    return stub_settings(data_dir, openai_stub, minimise, assistants=reviewed)


async def _run(
    runner: Runner,
    principal: Principal,
    text: str,
    thread_id: str | None = None,
    assistant: str = "planner",
) -> RunSummary:
    return await run_turn(runner, principal, assistant, text=text, thread_id=thread_id)


async def _decide(
    runner: Runner, thread_id: str, decision: dict[str, Any], assistant: str = REVIEWED
) -> RunSummary:
    return await decide(runner, ALICE, assistant, thread_id, decision)


async def _state(system: Any, thread_id: str) -> dict[str, Any]:
    return await thread_state(system, thread_id, compile_planner)


async def _assert_clean_events(system: Any, run_id: str) -> None:
    """What the run streamed holds neither a token nor the private ``pseudonyms`` channel."""
    events = json.dumps(await run_events(system, run_id))
    assert not ANY_TOKEN.search(events) and '"pseudonyms"' not in events


def _step(goal: str, done_when: str = "answered") -> dict[str, Any]:
    return {"goal": goal, "tools": [], "done_when": done_when}


def _plan(*steps: dict[str, Any]) -> dict[str, Any]:
    return call("submit_plan", steps=list(steps))


def _finish(answer: str) -> dict[str, Any]:
    return call("revise_plan", action="finish", answer=answer)


def _user_text(request: dict[str, Any]) -> str:
    [text] = [m["content"] for m in request["messages"] if m["role"] == "user"]
    return str(text)


def _tool_names(request: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in request.get("tools") or []]


async def test_plan_and_final_calls_send_tokens_and_the_user_sees_values(
    data_dir: Path, openai_stub: Any
) -> None:
    async with open_system(_settings(data_dir, openai_stub, ["special", "personal"])) as system:
        runner = Runner(system)

        openai_stub.reply(
            tool_calls=[_plan(_step("Look up what I know about <EMAIL_1>", "<EMAIL_1> known"))]
        )
        openai_stub.reply("Nothing is known about <EMAIL_1>.")  # the step agent
        openai_stub.reply(tool_calls=[_finish("I found nothing about <EMAIL_1> [step 1].")])
        done = await _run(runner, ALICE, f"What do I know about {FIRST}?")
        assert done.stop_reason == "completed", done

        plan_call, step_call, final_call = openai_stub.requests[-3:]
        assert _tool_names(plan_call) == ["submit_plan"]
        assert _tool_names(final_call) == ["revise_plan"]
        for request in (plan_call, step_call, final_call):
            assert FIRST not in json.dumps(request)
        assert _user_text(plan_call).startswith("Request:\nWhat do I know about <EMAIL_1>?\n")
        # The replanner sees the request, the plan and the step's finding with the token.
        sent = _user_text(final_call)
        assert sent.startswith("Request:\nWhat do I know about <EMAIL_1>?\n")
        assert "Look up what I know about <EMAIL_1>" in sent
        assert "found: Nothing is known about <EMAIL_1>." in sent
        assert "<EMAIL_1>" in _user_text(step_call)  # one map: the step's token is the same

        assert done.final_message is not None
        assert done.final_message.startswith(f"I found nothing about {FIRST} [step 1].")
        assert (
            f"[step 1] Look up what I know about {FIRST} — done: Nothing is known about {FIRST}."
            in done.final_message
        )
        state = await _state(system, done.thread_id)
        assert [(s["goal"], s["done_when"]) for s in state["plan"]] == [
            (f"Look up what I know about {FIRST}", f"{FIRST} known")
        ]
        assert state["messages"][-1].content == done.final_message
        assert state["pseudonyms"] == {"acme": {"alice": {"<EMAIL_1>": FIRST}}}
        shown = {key: value for key, value in state.items() if key != "pseudonyms"}
        assert not ANY_TOKEN.search(json.dumps(shown, default=str))
        events = json.dumps(await run_events(system, done.run_id))
        assert FIRST in events
        assert not ANY_TOKEN.search(events), "a token reached the user's stream"
        assert '"pseudonyms"' not in events  # a private channel
        graph = compile_planner(system.checkpointer)  # the graph's output leaves it out
        assert "plan" in graph.output_channels and "pseudonyms" not in graph.output_channels

        # The next planner run of the thread: the first address keeps its token, a new one
        # gets the next number (the map was continued from the planner's state).
        openai_stub.reply(tool_calls=[_plan(_step("Compare <EMAIL_2> with <EMAIL_1>"))])
        openai_stub.reply("<EMAIL_2> is newer than <EMAIL_1>.")
        openai_stub.reply(tool_calls=[_finish("<EMAIL_2> is the newer one [step 1].")])
        again = await _run(runner, ALICE, f"Compare {SECOND} with {FIRST}.", done.thread_id)
        assert again.stop_reason == "completed", again
        plan_call, step_call, final_call = openai_stub.requests[-3:]
        assert _user_text(plan_call).startswith("Request:\nCompare <EMAIL_2> with <EMAIL_1>.\n")
        assert "Compare <EMAIL_2> with <EMAIL_1>" in _user_text(final_call)
        for request in (plan_call, step_call, final_call):
            assert FIRST not in json.dumps(request) and SECOND not in json.dumps(request)
        assert again.final_message is not None
        assert again.final_message.startswith(f"{SECOND} is the newer one [step 1].")
        state = await _state(system, done.thread_id)
        assert state["plan"][0]["goal"] == f"Compare {SECOND} with {FIRST}"
        assert state["pseudonyms"] == {"acme": {"alice": {"<EMAIL_1>": FIRST, "<EMAIL_2>": SECOND}}}
        await _assert_clean_events(system, again.run_id)

        # Another thread of the same user, and another user: the map is not theirs.
        for principal in (ALICE, BOB):
            openai_stub.reply(tool_calls=[_plan(_step("Find <EMAIL_1>"))])
            openai_stub.reply("No <EMAIL_1> here.")
            openai_stub.reply(tool_calls=[_finish("Hello <EMAIL_1>.")])
            other = await _run(runner, principal, "Who do I write to?")
            assert other.stop_reason == "completed", other
            assert other.final_message is not None
            assert other.final_message.startswith("Hello <EMAIL_1>.")
            state = await _state(system, other.thread_id)
            assert state["plan"][0]["goal"] == "Find <EMAIL_1>"
            assert "pseudonyms" not in state
            seen = json.dumps(await run_events(system, other.run_id))
            assert FIRST not in seen and SECOND not in seen
            assert FIRST not in json.dumps(openai_stub.requests[-3:])


async def test_the_reviewer_sees_values_and_feedback_is_minimised(
    data_dir: Path, openai_stub: Any
) -> None:
    async with open_system(_settings(data_dir, openai_stub, ["special", "personal"])) as system:
        runner = Runner(system)

        openai_stub.reply(tool_calls=[_plan(_step("Email <EMAIL_1>", "<EMAIL_1> emailed"))])
        paused = await _run(runner, ALICE, f"Get in touch with {FIRST}.", assistant=REVIEWED)
        assert paused.stop_reason == "waiting_for_human", paused
        assert _user_text(openai_stub.requests[-1]).startswith(
            "Request:\nGet in touch with <EMAIL_1>.\n"
        )
        [request] = paused.interrupt["action_requests"]
        assert request["args"] == {
            "steps": [{"goal": f"Email {FIRST}", "tools": [], "done_when": f"{FIRST} emailed"}]
        }
        await _assert_clean_events(system, paused.run_id)

        # Rejected with feedback that names a new address: a later run (a fresh map,
        # continued from the state) minimises the feedback, the request and the old plan.
        openai_stub.reply(tool_calls=[_plan(_step("Email <EMAIL_2> about <EMAIL_1>"))])
        again = await _decide(runner, paused.thread_id, {"type": "reject", "message": SECOND})
        assert again.stop_reason == "waiting_for_human", again
        sent = _user_text(openai_stub.requests[-1])
        assert sent.startswith("Request:\nGet in touch with <EMAIL_1>.\n")
        assert "Email <EMAIL_1> (tools: none; done when: <EMAIL_1> emailed)" in sent
        assert sent.endswith("Their feedback: <EMAIL_2>")
        assert FIRST not in json.dumps(openai_stub.requests[-1])
        assert SECOND not in json.dumps(openai_stub.requests[-1])
        [request] = again.interrupt["action_requests"]
        assert request["args"]["steps"][0]["goal"] == f"Email {SECOND} about {FIRST}"

        # Approved in another run: the step and the final call keep the same tokens.
        openai_stub.reply("Wrote to <EMAIL_2> about <EMAIL_1>.")
        openai_stub.reply(tool_calls=[_finish("Done: <EMAIL_2> knows about <EMAIL_1>.")])
        done = await _decide(runner, paused.thread_id, {"type": "approve"})
        assert done.stop_reason == "completed", done
        step_call, final_call = openai_stub.requests[-2:]
        assert "Do step 1: Email <EMAIL_2> about <EMAIL_1>" in _user_text(step_call)
        assert "found: Wrote to <EMAIL_2> about <EMAIL_1>." in _user_text(final_call)
        for sent_request in (step_call, final_call):
            assert FIRST not in json.dumps(sent_request)
            assert SECOND not in json.dumps(sent_request)
        assert done.final_message is not None
        assert done.final_message.startswith(f"Done: {SECOND} knows about {FIRST}.")
        state = await _state(system, paused.thread_id)
        assert state["pseudonyms"] == {"acme": {"alice": {"<EMAIL_1>": FIRST, "<EMAIL_2>": SECOND}}}
        await _assert_clean_events(system, done.run_id)


async def test_a_step_resumed_in_a_later_run_keeps_its_tokens(
    data_dir: Path, openai_stub: Any
) -> None:
    """A value first minimised inside a step (here one the plan names) is a token again
    when the step, interrupted for an approval, continues in the next run."""
    async with open_system(_settings(data_dir, openai_stub, ["special", "personal"])) as system:
        runner = Runner(system)
        openai_stub.reply(tool_calls=[_plan(_step(f"Email <EMAIL_1>, copying {BOSS}"))])
        openai_stub.reply(
            tool_calls=[call("email_send", to=["<EMAIL_1>", "<EMAIL_2>"], subject="Hi", body="Hi")]
        )
        paused = await _run(runner, ALICE, f"Say hello to {FIRST}.")
        assert paused.stop_reason == "waiting_for_human", paused
        step_call = openai_stub.requests[-1]
        assert "Do step 1: Email <EMAIL_1>, copying <EMAIL_2>" in _user_text(step_call)
        assert FIRST not in json.dumps(step_call) and BOSS not in json.dumps(step_call)
        [request] = paused.interrupt["action_requests"]
        assert request["name"] == "email_send" and request["args"]["to"] == [FIRST, BOSS]

        openai_stub.reply("Sent to <EMAIL_1> and <EMAIL_2>.")
        openai_stub.reply(tool_calls=[_finish("Emailed <EMAIL_1>, copying <EMAIL_2>.")])
        done = await _decide(runner, paused.thread_id, {"type": "approve"}, assistant="planner")
        assert done.stop_reason == "completed", done
        resumed, final_call = openai_stub.requests[-2:]
        for sent in (resumed, final_call):
            assert FIRST not in json.dumps(sent) and BOSS not in json.dumps(sent)
        assistant = next(m for m in resumed["messages"] if m.get("tool_calls"))
        arguments = json.loads(assistant["tool_calls"][0]["function"]["arguments"])
        assert arguments["to"] == ["<EMAIL_1>", "<EMAIL_2>"]
        assert [recipients for recipients, _ in await outbox(system)] == [[FIRST, BOSS]]
        assert done.final_message is not None
        assert done.final_message.startswith(f"Emailed {FIRST}, copying {BOSS}.")
        state = await _state(system, paused.thread_id)
        assert state["pseudonyms"] == {"acme": {"alice": {"<EMAIL_1>": FIRST, "<EMAIL_2>": BOSS}}}
        await _assert_clean_events(system, done.run_id)


@pytest.mark.parametrize("minimise", [None, []], ids=["default-special", "off"])
async def test_the_setting_decides_what_the_planner_minimises(
    data_dir: Path, openai_stub: Any, minimise: list[str] | None
) -> None:
    async with open_system(_settings(data_dir, openai_stub, minimise)) as system:
        runner = Runner(system)
        text = f"My doctor says I have diabetes; send the results to {FIRST}"
        openai_stub.reply(tool_calls=[_plan(_step("Send the <HEALTH_2> results to <EMAIL_1>"))])
        openai_stub.reply("Sent to <EMAIL_1>.")
        openai_stub.reply(tool_calls=[_finish("Sent the <HEALTH_2> results to <EMAIL_1>.")])
        done = await _run(runner, ALICE, text)
        assert done.stop_reason == "completed", done
        plan_call, _, final_call = openai_stub.requests[-3:]
        state = await _state(system, done.thread_id)
        assert done.final_message is not None
        if minimise is None:  # special-category text: every finding in it becomes a token
            minimised = "My <HEALTH_1> says I have <HEALTH_2>; send the results to <EMAIL_1>"
            assert _user_text(plan_call).startswith(f"Request:\n{minimised}\n")
            assert _user_text(final_call).startswith(f"Request:\n{minimised}\n")
            assert FIRST not in json.dumps([plan_call, final_call])
            assert "diabetes" not in json.dumps([plan_call, final_call])
            assert done.final_message.startswith(f"Sent the diabetes results to {FIRST}.")
            assert state["plan"][0]["goal"] == f"Send the diabetes results to {FIRST}"
            assert "pseudonyms" in state
        else:  # off: sent as typed, and a token the model invents stays one
            assert _user_text(plan_call).startswith(f"Request:\n{text}\n")
            assert _user_text(final_call).startswith(f"Request:\n{text}\n")
            assert done.final_message.startswith("Sent the <HEALTH_2> results to <EMAIL_1>.")
            assert state["plan"][0]["goal"] == "Send the <HEALTH_2> results to <EMAIL_1>"
            assert "pseudonyms" not in state

        # An address alone is personal, not special: sent as typed under either setting.
        openai_stub.reply(tool_calls=[_plan(_step(f"Write to {FIRST}"))])
        openai_stub.reply("Written.")
        openai_stub.reply(tool_calls=[_finish("Written.")])
        plain = await _run(runner, ALICE, f"Please write to {FIRST} today.")
        assert plain.stop_reason == "completed", plain
        plan_call, _, final_call = openai_stub.requests[-3:]
        assert _user_text(plan_call).startswith(f"Request:\nPlease write to {FIRST} today.\n")
        assert f"Write to {FIRST}" in _user_text(final_call)
        assert "pseudonyms" not in await _state(system, plain.thread_id)
