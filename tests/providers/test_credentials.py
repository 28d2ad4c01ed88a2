"""providers/credentials.py: tenants' own provider keys, sealed with AES-GCM in a real
SQLite store, and used by the router for that tenant's calls only (checked at the local
OpenAI and Gemini stubs: ``Authorization`` and ``x-goog-api-key`` headers)."""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from sqlalchemy import select

from providers.credentials import (
    SECRET_KEY_FILE,
    CredentialCipher,
    CredentialError,
    CredentialStore,
    ProviderCredential,
    load_or_create_secret_key,
)
from providers.factory import ProviderSettings, build_router
from providers.router import CallInfo, RouterChatModel, RouterServices
from providers.usage import UsageRecorder
from store import Database, migrate
from store.models import ProviderCredentialRow, ProviderUsage
from tests.stubs.gemini_stub import GeminiStub
from tests.stubs.openai_stub import OpenAIStub

SECRET = "a-test-secret-that-is-long-enough-0123456789"
ACME_OPENAI_KEY = "sk-acme-own-key-0000000000001"
ACME_GOOGLE_KEY = "AIza-acme-own-key-000000000001"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'creds.db'}"
    migrate(url)
    database = Database(url)
    yield database
    await database.dispose()


@pytest.fixture
def store(db: Database) -> CredentialStore:
    return CredentialStore(db, CredentialCipher.from_secret(SECRET, Path("/nonexistent")))


@pytest.fixture(scope="module")
def stubs() -> Iterator[tuple[OpenAIStub, GeminiStub]]:
    with OpenAIStub() as openai_stub, GeminiStub() as gemini_stub:
        yield openai_stub, gemini_stub


# --- sealing -------------------------------------------------------------------------


def test_sealed_keys_open_only_for_their_tenant_provider_and_secret(tmp_path: Path) -> None:
    cipher = CredentialCipher.from_secret(SECRET, tmp_path)
    sealed = cipher.seal(ACME_OPENAI_KEY, tenant="acme", provider="openai")
    assert ACME_OPENAI_KEY not in sealed
    assert cipher.open(sealed, tenant="acme", provider="openai") == ACME_OPENAI_KEY
    assert sealed != cipher.seal(ACME_OPENAI_KEY, tenant="acme", provider="openai")  # nonce
    with pytest.raises(CredentialError, match="cannot be decrypted"):
        cipher.open(sealed, tenant="globex", provider="openai")  # row copied to a tenant
    with pytest.raises(CredentialError, match="cannot be decrypted"):
        cipher.open(sealed, tenant="acme", provider="google")
    other = CredentialCipher.from_secret(SECRET + "-rotated", tmp_path)
    with pytest.raises(CredentialError, match="secret key changed"):
        other.open(sealed, tenant="acme", provider="openai")
    with pytest.raises(CredentialError, match="at least 32"):
        CredentialCipher.from_secret("short", tmp_path)


def test_generated_key_file_is_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_secret_key(tmp_path / "data")
    path = tmp_path / "data" / SECRET_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret_key(tmp_path / "data") == first
    sealed = CredentialCipher.from_secret(None, tmp_path / "data").seal(
        "k" * 20, tenant="t", provider="openai"
    )
    reopened = CredentialCipher.from_secret(None, tmp_path / "data")
    assert reopened.open(sealed, tenant="t", provider="openai") == "k" * 20
    path.write_bytes(b"not a key")
    with pytest.raises(CredentialError, match="32-byte"):
        load_or_create_secret_key(tmp_path / "data")


def test_credential_objects_never_show_the_key(caplog: pytest.LogCaptureFixture) -> None:
    credential = ProviderCredential("acme", "openai", ACME_OPENAI_KEY)
    cipher = CredentialCipher.from_secret(SECRET, Path("/nonexistent"))
    for text in (repr(credential), str(credential), f"{credential}", repr(cipher)):
        assert ACME_OPENAI_KEY not in text and SECRET not in text
    with caplog.at_level(logging.INFO):
        logging.getLogger("relaygraph.test").info("using %r / %s", credential, credential)
    assert ACME_OPENAI_KEY not in caplog.text
    assert len(credential.fingerprint) == 16 and credential.fingerprint not in ACME_OPENAI_KEY


# --- the store -----------------------------------------------------------------------


