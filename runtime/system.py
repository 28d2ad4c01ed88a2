"""The composition root: builds every component from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver

from graphs.assistants import AssistantCatalog
from graphs.checkpointer import sqlite_checkpointer
from graphs.registry import GraphRegistry, add_user_graphs, builtin_registry, read_graphs_file
from providers import ProviderSettings, build_chat_model
from runtime.settings import Settings
from store import Database, migrate
from store.database import ensure_writable_dir
from tools import BUILTIN_TOOLS, ToolExecutor, ToolPolicy, ToolRegistry, ToolSpec


@dataclass
class System:
    settings: Settings
    db: Database
    checkpointer: BaseCheckpointSaver
    graphs: GraphRegistry
    assistants: AssistantCatalog
    tools: ToolRegistry
    executor: ToolExecutor
    _models: dict[str, BaseChatModel] = field(default_factory=dict)

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

    def model(self, spec: str | None) -> BaseChatModel:
        """The chat model for ``spec`` (None: the default), built once per spec.

        Raises:
            ModelSpecError: the spec cannot be built.
        """
        spec = spec or self.settings.default_model
        if spec not in self._models:
            self._models[spec] = build_chat_model(spec, self.provider_settings)
        return self._models[spec]

    async def aclose(self) -> None:
        """Release the models' HTTP clients."""
        from providers.google import aclose_google_model
        from providers.openai import aclose_openai_model

        for model in self._models.values():
            await aclose_openai_model(model)
            await aclose_google_model(model)
        self._models.clear()


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
    tools = ToolRegistry([*BUILTIN_TOOLS, *extra_tools])
    db = Database(settings.store_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        async with sqlite_checkpointer(
            settings.checkpoint_path, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        ) as checkpointer:
            system = System(
                settings=settings,
                db=db,
                checkpointer=checkpointer,
                graphs=graphs,
                assistants=assistants,
                tools=tools,
                executor=ToolExecutor(db, ToolPolicy(tools)),
            )
            try:
                yield system
            finally:
                await system.aclose()
    finally:
        await db.dispose()
