"""Structured model calls from graph nodes, with the run's accounting attached.

Planner and workflow nodes ask the assistant's model for validated pydantic objects
(``providers.structured.generate_structured``: one repair attempt). This module adds
what every call of a run needs: the prompt's name and version and the caller for the
usage rows, the run's remaining token budget, and the tokens the call used, so graphs
can keep their own per-run totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, SystemMessage
from langgraph.config import get_config
from pydantic import BaseModel

from graphs.context import RunContext
from graphs.prompts import Prompt, load_prompt
from providers.router import CallInfo, RouterChatModel
from providers.structured import generate_structured

T = TypeVar("T", bound=BaseModel)


def family_prompt(ctx: RunContext, name: str) -> Prompt:
    """Prompt ``name`` at the version the thread pinned for its graph's main prompt.

    A graph's prompts are versioned together (``planner.v2.md`` comes with
    ``replanner.v2.md``), so one pinned version selects all of them and a thread never
    mixes versions.

    Raises:
        PromptNotFound: the family lacks ``name`` at the pinned version.
    """
    return load_prompt(name, ctx.prompt.version if ctx.prompt else None)


def base_model(ctx: RunContext) -> BaseChatModel:
    """The assistant's chat model without its tool binding (structured calls bind their own)."""
    model = getattr(ctx.model, "bound", ctx.model)
    assert isinstance(model, BaseChatModel), f"not a chat model: {type(model).__name__}"
    return model


def call_info(
    ctx: RunContext, prompt: Prompt, node: str, *, max_tokens: int | None = None
) -> dict[str, Any]:
    """Router kwargs recording who calls, from which node, with which prompt version."""
    model = base_model(ctx)
    if not isinstance(model, RouterChatModel):
        return {}
    metadata = get_config().get("metadata") or {}
    return {
        "call": CallInfo(
            tenant=ctx.principal.tenant,
            user=ctx.principal.user,
            run_id=ctx.run_id,
            assistant_id=metadata.get("assistant_id"),
            node=node,
            prompt_name=prompt.name,
            prompt_version=prompt.version,
            max_tokens=max_tokens,
        )
    }


async def structured_call(
    ctx: RunContext,
    schema: type[T],
    prompt: Prompt,
    messages: Sequence[BaseMessage],
    *,
    node: str,
    max_tokens: int | None = None,
) -> tuple[T, int]:
    """Ask for an instance of ``schema`` with ``prompt`` as the system message; return it
    and the tokens the call (with its repair attempt, if any) used.

    Raises:
        StructuredOutputError: the answer is invalid, also after one repair attempt.
        BudgetExceeded: a token or spend budget forbids the call.
        ProviderError: the call itself failed.
    """
    with get_usage_metadata_callback() as usage:
        result = await generate_structured(
            base_model(ctx),
            [SystemMessage(prompt.text), *messages],
            schema,
            **call_info(ctx, prompt, node, max_tokens=max_tokens),
        )
    tokens = sum(int(item.get("total_tokens", 0)) for item in usage.usage_metadata.values())
    return result, tokens
