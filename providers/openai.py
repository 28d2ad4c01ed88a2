"""OpenAI and OpenAI-compatible chat models (vLLM, Ollama, LM Studio) via langchain-openai."""

from __future__ import annotations

from typing import TYPE_CHECKING

import openai
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from providers.errors import ModelSpecError

if TYPE_CHECKING:
    from providers.factory import ProviderSettings
    from providers.specs import ModelSpec

OPENAI_BASE_URL = "https://api.openai.com/v1"
# Local servers ignore the key, but the OpenAI client refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"


def build_openai_model(spec: ModelSpec, settings: ProviderSettings) -> BaseChatModel:
    """A ``ChatOpenAI`` for an ``openai:`` or ``openai-compatible:`` spec.

    The key and base URL are always passed explicitly, so langchain-openai never falls
    back to ``OPENAI_API_KEY``/``OPENAI_API_BASE`` in the environment. Streaming usage is
    requested even from compatible servers, which langchain-openai leaves off by default.
    Each model gets its own async HTTP client: langchain-openai shares one per base URL
    across the process, whose pooled connections break once their event loop has closed
    (a second ``asyncio.run``, or the next test). Close it with ``aclose_openai_model``.

    Raises:
        ModelSpecError: an ``openai:`` spec without an OpenAI API key in the settings.
    """
    if spec.kind == "openai":
        if not settings.openai_api_key:
            raise ModelSpecError(
                f"model spec {spec}: no OpenAI API key is configured; set OPENAI_API_KEY "
                "(or use an openai-compatible:MODEL@BASE_URL or scripted: spec)"
            )
        base_url = settings.openai_base_url or OPENAI_BASE_URL
        api_key = settings.openai_api_key
    elif spec.kind == "openai-compatible":
        base_url = spec.base_url or ""
        # Never send the OpenAI key to another host: compatible servers get their own key.
        api_key = settings.compatible_api_key or PLACEHOLDER_API_KEY
    else:
        raise ModelSpecError(f"model spec {spec}: not an OpenAI or OpenAI-compatible model")
    return ChatOpenAI(
        model=spec.target,
        base_url=base_url,
        api_key=api_key,  # type: ignore[arg-type]
        timeout=settings.timeout_seconds,
        max_retries=settings.max_retries,
        stream_usage=True,
        http_async_client=openai.DefaultAsyncHttpxClient(),
    )


async def aclose_openai_model(model: BaseChatModel) -> None:
    """Close the model's own async HTTP client (its pooled connections); others: no-op."""
    if isinstance(model, ChatOpenAI) and model.http_async_client is not None:
        await model.http_async_client.aclose()
