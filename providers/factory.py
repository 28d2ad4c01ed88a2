"""Build a chat model from a deployment spec."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import ChatGenerationChunk

from providers.catalog import Catalog
from providers.errors import MissingDefaultKey, ModelSpecError
from providers.specs import parse_spec

if TYPE_CHECKING:
    from providers.router import RouterChatModel, RouterServices


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


DeploymentEntry = str | dict[str, Any]
"""A deployment spec, or ``{"spec": SPEC, <capability or price overrides>}``."""


def alias_entries(name: str, aliases: Mapping[str, Any]) -> tuple[list[DeploymentEntry], str]:
    """The deployments (and routing strategy) of ``name``: an alias from RELAYGRAPH_MODELS,
    or a single deployment spec. An alias maps to a list of entries, or to
    ``{"deployments": [...], "strategy": "ordered" | "cost" | "latency"}``.

    Raises:
        ModelSpecError: a malformed alias, or a name that is neither alias nor spec.
    """
    value = aliases.get(name)
    if value is None:
        parse_spec(name)
        return [name], "ordered"
    strategy = "ordered"
    if isinstance(value, dict):
        strategy = value.get("strategy", "ordered")
        value = value.get("deployments")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or strategy not in ("ordered", "cost", "latency"):
        raise ModelSpecError(
            f"model alias {name!r} must map to a non-empty list of deployment specs (or "
            '{"deployments": [...], "strategy": "ordered"|"cost"|"latency"})'
        )
    return value, strategy


def build_router(
    name: str,
    aliases: Mapping[str, Any],
    settings: ProviderSettings,
    *,
    catalog: Catalog | None = None,
    services: RouterServices | None = None,
    failure_threshold: int = 5,
    cooldown_seconds: float = 30.0,
) -> RouterChatModel:
    """A router over the deployments of alias (or spec) ``name``. The client libraries'
    own retries are switched off: the router retries, so attempts are not multiplied.

    Raises:
        ModelSpecError: the alias or one of its specs cannot be built.
    """
    from providers.breaker import CircuitBreaker
    from providers.catalog import with_overrides
    from providers.router import Deployment, RouterChatModel, RouterServices

    catalog = catalog or Catalog.load()
    entries, strategy = alias_entries(name, aliases)
    no_retries = replace(settings, max_retries=0)
    deployments = []
    for entry in entries:
        overrides: dict[str, Any] = {}
        if isinstance(entry, dict):
            overrides = dict(entry)
            spec_text = overrides.pop("spec", None)
            if not isinstance(spec_text, str):
                raise ModelSpecError(f"model alias {name!r}: a deployment object needs 'spec'")
        elif isinstance(entry, str):
            spec_text = entry
        else:
            raise ModelSpecError(f"model alias {name!r}: {entry!r} is not a deployment spec")
        spec = parse_spec(spec_text)
        info = catalog.info(spec.kind, spec.target)
        if overrides:
            info = with_overrides(info, overrides)
        deployments.append(
            Deployment(
                spec=spec,
                model=_default_model(spec_text, spec.kind, no_retries),
                info=info,
                breaker=CircuitBreaker(failure_threshold, cooldown_seconds),
                build_with_key=_keyed_builder(spec_text, spec.kind, no_retries),
            )
        )
    return RouterChatModel(
        alias=name,
        deployments=deployments,
        services=services or RouterServices(attempt_timeout_seconds=settings.timeout_seconds),
        strategy=strategy,  # type: ignore[arg-type]  # checked by alias_entries
    )


_KEY_SETTINGS = {"openai": "OPENAI_API_KEY", "google": "GOOGLE_API_KEY"}
"""Deployment kinds whose client cannot start without a key, and where it is configured."""


class KeylessModel(BaseChatModel):
    """Stands in for an ``openai:``/``google:`` deployment built without a default key:
    tenants that stored their own key are served by a client built with it; for anyone
    else a call fails with ``MissingDefaultKey`` naming the setting (the router then falls
    back to the next deployment), instead of the deployment failing at start-up."""

    spec: str
    setting: str

    @property
    def _llm_type(self) -> str:
        return "relaygraph-keyless"

    def missing(self) -> MissingDefaultKey:
        return MissingDefaultKey(
            f"{self.spec}: no default API key is configured (set {self.setting}) and this "
            "tenant has not stored its own key for it"
        )

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        raise self.missing()

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Streams like the client it stands in for would (never reached: see the router)."""
        raise self.missing()
        yield  # pragma: no cover  (makes this an async generator)


def _default_model(spec: str, kind: str, settings: ProviderSettings) -> BaseChatModel:
    """The deployment's model with the default key, or a ``KeylessModel`` when the kind
    needs a key and none is configured (tenants may still bring their own)."""
    setting = _KEY_SETTINGS.get(kind)
    if setting is not None and not getattr(settings, _KEY_FIELDS[kind]):
        return KeylessModel(spec=spec, setting=setting)
    return build_chat_model(spec, settings)


_KEY_FIELDS = {
    "openai": "openai_api_key",
    "openai-compatible": "compatible_api_key",
    "google": "google_api_key",
}


def _keyed_builder(
    spec: str, kind: str, settings: ProviderSettings
) -> Callable[[str], BaseChatModel] | None:
    """Builds ``spec``'s model with another key (a tenant's own), everything else equal;
    None for deployments without keys (scripted)."""
    field_name = _KEY_FIELDS.get(kind)
    if field_name is None:
        return None

    def build(api_key: str) -> BaseChatModel:
        keyed: dict[str, Any] = {field_name: api_key}
        return build_chat_model(spec, replace(settings, **keyed))

    return build