async def test_store_set_list_replace_delete(store: CredentialStore, db: Database) -> None:
    info = await store.set(
        tenant="acme", provider="openai", api_key=f"  {ACME_OPENAI_KEY}\n", created_by="ann"
    )
    assert (info.tenant, info.provider, info.key_hint, info.created_by) == (
        "acme",
        "openai",
        "…0001",
        "ann",
    )
    assert ACME_OPENAI_KEY not in str(info.to_dict())
    async with db.session() as session:
        row = (await session.scalars(select(ProviderCredentialRow))).one()
        assert ACME_OPENAI_KEY not in row.ciphertext and row.ciphertext.startswith("v1:")
    found = await store.credential("acme", "openai")
    assert found is not None and found.api_key == ACME_OPENAI_KEY
    assert await store.credential("globex", "openai") is None

    await store.set(tenant="acme", provider="openai", api_key="sk-replaced-key-99999999")
    replaced = await store.credential("acme", "openai")  # the cache was invalidated
    assert replaced is not None and replaced.api_key == "sk-replaced-key-99999999"
    await store.set(tenant="globex", provider="google", api_key=ACME_GOOGLE_KEY)
    listed = [(c.tenant, c.provider) for c in await store.list_credentials()]
    assert listed == [("acme", "openai"), ("globex", "google")]
    assert [c.provider for c in await store.list_credentials(tenant="globex")] == ["google"]

    assert await store.delete(tenant="acme", provider="openai") is True
    assert await store.delete(tenant="acme", provider="openai") is False
    assert await store.credential("acme", "openai") is None


async def test_store_refuses_bad_input(store: CredentialStore) -> None:
    with pytest.raises(CredentialError, match="unknown provider 'anthropic'"):
        await store.set(tenant="acme", provider="anthropic", api_key="k" * 20)
    for bad in ("", "   ", "two words", "x" * 5000):
        with pytest.raises(CredentialError, match="without whitespace"):
            await store.set(tenant="acme", provider="openai", api_key=bad)
    assert await store.list_credentials() == []


# --- the router uses them --------------------------------------------------------------


def _router(stubs: tuple[OpenAIStub, GeminiStub], spec: str, store: CredentialStore) -> Any:
    openai_stub, gemini_stub = stubs
    settings = ProviderSettings(
        openai_api_key="sk-default-key-000000000",
        openai_base_url=openai_stub.base_url,
        google_api_key="AIza-default-key-0000000",
        google_base_url=gemini_stub.base_url,
        timeout_seconds=10.0,
    )
    return build_router(spec, {}, settings, services=RouterServices(credentials=store))


def _sent_key(stubs: tuple[OpenAIStub, GeminiStub], provider: str) -> str:
    openai_stub, gemini_stub = stubs
    if provider == "openai":
        return openai_stub.request_headers[-1]["authorization"].removeprefix("Bearer ")
    return gemini_stub.requests[-1].headers["x-goog-api-key"]


@pytest.mark.parametrize("provider", ["openai", "google"])
async def test_tenant_key_reaches_the_provider_and_others_keep_the_default(
    provider: str, stubs: tuple[OpenAIStub, GeminiStub], store: CredentialStore
) -> None:
    openai_stub, gemini_stub = stubs
    openai_stub.reset()
    gemini_stub.reset()
    stub = openai_stub if provider == "openai" else gemini_stub
    spec = "openai:gpt-4o-mini" if provider == "openai" else "google:gemini-2.5-flash"
    own = ACME_OPENAI_KEY if provider == "openai" else ACME_GOOGLE_KEY
    default = "sk-default-key-000000000" if provider == "openai" else "AIza-default-key-0000000"
    await store.set(tenant="acme", provider=provider, api_key=own)
    router: RouterChatModel = _router(stubs, spec, store)
    question = [HumanMessage("hello")]
    try:
        stub.reply("for acme")
        reply = await router.ainvoke(question, call=CallInfo(tenant="acme"))
        assert reply.text == "for acme" and _sent_key(stubs, provider) == own

        stub.reply("for globex")
        await router.ainvoke(question, call=CallInfo(tenant="globex"))
        assert _sent_key(stubs, provider) == default

        stub.reply("streamed for acme")
        chunks = [c async for c in router.astream(question, call=CallInfo(tenant="acme"))]
        assert "".join(c.text for c in chunks) == "streamed for acme"
        assert _sent_key(stubs, provider) == own

        deployment = router.deployments[0]
        assert set(deployment.tenant_models) == {"acme"}  # one client per (deployment, tenant)
        acme_model = deployment.tenant_models["acme"][1]
        assert acme_model is not deployment.model

        rotated = own[:-1] + "9"
        await store.set(tenant="acme", provider=provider, api_key=rotated)
        stub.reply("rotated")
        await router.ainvoke(question, call=CallInfo(tenant="acme"))
        assert _sent_key(stubs, provider) == rotated
        assert deployment.tenant_models["acme"][1] is not acme_model

        await store.delete(tenant="acme", provider=provider)
        stub.reply("default again")
        await router.ainvoke(question, call=CallInfo(tenant="acme"))
        assert _sent_key(stubs, provider) == default
        assert deployment.tenant_models == {}
    finally:
        await router.aclose()
    assert stub.pending == 0


