"""The model layer: one module per provider behind ``build_chat_model``."""

from providers.errors import ModelSpecError, ScriptError
from providers.factory import ProviderSettings, build_chat_model
from providers.specs import ModelSpec, parse_spec

__all__ = [
    "ModelSpec",
    "ModelSpecError",
    "ProviderSettings",
    "ScriptError",
    "build_chat_model",
    "parse_spec",
]
