"""Structured logs and traces, configured once per process from settings.

Logs: every line is one JSON object (structlog) carrying the context bound with
``structlog.contextvars`` (tenant, user, thread, run) and the current trace and span ids.
Records from the standard library's loggers (ours, uvicorn's, LangGraph's) go through the
same processors, so nothing bypasses the redaction below. Secrets and personal data never
reach a log line: values of sensitive keys are dropped and key-, token- and e-mail-shaped
strings are masked wherever they appear.

Traces: OpenTelemetry with an exporter chosen in settings (off by default, console, or OTLP
over gRPC). With tracing off nothing is instrumented, so it costs nothing per request.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, TextIO

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanProcessor,
)

if TYPE_CHECKING:
    from runtime.settings import Settings

LogFormat = Literal["auto", "json", "console"]
TracingExporter = Literal["off", "console", "otlp"]

REDACTED = "[redacted]"
# Keys whose values are never logged, whatever they hold.
SENSITIVE_KEYS = frozenset(
    {
        "api_key",
        "authorization",
        "password",
        "secret",
        "token",
        "x-api-key",
        "key",
        "args",
        "arguments",
        "content",
        "messages",
        "input",
        "body",
    }
)
# Strings that look like credentials or e-mail addresses are masked inside any value.
_MASKS = re.compile(
    r"rg_[A-Za-z0-9]{6,}_[A-Za-z0-9_-]{8,}"  # our API keys
    r"|sk-[A-Za-z0-9_-]{12,}"  # OpenAI-style keys
    r"|AIza[0-9A-Za-z_-]{20,}"  # Google API keys
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JWTs
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"  # e-mail addresses
)


def mask(text: str) -> str:
    """``text`` with credential- and e-mail-shaped substrings replaced."""
    return _MASKS.sub(REDACTED, text)


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask(value)
    if depth > 4:
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if str(k).lower() in SENSITIVE_KEYS else _scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop sensitive keys' values and mask secrets in the rest."""
    for name in list(event_dict):
        if name.lower() in SENSITIVE_KEYS:
            event_dict[name] = REDACTED
        else:
            event_dict[name] = _scrub(event_dict[name])
    return event_dict


def add_trace_ids(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current OpenTelemetry trace and span ids, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def configure_logging(
    level: str = "WARNING", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library's logging through one JSON pipeline.

    ``auto`` renders JSON unless ``stream`` is a terminal. Logs go to stderr by default:
    stdout belongs to the CLI's output and to MCP's stdio transport.
    """
    json_lines = fmt == "json" or (fmt == "auto" and not (stream or sys.stderr).isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_observability(settings: Settings) -> None:
    """Logs and traces for this process, as the settings say."""
    configure_logging(settings.log_level, settings.log_format)
    if not tracing_enabled():
        configure_tracing(settings.tracing_exporter, otlp_endpoint=settings.otlp_endpoint)


def configure_tracing(
    exporter: TracingExporter,
    *,
    otlp_endpoint: str | None = None,
    service_name: str = "relaygraph",
    processor: SpanProcessor | None = None,
) -> TracerProvider | None:
    """Install a tracer provider for this process (None when tracing is off).

    ``processor`` replaces the exporter (tests pass an in-memory one).
    """
    if exporter == "off" and processor is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if processor is None:
        span_exporter: SpanExporter
        if exporter == "console":
            span_exporter = ConsoleSpanExporter(out=sys.stderr)
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            span_exporter = OTLPSpanExporter(endpoint=otlp_endpoint)
        processor = BatchSpanProcessor(span_exporter)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider


def tracing_enabled() -> bool:
    """Whether a real tracer provider is installed (instrumentation is skipped otherwise)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)
