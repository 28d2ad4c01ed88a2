"""Errors of the model layer."""


class ModelSpecError(ValueError):
    """A model spec is malformed or names something that cannot be loaded."""


class ScriptError(RuntimeError):
    """A scripted model's script is malformed, exhausted or raised."""


class ProviderError(RuntimeError):
    """A model call failed in a way the caller should see; ``code`` names the failure."""

    code = "provider_error"


class NoCapableDeployment(ProviderError):
    """No deployment of the alias can serve the call (capabilities, context window, breakers)."""

    code = "no_capable_deployment"


class AllDeploymentsFailed(ProviderError):
    """Every deployment that could serve the call failed; ``attempts`` says how each one did."""

    code = "all_deployments_failed"

    def __init__(self, message: str, attempts: list[str]) -> None:
        super().__init__(message)
        self.attempts = attempts


class StreamInterrupted(ProviderError):
    """A stream broke after its first token was sent: the answer is incomplete, never
    silently truncated, and no fallback can repair what the caller already received."""

    code = "stream_interrupted"


class InvalidModelOutput(ProviderError):
    """The provider answered with something unusable (e.g. tool-call arguments that are not
    JSON); the router treats it as a failure of that deployment."""

    code = "invalid_model_output"


class ContentFiltered(InvalidModelOutput):
    """The provider's content filter (or safety settings) stopped the answer: an empty or
    cut-off message that must not pass for an answer. Not retried on the same deployment
    (the same prompt is filtered again); the router falls back like for any failure, and
    the deployment's breaker does not count it (the provider is healthy)."""

    code = "content_filtered"


class StructuredOutputError(ProviderError):
    """The model's structured answer failed validation, also after one repair attempt."""

    code = "structured_output_invalid"


class BudgetExceeded(ProviderError):
    """A token or spend budget forbids the call; ``reason`` is the run's stop reason
    (``token_budget`` or ``spend_budget``) and the message names the budget."""

    code = "budget_exceeded"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class MissingDefaultKey(ProviderError):
    """A deployment has no default API key and the calling tenant stored none of its own;
    the router falls back to the next deployment (not held against the breaker)."""
