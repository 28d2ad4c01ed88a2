"""A real uvicorn server on 127.0.0.1 for API tests, with API keys for two tenants."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from runtime.settings import Settings
from tests.helpers import write_script


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ApiServer:
    base_url: str
    settings: Settings
    keys: dict[str, str] = field(default_factory=dict)
    """API keys by name: alice (tenant a, user), bob (tenant b, user), rita (tenant a,
    reviewer), ada (tenant a, admin)."""

    def headers(self, who: str) -> dict[str, str]:
        return {"x-api-key": self.keys[who]}


class _Running:
    def __init__(self, settings: Settings, workers: int) -> None:
        self.port = free_port()
        app = create_app(settings, workers=workers)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        ready = threading.Event()

        def wait() -> None:
            while not self.server.started and self.thread.is_alive():
                ready.wait(0.02)

        wait()
        if not self.server.started:
            raise RuntimeError("the API server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


KEYS = {
    "alice": ("a", "alice", ["user"]),
    "bob": ("b", "bob", ["user"]),
    "rita": ("a", "rita", ["reviewer"]),
    "ada": ("a", "ada", ["admin"]),
}


async def _create_keys(settings: Settings) -> dict[str, str]:
    from identity.apikeys import create_api_key
    from store import Database, migrate

    migrate(settings.store_url)
    db = Database(settings.store_url)
    try:
        keys = {}
        for name, (tenant, user, roles) in KEYS.items():
            created = await create_api_key(db=db, tenant=tenant, user=user, roles=roles)
            keys[name] = created.key
        return keys
    finally:
        await db.dispose()


@contextmanager
def running_server(data_dir: Path, workers: int, **overrides: Any) -> Iterator[ApiServer]:
    """A server on ``Settings(data_dir=data_dir, **overrides)`` with the ``KEYS`` created,
    stopped on leaving: for module-scoped fixtures (one start for the module's tests).
    Call it where no event loop runs (a sync fixture); ``serve`` is per test."""
    settings = Settings(data_dir=data_dir, **overrides)
    keys = asyncio.run(_create_keys(settings))
    running = _Running(settings, workers=workers)
    running.start()
    try:
        yield ApiServer(f"http://127.0.0.1:{running.port}/api/v1", settings, keys)
    finally:
        running.stop()


@pytest.fixture
def serve(tmp_path: Path, data_dir: Path) -> Iterator[Any]:
    """Start a server: ``serve(turns, **settings)`` → ApiServer (stopped after the test)."""
    running: list[_Running] = []

    def start(
        turns: list[dict[str, Any]] | None = None, workers: int = 2, **overrides: Any
    ) -> ApiServer:
        model = write_script(tmp_path / "script.json", turns) if turns is not None else None
        values: dict[str, Any] = {"data_dir": data_dir, **overrides}
        if model:
            values["model"] = model
        settings = Settings(**values)
        # The test's own event loop may be running: create the keys on another thread.
        with ThreadPoolExecutor(1) as pool:
            keys = pool.submit(asyncio.run, _create_keys(settings)).result()
        server = _Running(settings, workers)
        server.start()
        running.append(server)
        return ApiServer(f"http://127.0.0.1:{server.port}/api/v1", settings, keys)

    yield start
    for server in running:
        server.stop()
