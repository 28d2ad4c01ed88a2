"""Google Gemini chat models (the Gemini Developer API) via langchain-google-genai.

The library and the google-genai SDK under it configure themselves from the environment:
``GOOGLE_API_KEY``/``GEMINI_API_KEY`` (the key), ``GOOGLE_GENAI_USE_VERTEXAI`` (switches to
Vertex AI), ``GOOGLE_GEMINI_BASE_URL``, ``GOOGLE_GENAI_API_VERSION``, ``LANGSMITH_GATEWAY``;
in Vertex mode it even writes ``GOOGLE_API_KEY`` into ``os.environ`` for a moment. Every
one of those is overridden here with an explicit value from the settings, so a model is
built from ``ProviderSettings`` alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.genai import Client
from google.genai.types import HttpOptions
from langchain_core.language_models import BaseChatModel
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_google_genai.chat_models import _ClientCleanup

from providers.errors import ModelSpecError

if TYPE_CHECKING:
    from providers.factory import ProviderSettings
    from providers.specs import ModelSpec

GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com"
GOOGLE_API_VERSION = "v1beta"


def build_google_model(spec: ModelSpec, settings: ProviderSettings) -> BaseChatModel:
    """A ``ChatGoogleGenerativeAI`` for a ``google:`` spec, configured only from ``settings``.

    The key, base URL, API version and backend (the Developer API, never Vertex AI) are
    passed explicitly. ``settings.max_retries`` counts retries as langchain-openai does;
    google-genai counts attempts and reads 0 as "its default of 5 retries", so one is
    added. The model holds its own HTTP clients: close them with ``aclose_google_model``.

    Raises:
        ModelSpecError: no Google API key in the settings, or not a ``google:`` spec.
    """
    if spec.kind != "google":
        raise ModelSpecError(f"model spec {spec}: not a Google model")
    if not settings.google_api_key:
        raise ModelSpecError(
            f"model spec {spec}: no Google API key is configured; set GOOGLE_API_KEY "
            "(or RELAYGRAPH_GOOGLE_API_KEY, GEMINI_API_KEY)"
        )
    base_url = settings.google_base_url or GOOGLE_BASE_URL
    model = ChatGoogleGenerativeAI(
        model=spec.target,
        google_api_key=settings.google_api_key,
        base_url=base_url,
        api_version=GOOGLE_API_VERSION,
        vertexai=False,
        timeout=settings.timeout_seconds,
        max_retries=settings.max_retries + 1,
    )
    if model.client is not None and model.client.vertexai:
        # The SDK client is built without ``vertexai`` and so obeys GOOGLE_GENAI_USE_VERTEXAI
        # (or GOOGLE_GENAI_USE_ENTERPRISE) even though the model said ``vertexai=False``.
        _replace_client(model, settings.google_api_key, base_url)
    return model


def _replace_client(model: ChatGoogleGenerativeAI, api_key: str, base_url: str) -> None:
    """Swap the model's SDK client for a Developer API one with the same HTTP options."""
    assert model.client is not None
    options = model.client._api_client._http_options
    headers = {
        name: value
        for name, value in (options.headers or {}).items()
        if name.lower() not in ("x-goog-api-key", "x-goog-api-client", "content-type")
    }
    model.client.close()
    model.client = Client(
        vertexai=False,
        api_key=api_key,
        http_options=HttpOptions(
            base_url=base_url, api_version=GOOGLE_API_VERSION, headers=headers
        ),
    )
    model._client_cleanup = _ClientCleanup(model.client)


async def aclose_google_model(model: BaseChatModel) -> None:
    """Close the model's HTTP clients (sync and async); other models: no-op.

    Call it on the event loop that made the model's async calls.
    """
    if isinstance(model, ChatGoogleGenerativeAI):
        await model.aclose()