async def test_an_undecryptable_tenant_key_fails_that_deployment_clearly(
    stubs: tuple[OpenAIStub, GeminiStub], db: Database
) -> None:
    sealer = CredentialStore(db, CredentialCipher.from_secret(SECRET, Path("/nonexistent")))
    await sealer.set(tenant="acme", provider="openai", api_key=ACME_OPENAI_KEY)
    wrong = CredentialStore(
        db, CredentialCipher.from_secret(SECRET + "-other", Path("/nonexistent"))
    )
    router = _router(stubs, "openai:gpt-4o-mini", wrong)
    stubs[0].reset()
    try:
        with pytest.raises(Exception, match=r"tenant credential: .*cannot be decrypted"):
            await router.ainvoke([HumanMessage("hi")], call=CallInfo(tenant="acme"))
    finally:
        await router.aclose()
    assert stubs[0].requests == []  # the default key was not used instead


async def test_concurrent_calls_of_two_tenants_keep_their_keys(
    stubs: tuple[OpenAIStub, GeminiStub], store: CredentialStore
) -> None:
    openai_stub, _ = stubs
    openai_stub.reset()
    await store.set(tenant="acme", provider="openai", api_key=ACME_OPENAI_KEY)
    router = _router(stubs, "openai:gpt-4o-mini", store)
    for _ in range(10):
        openai_stub.reply("ok")
    try:
        await asyncio.gather(
            *(
                router.ainvoke([HumanMessage("hi")], call=CallInfo(tenant=tenant))
                for tenant in ["acme", "globex"] * 5
            )
        )
    finally:
        await router.aclose()
    keys = sorted(h["authorization"] for h in openai_stub.request_headers)
    assert keys == sorted(
        [f"Bearer {ACME_OPENAI_KEY}"] * 5 + ["Bearer sk-default-key-000000000"] * 5
    )


