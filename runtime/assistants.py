"""Assistants: the configured ones (settings, one default per graph) plus those a tenant
created through the API, stored in SQL. ``config.configurable`` of an API assistant may
set ``model``, ``tools``, ``allowed_scopes``, ``limits`` and ``prompt_version``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from graphs.assistants import AssistantConfig, AssistantNotFound
from graphs.registry import InvalidOptions
from runtime.system import System
from store.models import Assistant, utcnow

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG_KEYS = ("model", "tools", "allowed_scopes", "limits", "prompt_version", "options")


class AssistantError(ValueError):
    status = 422
    code = "invalid_request"


class UnknownGraph(AssistantError):
    status = 404
    code = "not_found"


class AssistantConflict(AssistantError):
    status = 409
    code = "conflict"


def _config_of(row: Assistant) -> AssistantConfig:
    # LangGraph moved run settings from config.configurable to context (SDK clients send
    # either); both are read, context winning where both name a setting.
    configurable = {
        **((row.config or {}).get("configurable") or {}),
        **(row.context if isinstance(row.context, dict) else {}),
    }
    return AssistantConfig(
        assistant_id=row.assistant_id,
        graph_id=row.graph_id,
        name=row.name,
        description=row.description,
        **{key: configurable[key] for key in CONFIG_KEYS if key in configurable},
    )


def _configured_public(config: AssistantConfig) -> dict[str, Any]:
    configurable = {
        key: value
        for key, value in config.model_dump().items()
        if key in CONFIG_KEYS and value not in (None, {}, [])
    }
    return {
        "assistant_id": config.assistant_id,
        "graph_id": config.graph_id,
        "config": {"configurable": configurable},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "name": config.name or config.assistant_id,
        "description": config.description,
        "created_at": EPOCH,
        "updated_at": EPOCH,
    }


def _row_public(row: Assistant) -> dict[str, Any]:
    return {
        "assistant_id": row.assistant_id,
        "graph_id": row.graph_id,
        "config": row.config or {},
        "context": row.context or {},
        "metadata": row.metadata_ or {},
        "version": row.version,
        "name": row.name or row.assistant_id,
        "description": row.description,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


class AssistantService:
    def __init__(self, system: System) -> None:
        self.system = system

    async def resolve(self, tenant: str, assistant_id: str) -> AssistantConfig:
        """The assistant's configuration; a graph name resolves to its default assistant.

        Raises:
            AssistantNotFound: no such assistant for this tenant.
        """
        try:  # configured ids are never taken by API assistants (create refuses them)
            return self.system.assistants.get(assistant_id)
        except AssistantNotFound as missing:  # it names the configured ones
            row = await self._row(tenant, assistant_id)
            if row is None:
                raise AssistantNotFound(
                    f"{missing}; or one created through the API (POST /assistants/search "
                    "lists them)"
                ) from None
        return _config_of(row)

    async def get(self, tenant: str, assistant_id: str) -> dict[str, Any]:
        row = await self._row(tenant, assistant_id)
        if row is not None:
            return _row_public(row)
        return _configured_public(self.system.assistants.get(assistant_id))

    async def _row(self, tenant: str, assistant_id: str) -> Assistant | None:
        async with self.system.db.session() as session:
            row = await session.get(Assistant, assistant_id)
        return row if row is not None and row.tenant == tenant else None

    async def search(
        self,
        tenant: str,
        *,
        graph_id: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        async with self.system.db.session() as session:
            rows = (
                await session.execute(
                    select(Assistant)
                    .where(Assistant.tenant == tenant)
                    .order_by(Assistant.created_at)
                )
            ).scalars()
            found = [_configured_public(config) for config in self.system.assistants]
            found += [_row_public(row) for row in rows]
        if graph_id:
            found = [item for item in found if item["graph_id"] == graph_id]
        if name:
            found = [item for item in found if name.lower() in (item["name"] or "").lower()]
        if metadata:
            found = [
                item
                for item in found
                if all(item["metadata"].get(key) == value for key, value in metadata.items())
            ]
        return found[offset : offset + limit]

    async def create(
        self,
        tenant: str,
        *,
        graph_id: str,
        assistant_id: str | None,
        config: dict[str, Any],
        context: dict[str, Any],
        metadata: dict[str, Any],
        name: str | None,
        description: str | None,
        if_exists: str = "raise",
    ) -> dict[str, Any]:
        """Raises: AssistantError (unknown graph, bad config), AssistantConflict."""
        if graph_id not in self.system.graphs.ids():
            raise UnknownGraph(
                f"there is no graph {graph_id!r}; graphs: {', '.join(self.system.graphs.ids())}"
            )
        assistant_id = assistant_id or str(uuid.uuid4())
        configured = {config.assistant_id for config in self.system.assistants}
        async with self.system.db.transaction() as session:
            existing = await session.get(Assistant, assistant_id)
            if existing is not None or assistant_id in configured:
                if if_exists == "do_nothing" and existing is not None and existing.tenant == tenant:
                    return _row_public(existing)
                raise AssistantConflict(f"assistant {assistant_id} already exists")
            row = Assistant(
                assistant_id=assistant_id,
                tenant=tenant,
                graph_id=graph_id,
                name=name,
                description=description,
                config=config,
                context=context,
                metadata_=metadata,
                version=1,
            )
            self._validate(row)
            session.add(row)
        return _row_public(row)

    async def patch(
        self, tenant: str, assistant_id: str, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Raises: AssistantNotFound, AssistantError."""
        async with self.system.db.transaction() as session:
            row = await session.get(Assistant, assistant_id)
            if row is None or row.tenant != tenant:
                raise AssistantNotFound(
                    f"there is no assistant {assistant_id!r} created through the API "
                    "(configured assistants are changed in settings)"
                )
            for key, value in changes.items():
                if value is None:
                    continue
                if key == "graph_id" and value not in self.system.graphs.ids():
                    raise UnknownGraph(f"there is no graph {value!r}")
                setattr(row, "metadata_" if key == "metadata" else key, value)
            row.version += 1
            row.updated_at = utcnow()
            self._validate(row)
        return _row_public(row)

    async def delete(self, tenant: str, assistant_id: str) -> None:
        async with self.system.db.transaction() as session:
            row = await session.get(Assistant, assistant_id)
            if row is None or row.tenant != tenant:
                raise AssistantNotFound(f"there is no assistant {assistant_id!r}")
            await session.delete(row)

    def _validate(self, row: Assistant) -> None:
        """Raises: AssistantError for a malformed config or options its graph rejects."""
        try:
            config = _config_of(row)
        except ValidationError as exc:
            raise AssistantError(f"assistant config is invalid: {exc}") from exc
        try:
            self.system.graphs.get(config.graph_id).check_options(config.options)
        except InvalidOptions as exc:
            raise AssistantError(f"assistant config is invalid: {exc}") from None
