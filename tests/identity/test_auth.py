"""identity/auth.py: headers → principal through API keys and JWTs, and the 401s."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from starlette.datastructures import Headers

from identity.apikeys import create_api_key, revoke_api_key
from identity.auth import AuthConfig, Authenticator, AuthError
from identity.types import ALL_SCOPES, USER_SCOPES

SECRET = "k" * 48


def _token(**overrides: Any) -> str:
    # Tokens are built at collection time: valid for long enough for the whole suite.
    claims = {"sub": "jo", "tenant": "acme", "roles": "user", "exp": int(time.time()) + 3600}
    claims.update(overrides)
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture
def authenticator(system) -> Authenticator:  # type: ignore[no-untyped-def]
    return Authenticator(AuthConfig(jwt_secret=SECRET), system.db)


@pytest.fixture
async def key(system) -> Any:  # type: ignore[no-untyped-def]
    return await create_api_key(db=system.db, tenant="acme", user="ana", roles=["user"])


async def _refused(authenticator: Authenticator, headers: dict[str, str]) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await authenticator.identify(headers)
    assert caught.value.status == 401
    return caught.value


@pytest.mark.parametrize(
    "headers",
    [
        lambda key: {"x-api-key": key},
        lambda key: {"X-Api-Key": f" {key} "},
        lambda key: {"Authorization": f"Bearer {key}"},
        lambda key: {"authorization": f"bearer {key}"},
        lambda key: Headers({"x-api-key": key}),
    ],
)
async def test_an_api_key_in_any_accepted_header(authenticator, key, headers) -> None:  # type: ignore[no-untyped-def]
    caller = await authenticator.identify(headers(key.key))

    assert caller.method == "api_key"
    assert caller.key_id == key.key_id
    assert (caller.principal.tenant, caller.principal.user) == ("acme", "ana")
    assert caller.principal.scopes == USER_SCOPES


async def test_a_bearer_jwt(authenticator: Authenticator) -> None:
    caller = await authenticator.identify({"Authorization": f"Bearer {_token()}"})

    assert caller.method == "jwt"
    assert caller.key_id is None
    assert (caller.principal.tenant, caller.principal.user) == ("acme", "jo")
    assert await authenticator.authenticate({"Authorization": f"Bearer {_token()}"}) == (
        caller.principal
    )


async def test_x_api_key_wins_over_authorization(authenticator, key) -> None:  # type: ignore[no-untyped-def]
    caller = await authenticator.identify(
        {"x-api-key": key.key, "authorization": f"Bearer {_token(sub='other')}"}
    )

    assert caller.principal.user == "ana"


async def test_no_credentials_is_a_401_that_says_how(authenticator: Authenticator) -> None:
    for headers in ({}, {"x-api-key": ""}, {"authorization": "  "}):
        error = await _refused(authenticator, headers)

        assert error.code == "missing_credentials"
        assert "x-api-key" in error.message and "relaygraph keys create" in error.message
        assert error.headers == {"WWW-Authenticate": 'Bearer realm="relaygraph"'}


@pytest.mark.parametrize("value", ["Basic YWxhZGRpbjpvcGVu", "Bearer", "Token abc"])
async def test_other_authorization_schemes_are_refused(authenticator, value: str) -> None:  # type: ignore[no-untyped-def]
    error = await _refused(authenticator, {"authorization": value})

    assert error.code == "unsupported_scheme"
    assert "Bearer <token>" in error.message


async def test_bad_api_keys_are_401s_with_their_reason(authenticator, system, key) -> None:  # type: ignore[no-untyped-def]
    malformed = await _refused(authenticator, {"x-api-key": "lsv2_pt_abc"})
    wrong = await _refused(authenticator, {"x-api-key": key.key[:-4] + "AAAA"})
    await revoke_api_key(db=system.db, key_id=key.key_id)
    revoked = await _refused(authenticator, {"authorization": f"Bearer {key.key}"})

    assert [malformed.code, wrong.code, revoked.code] == [
        "malformed_api_key",
        "invalid_api_key",
        "revoked_api_key",
    ]
    assert revoked.headers["WWW-Authenticate"].endswith('error="invalid_token"')


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (_token(exp=int(time.time()) - 600), "token_expired"),
        (jwt.encode({"sub": "jo", "tenant": "acme", "exp": 2**40}, "z" * 48), "invalid_token"),
        ("not-a-jwt", "invalid_token"),
        (_token(tenant=None), "missing_claim"),
    ],
)
async def test_bad_jwts_are_401s(authenticator: Authenticator, token: str, code: str) -> None:
    error = await _refused(authenticator, {"authorization": f"Bearer {token}"})

    assert error.code == code


async def test_jwts_are_refused_when_none_are_configured(system) -> None:  # type: ignore[no-untyped-def]
    authenticator = Authenticator(AuthConfig(), system.db)

    error = await _refused(authenticator, {"authorization": f"Bearer {_token()}"})

    assert error.code == "invalid_token"
    assert "accepts no JWTs" in error.message


async def test_disabled_auth_acts_as_the_local_user(system) -> None:  # type: ignore[no-untyped-def]
    authenticator = Authenticator(AuthConfig(disabled=True), system.db)

    caller = await authenticator.identify({})

    assert caller.method == "disabled"
    assert caller.principal.scopes == ALL_SCOPES


async def test_config_from_environment_settings(system, data_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from runtime.settings import Settings

    monkeypatch.setenv("RELAYGRAPH_JWT_SECRET", SECRET)
    monkeypatch.setenv("RELAYGRAPH_JWT_AUDIENCE", "rg")
    monkeypatch.setenv("RELAYGRAPH_JWT_ALGORITHMS", "HS256, HS512")
    monkeypatch.setenv("RELAYGRAPH_JWT_TENANT_CLAIM", "org")
    settings = Settings()
    assert settings.jwt_secret is not None
    config = AuthConfig(
        disabled=settings.auth_disabled,
        jwt_secret=settings.jwt_secret.get_secret_value(),
        jwt_public_key_file=settings.jwt_public_key_file,
        jwks_file=settings.jwks_file,
        jwt_issuer=settings.jwt_issuer,
        jwt_audience=settings.jwt_audience,
        jwt_algorithms=tuple(settings.jwt_algorithms),
        jwt_tenant_claim=settings.jwt_tenant_claim,
        jwt_roles_claim=settings.jwt_roles_claim,
    )
    authenticator = Authenticator(config, system.db)
    token = _token(aud="rg", org="globex", tenant=None)

    principal = await authenticator.authenticate({"authorization": f"Bearer {token}"})

    assert principal.tenant == "globex"
    assert SECRET not in repr(settings)


async def test_verified_keys_are_cached_and_a_revocation_here_ends_that(system, key) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import delete

    from store.models import ApiKey

    cached = Authenticator(AuthConfig(api_key_cache_seconds=60), system.db)
    uncached = Authenticator(AuthConfig(), system.db)
    headers = {"x-api-key": key.key}
    first = await cached.identify(headers)
    # The row goes behind the authenticators' backs (as another process might): the cache
    # still knows the key, a lookup does not.
    async with system.db.transaction() as session:
        await session.execute(delete(ApiKey).where(ApiKey.key_id == key.key_id))
    assert await cached.identify(headers) == first
    assert (await _refused(uncached, headers)).code == "invalid_api_key"
    # A wrong secret for a cached key id is never served from the cache.
    assert (await _refused(cached, {"x-api-key": key.key[:-4] + "AAAA"})).code == (
        "invalid_api_key"
    )
    # Revoking any key in this process empties the cache at once.
    other = await create_api_key(db=system.db, tenant="acme", user="bo", roles=["user"])
    await revoke_api_key(db=system.db, key_id=other.key_id)
    assert (await _refused(cached, headers)).code == "invalid_api_key"


async def test_cached_keys_expire(system, key) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    cached = Authenticator(AuthConfig(api_key_cache_seconds=5), system.db)
    cached._keys.clock = lambda: now[0]
    headers = {"x-api-key": key.key}
    await cached.identify(headers)
    from sqlalchemy import update

    from store.models import ApiKey, utcnow

    async with system.db.transaction() as session:  # revoked by another process
        await session.execute(
            update(ApiKey).where(ApiKey.key_id == key.key_id).values(revoked_at=utcnow())
        )
    now[0] += 4.9
    assert (await cached.identify(headers)).key_id == key.key_id
    now[0] += 0.2
    assert (await _refused(cached, headers)).code == "revoked_api_key"
