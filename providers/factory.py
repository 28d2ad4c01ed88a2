"""Build a chat model from a deployment spec."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from providers.specs import parse_spec


@dataclass(frozen=True)
class ProviderSettings:
    """What the providers need from settings; keys are passed explicitly, never read here."""

    openai_api_key: str | None = None
    openai_base_url: str | None = None
    compatible_api_key: str | None = None
    """Key for ``openai-compatible:`` endpoints (never the OpenAI key)."""
    google_api_key: str | None = None
    google_base_url: str | None = None
    """Gemini API endpoint; default: Google's public one."""
    timeout_seconds: float = 60.0
    max_retries: int = 2


def build_chat_model(spec: str, settings: ProviderSettings) -> BaseChatModel:
    """The chat model for ``spec``.

    Raises:
        ModelSpecError: the spec is malformed, or its script, function or key is missing.
    """
    parsed = parse_spec(spec)
    if parsed.kind == "scripted":
        from providers.scripted import build_scripted_model

        return build_scripted_model(parsed.target)
    if parsed.kind == "google":
        from providers.google import build_google_model

        return build_google_model(parsed, settings)
    from providers.openai import build_openai_model

    return build_openai_model(parsed, settings)
