"""The offline demo model answers structured-output requests (providers/scripted_structured.py):
schema-valid, derived from the request, the same every time; JSON scripts are unaffected."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, ConfigDict, Field

from graphs.planner import Plan, Replan
from graphs.workflows.triage import Classification, Draft
from providers import ProviderSettings, build_chat_model
from providers.factory import build_router
from providers.router import CallInfo
from providers.scripted import ScriptedChatModel
from providers.scripted_structured import request_text
from providers.structured import generate_structured
from runtime.settings import DEMO_MODEL
from tests.helpers import write_script


class Nested(BaseModel):
    model_config = ConfigDict(title="record_things")

    kind: Literal["alpha", "beta", "gamma"]
    count: int = Field(ge=3)
    ratio: float = Field(gt=0.5, le=0.9)
    label: str = Field(min_length=12, max_length=14)
    flags: list[bool] = Field(min_length=2)
    optional_note: str | None = None
    inner: Plan


def _demo() -> ScriptedChatModel:
    model = build_chat_model(DEMO_MODEL, ProviderSettings())
    assert isinstance(model, ScriptedChatModel)
    return model


@pytest.mark.parametrize("schema", [Plan, Replan, Classification, Draft, Nested])
async def test_demo_model_answers_every_schema_validly_and_deterministically(
    schema: type[BaseModel],
) -> None:
    messages = [HumanMessage("Request:\nThe billing page is broken, urgent beta fix\n\nTools: x")]
    first = await generate_structured(_demo(), messages, schema)
    again = await generate_structured(_demo(), messages, schema)
    assert isinstance(first, schema) and first == again


async def test_answers_are_derived_from_the_request() -> None:
    text = "Request:\nOur invoices show the wrong billing address, this is urgent\n\nmore"
    classified = await generate_structured(_demo(), [HumanMessage(text)], Classification)
    assert classified.category == "billing" and classified.urgency == "urgent"
    assert classified.summary == "Our invoices show the wrong billing address, this is urgent"
    assert "invoices" in classified.search_terms and "this" not in classified.search_terms

    plan = await generate_structured(_demo(), [HumanMessage("find notes about launch")], Plan)
    assert [step.goal for step in plan.steps] == ["find notes about launch"]
    decision = await generate_structured(_demo(), [HumanMessage(text)], Replan)
    assert decision.action == "finish" and "[step 1]" in (decision.answer or "")
    nested = await generate_structured(_demo(), [HumanMessage("gamma please")], Nested)
    assert nested.kind == "gamma" and nested.count == 3 and len(nested.flags) == 2


async def test_through_the_router_with_usage_and_capability_checks() -> None:
    router = build_router(DEMO_MODEL, {}, ProviderSettings())
    try:
        draft = await generate_structured(
            router, [HumanMessage("Request:\nreset my password")], Draft, call=CallInfo()
        )
    finally:
        await router.aclose()
    assert draft.ticket_title == "reset my password" and "reset my password" in draft.reply


async def test_json_scripts_still_play_their_own_turns(tmp_path: Path) -> None:
    turns: list[dict[str, Any]] = [
        {
            "tool_calls": [
                {"name": "submit_plan", "args": {"steps": [{"goal": "g", "done_when": "d"}]}}
            ]
        }
    ]
    model = build_chat_model(write_script(tmp_path / "s.json", turns), ProviderSettings())
    assert isinstance(model, ScriptedChatModel) and not model.structured_answers
    plan = await generate_structured(model, [HumanMessage("anything")], Plan)
    assert [step.goal for step in plan.steps] == ["g"]


def test_request_text_reads_the_request_block() -> None:
    assert request_text([HumanMessage("Request:\nfix it\n\nPlan and progress: ...")]) == "fix it"
    assert request_text([HumanMessage("just this")]) == "just this"
    assert request_text([]) == "the request"
