"""identity/apikeys.py: keys are shown once, stored hashed, verified, revoked and listed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from identity.apikeys import (
    ApiKeyError,
    create_api_key,
    list_api_keys,
    parse_api_key,
    revoke_api_key,
    verify_api_key,
)
from identity.types import REVIEWER_SCOPES
from store.models import ApiKey, utcnow


async def test_a_created_key_verifies_as_its_principal(system) -> None:  # type: ignore[no-untyped-def]
    created = await create_api_key(
        db=system.db, tenant="acme", user="ana", roles=["user", "reviewer"], name="laptop"
    )

    principal = await verify_api_key(db=system.db, key=created.key)

    assert (principal.tenant, principal.user) == ("acme", "ana")
    assert principal.roles == {"user", "reviewer"}
    assert principal.scopes == REVIEWER_SCOPES
    assert created.key.startswith(f"rg_{created.key_id}_")
    assert created.to_dict() == {
        "key": created.key,
        "key_id": created.key_id,
        "tenant": "acme",
        "user": "ana",
        "roles": ["reviewer", "user"],
    }
    assert created.key not in repr(created)


async def test_only_a_hash_of_the_secret_is_stored(system) -> None:  # type: ignore[no-untyped-def]
    created = await create_api_key(db=system.db, tenant="acme", user="ana", roles=["user"])
    _, secret = parse_api_key(created.key)

    async with system.db.session() as session:
        row = (await session.scalars(select(ApiKey))).one()

    assert row.key_hash.startswith("sha256:")
    assert secret not in row.key_hash
    assert created.key not in str(row.__dict__)


async def test_a_wrong_secret_and_an_unknown_key_read_alike(system) -> None:  # type: ignore[no-untyped-def]
    created = await create_api_key(db=system.db, tenant="acme", user="ana", roles=["user"])
    key_id, secret = parse_api_key(created.key)
    forged = f"rg_{key_id}_{'A' * 43}"
    unknown = f"rg_{'0' * 16}_{secret}"

    errors = []
    for key in (forged, unknown):
        with pytest.raises(ApiKeyError) as caught:
            await verify_api_key(db=system.db, key=key)
        errors.append(caught.value)

    assert {error.code for error in errors} == {"invalid_api_key"}
    assert "relaygraph keys create" in errors[0].message


@pytest.mark.parametrize(
    "key",
    ["", "rg_", "lsv2_pt_0123456789", "rg_0123456789abcdef", "rg_XYZ_" + "a" * 43, "Bearer rg_x"],
)
async def test_malformed_keys_are_refused_before_any_lookup(system, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiKeyError) as caught:
        await verify_api_key(db=system.db, key=key)

    assert caught.value.code == "malformed_api_key"
    assert "rg_" in caught.value.message


async def test_a_revoked_key_is_refused_and_says_so(system) -> None:  # type: ignore[no-untyped-def]
    created = await create_api_key(db=system.db, tenant="acme", user="ana", roles=["user"])

    info = await revoke_api_key(db=system.db, key_id=created.key_id)
    again = await revoke_api_key(db=system.db, key_id=created.key_id)

    assert info.revoked_at is not None and not info.active
    assert again.revoked_at == info.revoked_at
    with pytest.raises(ApiKeyError) as caught:
        await verify_api_key(db=system.db, key=created.key)
    assert caught.value.code == "revoked_api_key"
    assert created.key_id in caught.value.message


async def test_revoking_is_scoped_to_a_tenant_when_one_is_given(system) -> None:  # type: ignore[no-untyped-def]
    created = await create_api_key(db=system.db, tenant="acme", user="ana", roles=["user"])

    with pytest.raises(ApiKeyError) as caught:
        await revoke_api_key(db=system.db, key_id=created.key_id, tenant="globex")

    assert caught.value.code == "unknown_key_id"
    await verify_api_key(db=system.db, key=created.key)  # still valid


@pytest.mark.parametrize("key_id", ["0" * 16, "nope", ""])
async def test_revoking_an_unknown_key_id_names_it(system, key_id: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiKeyError) as caught:
        await revoke_api_key(db=system.db, key_id=key_id)

    assert caught.value.code == "unknown_key_id"
    assert "relaygraph keys list" in caught.value.message


@pytest.mark.parametrize(
    ("tenant", "user", "roles", "needle"),
    [
        ("acme", "ana", ["owner"], "unknown role 'owner'"),
        ("acme", "ana", [], "at least one role"),
        ("acme", "ana", [" ", ""], "at least one role"),
        ("", "ana", ["user"], "tenant"),
        ("acme", "  ", ["user"], "user"),
        ("a" * 129, "ana", ["user"], "tenant"),
    ],
)
async def test_bad_requests_create_nothing(system, tenant, user, roles, needle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiKeyError) as caught:
        await create_api_key(db=system.db, tenant=tenant, user=user, roles=roles)

    assert caught.value.code == "invalid_key_request"
    assert needle in caught.value.message
    assert await list_api_keys(db=system.db) == []


async def test_listing_filters_by_tenant_and_shows_no_secret(system) -> None:  # type: ignore[no-untyped-def]
    first = await create_api_key(db=system.db, tenant="acme", user="ana", roles=["user"])
    second = await create_api_key(db=system.db, tenant="acme", user="bo", roles=["admin"])
    other = await create_api_key(db=system.db, tenant="globex", user="cy", roles=["user"])
    await revoke_api_key(db=system.db, key_id=second.key_id)

    everyone = await list_api_keys(db=system.db)
    acme = await list_api_keys(db=system.db, tenant="acme")

    assert {key.key_id for key in everyone} == {first.key_id, second.key_id, other.key_id}
    assert [key.key_id for key in acme] == [first.key_id, second.key_id]
    assert [key.active for key in acme] == [True, False]
    for key in everyone:
        text = str(key.to_dict())
        assert "key_hash" not in text and parse_api_key(first.key)[1] not in text


async def test_last_used_is_recorded_at_most_once_a_minute(system) -> None:  # type: ignore[no-untyped-def]
    created = await create_api_key(db=system.db, tenant="acme", user="ana", roles=["user"])

    async def last_used():  # type: ignore[no-untyped-def]
        return (await list_api_keys(db=system.db))[0].last_used_at

    assert await last_used() is None
    await verify_api_key(db=system.db, key=created.key)
    first = await last_used()
    await verify_api_key(db=system.db, key=created.key)
    assert first is not None and await last_used() == first

    stale = utcnow() - timedelta(minutes=5)
    async with system.db.transaction() as session:
        await session.execute(update(ApiKey).values(last_used_at=stale))
    await verify_api_key(db=system.db, key=created.key)
    assert await last_used() > stale
