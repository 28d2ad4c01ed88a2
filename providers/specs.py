"""Model specs: ``openai:MODEL``, ``google:MODEL``, ``openai-compatible:MODEL@BASE_URL``,
``scripted:PATH.json``, ``scripted:module:function``, ``scripted:/path/file.py:function``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from providers.errors import ModelSpecError

ProviderKind = Literal["openai", "google", "openai-compatible", "scripted"]
KINDS: tuple[str, ...] = ("openai", "google", "openai-compatible", "scripted")


@dataclass(frozen=True)
class ModelSpec:
    kind: ProviderKind
    target: str
    base_url: str | None = None

    def __str__(self) -> str:
        if self.base_url:
            return f"{self.kind}:{self.target}@{self.base_url}"
        return f"{self.kind}:{self.target}"


def parse_spec(spec: str) -> ModelSpec:
    """Parse a deployment spec.

    Raises:
        ModelSpecError: the spec has no known provider prefix or lacks its parts.
    """
    kind, sep, rest = spec.strip().partition(":")
    if not sep or kind not in KINDS or not rest:
        raise ModelSpecError(
            f"model spec {spec!r} is not understood; use one of: openai:MODEL, google:MODEL, "
            "openai-compatible:MODEL@BASE_URL, scripted:PATH.json, scripted:module:function"
        )
    if kind == "openai-compatible":
        model, at, base_url = rest.partition("@")
        if not at or not model or not base_url.startswith(("http://", "https://")):
            raise ModelSpecError(
                f"model spec {spec!r}: openai-compatible needs MODEL@BASE_URL, "
                "e.g. openai-compatible:llama3@http://127.0.0.1:11434/v1"
            )
        return ModelSpec("openai-compatible", model, base_url)
    return ModelSpec(kind, rest)  # type: ignore[arg-type]
