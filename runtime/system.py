"""The composition root: builds every component from settings."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver

from graphs.assistants import AssistantCatalog
from graphs.checkpointer import open_checkpointer
from graphs.registry import GraphRegistry, add_user_graphs, builtin_registry, read_graphs_file
from providers import ProviderSettings
from providers.budgets import SpendBudgets, SpendLimits
from providers.cache import ResponseCache
from providers.catalog import Catalog
from providers.credentials import CredentialCipher, CredentialStore
from providers.factory import build_router
from providers.retry import RetryPolicy
from providers.router import RouterChatModel, RouterServices
from providers.usage import UsageRecorder
from runtime import metrics
from runtime.memory_services import LazyMemoryServices, MemoryBinding
from runtime.settings import Settings
from store import Database, migrate
from store.database import ensure_writable_dir
from tools import (
    ApprovalPolicy,
    BuiltinConfig,
    ToolExecutor,
    ToolPolicy,
    ToolRegistry,
    ToolSpec,
    TrustConfig,
    builtin_tools,
)
from tools.external import ExternalServerConfig, close_attached, external_tools


class RunExecutor(Protocol):
    def abandon_in_flight(self) -> Awaitable[None]: ...


@dataclass
class System:
    settings: Settings
    db: Database
    checkpointer: BaseCheckpointSaver
    graphs: GraphRegistry
    assistants: AssistantCatalog
    tools: ToolRegistry
    executor: ToolExecutor
    _models: dict[str, RouterChatModel] = field(default_factory=dict)
    _router_services: RouterServices | None = None
    memory: LazyMemoryServices | None = None
    """Memories, legal bases, erasure, retention (issue 5); opened on first use."""
    _executors: weakref.WeakSet[RunExecutor] = field(default_factory=weakref.WeakSet)

    def track(self, executor: RunExecutor) -> None:
        """Have ``executor``'s in-flight runs handed back when the system closes, before
        the store they write to goes (a run task must not outlive its system)."""
        self._executors.add(executor)

    @property
    def provider_settings(self) -> ProviderSettings:
        key = self.settings.openai_api_key
        compatible = self.settings.compatible_api_key
        google = self.settings.google_api_key
        return ProviderSettings(
            openai_api_key=key.get_secret_value() if key else None,
            compatible_api_key=compatible.get_secret_value() if compatible else None,
            openai_base_url=self.settings.openai_base_url,
            google_api_key=google.get_secret_value() if google else None,
            google_base_url=self.settings.google_base_url,
            timeout_seconds=self.settings.model_timeout_seconds,
            max_retries=self.settings.model_max_retries,
        )

    @property
    def router_services(self) -> RouterServices:
        """Usage recording, spend budgets, response cache and retry policy, shared by every
        model alias (built on first use)."""
        if self._router_services is None:
            self._router_services = build_router_services(self.settings, self.db)
        return self._router_services

    def model(self, spec: str | None) -> BaseChatModel:
        """The router for model alias or deployment spec ``spec`` (None: the default),
        built once per name so its breakers and latency figures persist.

        Raises:
            ModelSpecError: the alias or spec cannot be built.
        """
        name = spec or self.settings.default_model
        if name not in self._models:
            self._models[name] = build_router(
                name,
                self.settings.models,
                self.provider_settings,
                catalog=Catalog.load(self.settings.prices_file),
                services=self.router_services,
                failure_threshold=self.settings.model_breaker_failures,
                cooldown_seconds=self.settings.model_breaker_cooldown_seconds,
            )
        return self._models[name]

    def routers(self) -> list[RouterChatModel]:
        """The routers built so far (for metrics of their deployments' breakers)."""
        return list(self._models.values())

    async def aclose(self) -> None:
        """Write pending usage rows and release the models' HTTP clients and the
        sessions kept with attached MCP servers."""
        for executor in list(self._executors):
            await executor.abandon_in_flight()
        await close_attached(self.tools)
        await self.executor.audit.flush()
        if self.memory is not None:
            await self.memory.aclose()
        for model in self._models.values():
            await model.aclose()
        self._models.clear()
        services = self._router_services
        if services is not None and services.cache is not None:
            await services.cache.aclose()
        if services is not None and services.recorder is not None:
            await services.recorder.aclose()


def build_router_services(settings: Settings, db: Database) -> RouterServices:
    recorder = UsageRecorder(db)
    limits = SpendLimits(
        user_daily=settings.spend_user_daily_usd,
        user_monthly=settings.spend_user_monthly_usd,
        tenant_daily=settings.spend_tenant_daily_usd,
        tenant_monthly=settings.spend_tenant_monthly_usd,
    )
    ttl = settings.model_cache_ttl_seconds
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    return RouterServices(
        # issue 6: tenants' own provider keys, sealed with RELAYGRAPH_SECRET_KEY or the
        # data dir's key file; older turns summarised when trimming drops too much.
        credentials=CredentialStore(db, CredentialCipher.from_secret(secret, settings.data_dir)),
        summarise_with_model=settings.model_summarise_with_model,
        recorder=recorder,
        budgets=SpendBudgets(db, limits, recorder) if limits.any else None,
        cache=ResponseCache(db, ttl) if ttl > 0 else None,
        retry=RetryPolicy(max_retries=settings.model_max_retries),
        attempt_timeout_seconds=settings.model_timeout_seconds,
    )


def build_graph_registry(settings: Settings) -> GraphRegistry:
    """Built-in graphs plus user graphs from settings and the graphs file.

    Raises:
        GraphLoadError: a user graph cannot be loaded.
    """
    registry = builtin_registry()
    user_graphs = dict(read_graphs_file(settings.graphs_file)) if settings.graphs_file else {}
    user_graphs.update(settings.graphs)
    add_user_graphs(registry, user_graphs)
    return registry


def builtin_config(settings: Settings) -> BuiltinConfig:
    return BuiltinConfig(
        files_root=settings.files_dir,
        http_allowed_domains=tuple(settings.http_allowed_domains),
        http_allow_networks=tuple(settings.http_allow_networks),
        http_max_bytes=settings.http_max_bytes,
        http_timeout_seconds=settings.http_timeout_seconds,
    )


def approval_policy(settings: Settings) -> ApprovalPolicy:
    """Who may approve which risk level, four-eyes and expiry, from settings."""
    return ApprovalPolicy.configured(
        settings.approver_roles,
        four_eyes=settings.four_eyes,
        ttl_seconds=settings.approval_ttl_seconds,
    )


def build_executor(settings: Settings, db: Database, tools: ToolRegistry) -> ToolExecutor:
    """The one executor: gate (scopes, trust), approvals and audit from settings."""
    return ToolExecutor(
        db,
        ToolPolicy(tools),
        approval_policy=approval_policy(settings),
        trust=TrustConfig.with_overrides(settings.trust_sources),
        defer_read_audit=True,  # System.aclose flushes the audit log
    )


@asynccontextmanager
async def open_system(
    settings: Settings, *, extra_tools: Iterable[ToolSpec] = ()
) -> AsyncIterator[System]:
    """Open the store (migrated under a lock), the checkpointer and the registries.

    Raises:
        StoreError: the data directory or database is unusable.
        GraphLoadError: a configured user graph cannot be loaded.
        ValueError: a configured assistant is malformed.
    """
    ensure_writable_dir(settings.data_dir)
    migrate(settings.store_url)
    graphs = build_graph_registry(settings)
    assistants = AssistantCatalog.build(graphs, settings.assistants)
    attached = await external_tools(
        [ExternalServerConfig.model_validate(server) for server in settings.attached_mcp_servers]
    )
    memory = MemoryBinding()  # issue 5: memory_* tools, bound once the system exists
    builtins = builtin_tools(replace(builtin_config(settings), memories=memory.memories))
    tools = ToolRegistry([*builtins, *attached, *extra_tools])
    db = Database(settings.store_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        async with open_checkpointer(
            settings.checkpoint_store_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        ) as checkpointer:
            system = System(
                settings=settings,
                db=db,
                checkpointer=checkpointer,
                graphs=graphs,
                assistants=assistants,
                tools=tools,
                executor=build_executor(settings, db, tools),
            )
            system.memory = memory.bind(system)
            metrics.BREAKERS.watch(system)
            try:
                yield system
            finally:
                await system.aclose()
    finally:
        await db.dispose()
