"""Shared fixtures. Tests use real parts: SQLite files in tmp dirs, real subprocesses,
and local HTTP stubs; a network guard fails any test that reaches a non-local host."""

from __future__ import annotations

import os

# Before LangGraph is imported: refuse checkpoint state that is not JSON-able.
os.environ["LANGGRAPH_STRICT_MSGPACK"] = "true"
# Tests must not pick up a developer's real keys or settings.
for _name in list(os.environ):
    if _name.startswith(("RELAYGRAPH_", "GOOGLE_GENAI_", "GOOGLE_GEMINI_")) or _name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
    ):
        del os.environ[_name]

from collections.abc import AsyncIterator, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.stubs import netguard  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _network_guard() -> Iterator[None]:
    if netguard:
        netguard.install()  # TEMP
    yield
    if netguard:
        netguard.uninstall()  # TEMP


@pytest.fixture(autouse=True)
def _no_network_violations() -> Iterator[None]:
    """Fail a test whose code reached for a non-local host, even if a client swallowed it."""
    netguard.take_violations()
    yield
    violations = netguard.take_violations()
    assert not violations, f"non-local network access: {violations}"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("RELAYGRAPH_DATA_DIR", str(directory))
    return directory


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator:  # type: ignore[type-arg]
    """A throwaway PostgreSQL cluster (Debian's binaries), started once per session.

    Skipped where the binaries are missing, except in CI (``CI=true``), where that fails.
    """
    from tests.scaleout.postgres_cluster import PostgresCluster, PostgresUnavailable

    try:
        with PostgresCluster.running() as cluster:
            yield cluster
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow]),
    ]
)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store backend a test runs on: the embedded SQLite default, or a fresh database
    on the session's PostgreSQL cluster through ``RELAYGRAPH_DATABASE_URL`` (inherited by
    subprocesses too). Use with ``pytestmark = pytest.mark.usefixtures("backend")``."""
    if request.param == "postgres":
        cluster = request.getfixturevalue("postgres_cluster")
        monkeypatch.setenv("RELAYGRAPH_DATABASE_URL", cluster.database_url())
    return str(request.param)


@pytest.fixture
def settings(data_dir: Path):  # type: ignore[no-untyped-def]
    from runtime.settings import Settings

    return Settings(data_dir=data_dir)


@pytest.fixture
async def system(settings) -> AsyncIterator:  # type: ignore[no-untyped-def]
    from runtime.system import open_system

    async with open_system(settings) as opened:
        yield opened


@pytest.fixture(scope="session")
def _openai_stub_server() -> Iterator:  # type: ignore[type-arg]
    from tests.stubs.openai_stub import OpenAIStub

    with OpenAIStub() as stub:
        yield stub


@pytest.fixture
def openai_stub(_openai_stub_server):  # type: ignore[no-untyped-def]
    """A local OpenAI-compatible server; script replies with ``reply``/``fail``."""
    _openai_stub_server.reset()
    yield _openai_stub_server
    assert _openai_stub_server.pending == 0, "the test left scripted replies unused"
