"""Settings: the only place in relaygraph that reads the environment.

Every other package receives its configuration as constructor arguments from
``runtime.system``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEMO_MODEL = "scripted:providers.scripted:demo_turn"


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
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API, comma-separated or a JSON list.",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("graphs", "assistants", mode="before")
    @classmethod
    def _json_mapping(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        return value

    @field_validator("jwt_algorithms", "cors_origins", mode="before")
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
    def checkpoint_path(self) -> Path:
        return self.data_dir / "checkpoints.db"

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
        }
