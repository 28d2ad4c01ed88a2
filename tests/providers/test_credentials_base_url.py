"""providers/credentials.py: ``openai-compatible`` keys are stored per base URL and the
router sends a compatible endpoint only the key stored for exactly its base URL, checked
at two local OpenAI-compatible stubs (A and B) by the ``Authorization`` header each saw;
a key stored before migration 0013 (no base URL) is sent nowhere."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from sqlalchemy import create_engine, select, text

from providers.credentials import (
    BASE_URL_PATTERN,
    MAX_BASE_URL_CHARS,
    UNSCOPED_UNUSED,
    CredentialCipher,
    CredentialError,
    CredentialStore,
    normalise_base_url,
    scope_of,
)
from providers.factory import ProviderSettings, build_router
from providers.openai import PLACEHOLDER_API_KEY
from providers.retry import RetryPolicy
from providers.router import CallInfo, RouterChatModel, RouterServices
from store import Database, migrate
from store.migrate import sync_url
from store.models import ProviderCredentialRow
from tests.stubs.openai_stub import OpenAIStub

SECRET = "a-test-secret-that-is-long-enough-0123456789"
KEY_A = "sk-acme-key-for-server-a-000001"
KEY_B = "sk-acme-key-for-server-b-000002"
LEGACY_KEY = "sk-acme-legacy-unscoped-000003"
DEFAULT_COMPATIBLE_KEY = "sk-deployment-compatible-0000"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[OpenAIStub, OpenAIStub]]:
    with OpenAIStub() as server_a, OpenAIStub() as server_b:
        yield server_a, server_b


@pytest.fixture
def stubs(servers: tuple[OpenAIStub, OpenAIStub]) -> Iterator[tuple[OpenAIStub, OpenAIStub]]:
    for server in servers:
        server.reset()
    yield servers
    assert all(server.pending == 0 for server in servers), "scripted replies left unused"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'creds.db'}"
    migrate(url)
    database = Database(url)
    yield database
    await database.dispose()


def _cipher() -> CredentialCipher:
    return CredentialCipher.from_secret(SECRET, Path("/nonexistent"))


@pytest.fixture
def store(db: Database) -> CredentialStore:
    return CredentialStore(db, _cipher())


def _spec(server: OpenAIStub) -> str:
    return f"openai-compatible:local-model@{server.base_url}"


def _router(
    alias: list[str], store: CredentialStore, compatible_key: str | None = None
) -> RouterChatModel:
    settings = ProviderSettings(compatible_api_key=compatible_key, timeout_seconds=10.0)
    services = RouterServices(credentials=store, retry=RetryPolicy(max_retries=0))
    return build_router("local", {"local": alias}, settings, services=services)


def _keys_seen(server: OpenAIStub) -> list[str]:
    return [h["authorization"].removeprefix("Bearer ") for h in server.request_headers]


# --- base URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("HTTP://LocalHost:8000/v1/", "http://localhost:8000/v1"),
        ("https://Models.Example.com:443/Team/V1//", "https://models.example.com/Team/V1"),
        ("http://example.com:80", "http://example.com"),
        ("https://example.com:8443/", "https://example.com:8443"),
        ("  http://[::1]:11434/v1 ", "http://[::1]:11434/v1"),
    ],
)
def test_base_urls_are_normalised(given: str, normal: str) -> None:
    assert normalise_base_url(given) == normal


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("ftp://example.com/v1", "http:// or https://"),
        ("example.com/v1", "http:// or https://"),
        ("http:///v1", "with a host"),
        ("http://user:pw@example.com/v1", "user info"),
        ("http://example.com/v1?api-version=1", "query"),
        ("http://example.com:99999/v1", "not a valid URL"),
        ("http://example.com/" + "p" * 600, "longer than 512"),
        ("http://exa mple.com/v1", "cannot have"),
        ("http://example.com/v 1", "cannot have"),
        ("http://bücher.example/v1", "punycode"),
        ("http://[::1/v1", "not a valid URL"),
    ],
)
def test_malformed_base_urls_are_refused(given: str, reason: str) -> None:
    with pytest.raises(CredentialError, match=reason):
        normalise_base_url(given)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(BASE_URL_PATTERN, fullmatch=True).filter(lambda u: len(u) <= 512))
def test_every_url_the_api_schema_allows_is_accepted_and_normal_once(url: str) -> None:
    """The API's ``pattern`` for base URLs is no looser than the store (a schema-valid
    request is never refused), and normalising is idempotent."""
    normal = normalise_base_url(url)
    assert normalise_base_url(normal) == normal
    assert len(normal) <= MAX_BASE_URL_CHARS and re.fullmatch(BASE_URL_PATTERN, normal)


def test_base_url_is_required_for_compatible_keys_and_refused_for_the_others() -> None:
    with pytest.raises(CredentialError, match="stored per server: give its base URL"):
        scope_of("openai-compatible", None)
    with pytest.raises(CredentialError, match="stored per server"):
        scope_of("openai-compatible", "  ")
    for provider in ("openai", "google"):
        with pytest.raises(CredentialError, match=f"{provider} keys take no base URL"):
            scope_of(provider, "http://127.0.0.1:8000/v1")
        assert scope_of(provider, None) == ""
    assert scope_of("openai-compatible", "http://H:1/v1/") == "http://h:1/v1"


# --- the store ---------------------------------------------------------------------


async def test_store_keeps_one_key_per_base_url(store: CredentialStore, db: Database) -> None:
    with pytest.raises(CredentialError, match="stored per server"):
        await store.set(tenant="acme", provider="openai-compatible", api_key=KEY_A)
    with pytest.raises(CredentialError, match="take no base URL"):
        await store.set(
            tenant="acme", provider="openai", api_key=KEY_A, base_url="http://a.test/v1"
        )
    info = await store.set(
        tenant="acme", provider="openai-compatible", api_key=KEY_A, base_url="HTTP://A.test/v1/"
    )
    assert (info.base_url, info.status, info.key_hint) == ("http://a.test/v1", "active", "…0001")
    await store.set(
        tenant="acme", provider="openai-compatible", api_key=KEY_B, base_url="http://b.test/v1"
    )

    found_a = await store.credential("acme", "openai-compatible", "http://a.test/v1")
    found_b = await store.credential("acme", "openai-compatible", "http://B.test/v1/")
    assert found_a is not None and found_a.api_key == KEY_A
    assert found_b is not None and found_b.api_key == KEY_B
    assert KEY_A not in repr(found_a) and KEY_A not in str(found_a)
    assert await store.credential("acme", "openai-compatible", "http://c.test/v1") is None
    assert await store.credential("acme", "openai-compatible", "http://a.test/v2") is None
    assert await store.credential("acme", "openai-compatible", None) is None
    assert await store.credential("globex", "openai-compatible", "http://a.test/v1") is None

    listed = [(c.provider, c.base_url) for c in await store.list_credentials(tenant="acme")]
    assert listed == [
        ("openai-compatible", "http://a.test/v1"),
        ("openai-compatible", "http://b.test/v1"),
    ]
    assert all("…" in str(c.to_dict()) and KEY_A not in str(c.to_dict()) for c in [info])

    # A key sealed for one server does not open on another server's row.
    async with db.session() as session, session.begin():
        rows = {row.base_url: row for row in await session.scalars(select(ProviderCredentialRow))}
        rows["http://b.test/v1"].ciphertext = rows["http://a.test/v1"].ciphertext
    fresh = CredentialStore(store.db, _cipher())
    with pytest.raises(CredentialError, match="cannot be decrypted"):
        await fresh.credential("acme", "openai-compatible", "http://b.test/v1")

    assert await store.delete(
        tenant="acme", provider="openai-compatible", base_url="http://A.TEST/v1/"
    )
    assert await store.credential("acme", "openai-compatible", "http://a.test/v1") is None
    assert not await store.delete(tenant="acme", provider="openai-compatible")  # no legacy row
    assert [c.base_url for c in await store.list_credentials()] == ["http://b.test/v1"]


# --- the router sends each server only its own key ---------------------------------


async def test_a_key_for_server_a_goes_to_a_only(
    stubs: tuple[OpenAIStub, OpenAIStub], store: CredentialStore
) -> None:
    server_a, server_b = stubs
    # Stored under a spelling of A's URL that normalises to the deployment's.
    await store.set(
        tenant="acme",
        provider="openai-compatible",
        api_key=KEY_A,
        base_url=server_a.base_url.replace("http://", "HTTP://") + "/",
    )
    only_a = _router([_spec(server_a)], store)
    only_b = _router([_spec(server_b)], store)
    a_then_b = _router([_spec(server_a), _spec(server_b)], store)
    question = [HumanMessage("hello")]
    try:
        server_a.reply("from a")
        reply = await only_a.ainvoke(question, call=CallInfo(tenant="acme"))
        assert reply.text == "from a" and _keys_seen(server_a) == [KEY_A]

        server_b.reply("from b")
        reply = await only_b.ainvoke(question, call=CallInfo(tenant="acme"))
        assert reply.text == "from b" and _keys_seen(server_b) == [PLACEHOLDER_API_KEY]

        # Same call, same tenant: A fails, the fallback to B must not carry A's key.
        server_a.fail(500)
        server_b.reply("fallback")
        chunks = [c async for c in a_then_b.astream(question, call=CallInfo(tenant="acme"))]
        assert "".join(c.text for c in chunks) == "fallback"
        assert _keys_seen(server_a) == [KEY_A, KEY_A]
        assert _keys_seen(server_b) == [PLACEHOLDER_API_KEY, PLACEHOLDER_API_KEY]

        # B gets its own key once one is stored for it, A keeps its own.
        await store.set(
            tenant="acme", provider="openai-compatible", api_key=KEY_B, base_url=server_b.base_url
        )
        server_a.fail(500)
        server_b.reply("b with its key")
        reply = await a_then_b.ainvoke(question, call=CallInfo(tenant="acme"))
        assert reply.text == "b with its key"
        assert _keys_seen(server_a)[-1] == KEY_A and _keys_seen(server_b)[-1] == KEY_B
    finally:
        for router in (only_a, only_b, a_then_b):
            await router.aclose()
    assert KEY_A not in _keys_seen(server_b) and KEY_B not in _keys_seen(server_a)


async def test_without_a_key_for_its_url_a_server_gets_the_deployment_key(
    stubs: tuple[OpenAIStub, OpenAIStub], store: CredentialStore
) -> None:
    server_a, server_b = stubs
    await store.set(
        tenant="acme", provider="openai-compatible", api_key=KEY_A, base_url=server_a.base_url
    )
    router = _router([_spec(server_b)], store, compatible_key=DEFAULT_COMPATIBLE_KEY)
    try:
        for tenant in ("acme", "globex"):
            server_b.reply("ok")
            await router.ainvoke([HumanMessage("hi")], call=CallInfo(tenant=tenant))
    finally:
        await router.aclose()
    assert _keys_seen(server_b) == [DEFAULT_COMPATIBLE_KEY] * 2
    assert router.deployments[0].tenant_models == {}  # no tenant client for B


async def test_a_compatible_key_stored_before_0013_is_sent_nowhere(
    stubs: tuple[OpenAIStub, OpenAIStub], tmp_path: Path
) -> None:
    """A row written under revision 0012 (one unscoped compatible key per tenant, sealed
    bound to tenant and provider only) survives the upgrade, is listed as unscoped and
    unused, reaches no server, and can be deleted without a base URL."""
    server_a, _ = stubs
    url = f"sqlite+aiosqlite:///{tmp_path / 'legacy.db'}"
    migrate(url, "0012")
    engine = create_engine(sync_url(url))
    sealed = _cipher().seal(LEGACY_KEY, tenant="acme", provider="openai-compatible")
    with engine.begin() as connection:
        connection.execute(  # the table as 0010 made it: no base_url column
            text(
                "INSERT INTO provider_credentials (tenant, provider, ciphertext, key_hint, "
                "created_by, created_at, updated_at) VALUES ('acme', 'openai-compatible', "
                ":sealed, '…0003', 'ann', '2026-11-30 10:00:00', '2026-11-30 10:00:00')"
            ),
            {"sealed": sealed},
        )
    engine.dispose()
    migrate(url)
    db = Database(url)
    store = CredentialStore(db, _cipher())
    router = _router([_spec(server_a)], store)
    try:
        [legacy] = await store.list_credentials(tenant="acme")
        assert (legacy.provider, legacy.base_url, legacy.key_hint) == (
            "openai-compatible",
            None,
            "…0003",
        )
        assert legacy.status == UNSCOPED_UNUSED == legacy.to_dict()["status"]

        server_a.reply("no tenant key")
        await router.ainvoke([HumanMessage("hi")], call=CallInfo(tenant="acme"))
        assert _keys_seen(server_a) == [PLACEHOLDER_API_KEY]

        assert await store.delete(tenant="acme", provider="openai-compatible")
        assert await store.list_credentials() == []
    finally:
        await router.aclose()
        await db.dispose()


async def test_a_deployment_url_no_key_can_be_stored_for_takes_no_tenant_keys(
    store: CredentialStore,
) -> None:
    """A spec whose base URL carries a query cannot be keyed: its deployment uses the
    deployment's key for everyone instead of failing every call on the lookup."""
    await store.set(
        tenant="acme", provider="openai-compatible", api_key=KEY_A, base_url="http://a.test/v1"
    )
    router = _router(["openai-compatible:m@http://a.test/v1?tier=1"], store)
    keyed = _router(["openai-compatible:m@http://A.test/v1/"], store)
    try:
        [deployment] = router.deployments
        assert deployment.credential_base_url is None
        assert deployment.credential_provider is None
        assert await router._model_for(deployment, "acme") is deployment.model
        [other] = keyed.deployments
        assert other.credential_base_url == "http://a.test/v1"
        assert await keyed._model_for(other, "acme") is not other.model
    finally:
        await router.aclose()
        await keyed.aclose()