async def test_a_refused_tenant_key_does_not_open_the_shared_breaker(
    stubs: tuple[OpenAIStub, GeminiStub], store: CredentialStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A tenant's wrong key (401) fails that tenant's call clearly, but says nothing about
    the provider's health: other tenants keep the deployment. The log says whose key to
    replace, never the key."""
    caplog.set_level(logging.WARNING, logger="providers.router")
    openai_stub, _ = stubs
    openai_stub.reset()
    await store.set(tenant="acme", provider="openai", api_key="sk-acme-revoked-key-0000000")
    router = build_router(
        "openai:gpt-4o-mini",
        {},
        ProviderSettings(
            openai_api_key="sk-default-key-000000000",
            openai_base_url=openai_stub.base_url,
            timeout_seconds=10.0,
        ),
        services=RouterServices(credentials=store),
        failure_threshold=2,
    )
    try:
        for _ in range(3):
            openai_stub.fail(401, "Incorrect API key provided", type="invalid_request_error")
            with pytest.raises(Exception, match="401"):
                await router.ainvoke([HumanMessage("hi")], call=CallInfo(tenant="acme"))
        assert router.breaker_states() == {"openai:gpt-4o-mini": "closed"}
        warnings = [r.getMessage() for r in caplog.records if r.name == "providers.router"]
        assert len(warnings) == 3 and "tenant 'acme'" in warnings[0], warnings
        assert not any("sk-acme" in warning for warning in warnings)
        openai_stub.reply("globex still served")
        reply = await router.ainvoke([HumanMessage("hi")], call=CallInfo(tenant="globex"))
        assert reply.text == "globex still served"
    finally:
        await router.aclose()
    assert openai_stub.pending == 0


async def test_usage_rows_record_whose_key_paid(
    stubs: tuple[OpenAIStub, GeminiStub], store: CredentialStore, db: Database
) -> None:
    openai_stub, gemini_stub = stubs
    openai_stub.reset()
    settings = ProviderSettings(
        openai_api_key="sk-default-key-000000000",
        openai_base_url=openai_stub.base_url,
        google_api_key="AIza-default-key-0000000",
        google_base_url=gemini_stub.base_url,
        timeout_seconds=10.0,
    )
    recorder = UsageRecorder(db)
    router = build_router(
        "openai:gpt-4o-mini",
        {},
        settings,
        services=RouterServices(credentials=store, recorder=recorder),
    )
    await store.set(tenant="acme", provider="openai", api_key=ACME_OPENAI_KEY)
    try:
        for tenant in ("acme", "globex"):
            openai_stub.reply(f"for {tenant}")
            await router.ainvoke([HumanMessage("hi")], call=CallInfo(tenant=tenant))
        assert [(row.tenant, row.paid_by) for row in recorder.pending] == [
            ("acme", "tenant"),
            ("globex", "deployment"),
        ]
        await recorder.flush()
        async with db.session() as session:
            stored = (
                await session.execute(
                    select(ProviderUsage.tenant, ProviderUsage.paid_by).order_by(ProviderUsage.id)
                )
            ).all()
        assert [tuple(row) for row in stored] == [("acme", "tenant"), ("globex", "deployment")]
    finally:
        await router.aclose()


@pytest.mark.parametrize("provider", ["openai", "google"])
async def test_a_deployment_without_a_default_key_serves_tenants_with_their_own(
    provider: str, stubs: tuple[OpenAIStub, GeminiStub], store: CredentialStore, db: Database
) -> None:
    openai_stub, gemini_stub = stubs
    openai_stub.reset()
    gemini_stub.reset()
    stub = openai_stub if provider == "openai" else gemini_stub
    spec = "openai:gpt-4o-mini" if provider == "openai" else "google:gemini-2.5-flash"
    own = ACME_OPENAI_KEY if provider == "openai" else ACME_GOOGLE_KEY
    setting = "OPENAI_API_KEY" if provider == "openai" else "GOOGLE_API_KEY"
    settings = ProviderSettings(  # no default OpenAI or Google key
        openai_base_url=openai_stub.base_url,
        google_base_url=gemini_stub.base_url,
        timeout_seconds=10.0,
    )
    fallback = f"openai-compatible:local@{openai_stub.base_url}"
    recorder = UsageRecorder(db)
    services = RouterServices(credentials=store, recorder=recorder)
    router = build_router("smart", {"smart": [spec, fallback]}, settings, services=services)
    alone = build_router(spec, {}, settings, services=RouterServices(credentials=store))
    await store.set(tenant="acme", provider=provider, api_key=own)
    question = [HumanMessage("hello")]
    try:
        stub.reply("own key")
        reply = await router.ainvoke(question, call=CallInfo(tenant="acme"))
        assert reply.text == "own key" and _sent_key(stubs, provider) == own
        assert reply.response_metadata["relaygraph"]["deployment"] == spec

        for _ in range(9):  # more than the breaker's threshold: tenants without keys ...
            openai_stub.reply("from the fallback")
        for _ in range(9):
            other = await router.ainvoke(question, call=CallInfo(tenant="globex"))
            assert other.text == "from the fallback"
            assert other.response_metadata["relaygraph"]["deployment"] == fallback
        assert router.breaker_states()[spec] == "closed"  # ... never open it for acme

        stub.reply("still served")
        again = await router.ainvoke(question, call=CallInfo(tenant="acme"))
        assert again.text == "still served" and _sent_key(stubs, provider) == own

        with pytest.raises(Exception, match=rf"{spec}: no default API key .*set {setting}"):
            await alone.ainvoke(question, call=CallInfo(tenant="globex"))
        await recorder.flush()
        async with db.session() as session:
            rows = list((await session.execute(select(ProviderUsage))).scalars())
        errors = [r for r in rows if r.tenant == "globex" and r.deployment == spec]
        assert len(errors) == 9 and all(setting in (r.error or "") for r in errors)
    finally:
        await router.aclose()
        await alone.aclose()
    assert stub.pending == 0 and openai_stub.pending == 0
