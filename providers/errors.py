"""Errors of the model layer."""


class ModelSpecError(ValueError):
    """A model spec is malformed or names something that cannot be loaded."""


class ScriptError(RuntimeError):
    """A scripted model's script is malformed, exhausted or raised."""
