"""API keys: create, verify, revoke and list.

A key reads ``rg_<key_id>_<secret>``. The key id is public (it names the key in
listings, logs and rate limits); the secret is 32 random bytes and only its
SHA-256 digest is stored. A slow password hash would add nothing for a secret of
that entropy, and verifying stays cheap enough to run on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from identity.types import ROLE_SCOPES, Principal, scopes_for_roles
from store import Database
from store.models import ApiKey, utcnow

KEY_PREFIX = "rg_"
_KEY_PATTERN = re.compile(r"^rg_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
_HASH_SCHEME = "sha256"
# last_used_at is refreshed at most this often, so verifying is a read, not a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)
_revocations = 0
"""How many keys this process has revoked: caches of verified keys compare it to drop
every entry at once when a key is revoked here (see ``identity.auth.KeyCache``)."""


def revocations() -> int:
    """How many keys this process has revoked (a cache generation; see ``_revocations``)."""
    return _revocations


class ApiKeyError(Exception):
    """An API key is malformed, unknown, revoked, or cannot be created as asked.

    ``code`` is stable for programs (``malformed_api_key``, ``invalid_api_key``,
    ``revoked_api_key``, ``unknown_key_id``, ``invalid_key_request``); the message
    says what to do.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about a key: everything but its secret."""

    key_id: str
    tenant: str
    user: str
    roles: tuple[str, ...]
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "key_id": self.key_id,
            "tenant": self.tenant,
            "user": self.user,
            "roles": list(self.roles),
            "name": self.name,
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }


@dataclass(frozen=True)
class CreatedKey:
    """A new key. ``key`` is the only copy of the secret: show it once, never store it."""

    key: str = field(repr=False)
    info: ApiKeyInfo

    @property
    def key_id(self) -> str:
        return self.info.key_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "key_id": self.info.key_id,
            "tenant": self.info.tenant,
            "user": self.info.user,
            "roles": list(self.info.roles),
        }


def looks_like_api_key(token: str) -> bool:
    """Whether ``token`` has our key prefix (it may still be malformed or wrong)."""
    return token.startswith(KEY_PREFIX)


def parse_api_key(key: str) -> tuple[str, str]:
    """Split a key into ``(key_id, secret)``.

    Raises:
        ApiKeyError: ``malformed_api_key``, the text is not shaped like one of our keys.
    """
    match = _KEY_PATTERN.match(key.strip())
    if match is None:
        raise ApiKeyError(
            "malformed_api_key",
            "this is not a relaygraph API key (they look like rg_<16 hex>_<43 characters>); "
            "check that the whole key was copied, or create one with `relaygraph keys create`",
        )
    return match.group(1), match.group(2)


def _hash_secret(key_id: str, secret: str) -> str:
    digest = hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()
    return f"{_HASH_SCHEME}:{digest}"


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        tenant=row.tenant,
        user=row.user,
        roles=tuple(row.roles),
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _check_text(label: str, value: str, max_length: int) -> str:
    value = value.strip()
    if not value or len(value) > max_length:
        raise ApiKeyError(
            "invalid_key_request", f"{label} must be 1 to {max_length} characters, got {value!r}"
        )
    return value


async def create_api_key(
    *,
    db: Database,
    tenant: str,
    user: str,
    roles: Iterable[str],
    name: str | None = None,
) -> CreatedKey:
    """Create a key acting as ``user`` in ``tenant`` with ``roles``.

    Raises:
        ApiKeyError: ``invalid_key_request``, an empty tenant/user, no role, or an
            unknown role.
    """
    tenant = _check_text("tenant", tenant, 128)
    user = _check_text("user", user, 256)
    if name is not None:
        name = _check_text("name", name, 200)
    role_list = sorted({role.strip() for role in roles if role.strip()})
    if not role_list:
        known = ", ".join(sorted(ROLE_SCOPES))
        raise ApiKeyError("invalid_key_request", f"give the key at least one role ({known})")
    try:
        scopes_for_roles(role_list)
    except ValueError as exc:
        raise ApiKeyError("invalid_key_request", str(exc)) from None

    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        key_id=key_id,
        tenant=tenant,
        user=user,
        roles=role_list,
        key_hash=_hash_secret(key_id, secret),
        name=name,
        created_at=utcnow(),
    )
    async with db.transaction() as session:
        session.add(row)
    return CreatedKey(key=f"{KEY_PREFIX}{key_id}_{secret}", info=_info(row))


async def verify_api_key(*, db: Database, key: str) -> Principal:
    """The principal ``key`` acts as; refreshes the key's ``last_used_at`` (at most once
    a minute).

    Raises:
        ApiKeyError: ``malformed_api_key``; ``invalid_api_key`` (no such key, or the
            secret does not match: the two are not told apart); ``revoked_api_key``;
            ``invalid_api_key`` when a stored role no longer exists.
    """
    key_id, secret = parse_api_key(key)
    async with db.session() as session:
        row = await session.get(ApiKey, key_id)
    if row is None or not hmac.compare_digest(row.key_hash, _hash_secret(key_id, secret)):
        raise ApiKeyError(
            "invalid_api_key",
            f"API key {key_id} is not recognised; check it, or create a new one with "
            "`relaygraph keys create`",
        )
    if row.revoked_at is not None:
        raise ApiKeyError(
            "revoked_api_key",
            f"API key {key_id} was revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC; "
            "ask an administrator for a new key",
        )
    try:
        principal = Principal.with_roles(row.tenant, row.user, row.roles)
    except ValueError as exc:
        raise ApiKeyError(
            "invalid_api_key",
            f"API key {key_id} carries a role that no longer exists ({exc}); create a new key",
        ) from None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        async with db.transaction() as session:
            await session.execute(
                update(ApiKey).where(ApiKey.key_id == key_id).values(last_used_at=now)
            )
    return principal


async def revoke_api_key(*, db: Database, key_id: str, tenant: str | None = None) -> ApiKeyInfo:
    """Revoke a key for good; revoking a revoked key changes nothing. With ``tenant``,
    only that tenant's keys can be revoked (others read as unknown).

    Raises:
        ApiKeyError: ``unknown_key_id``, no such key (in ``tenant``).
    """
    async with db.transaction() as session:
        row = await session.get(ApiKey, key_id) if _KEY_ID_PATTERN.match(key_id) else None
        if row is None or (tenant is not None and row.tenant != tenant):
            raise ApiKeyError(
                "unknown_key_id",
                f"no API key with id {key_id!r}; `relaygraph keys list` shows the key ids",
            )
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        info = _info(row)
    global _revocations
    _revocations += 1  # after the commit: a cache refilled now reads the revocation
    return info


async def list_api_keys(*, db: Database, tenant: str | None = None) -> list[ApiKeyInfo]:
    """Keys (all tenants', or ``tenant``'s), revoked ones included, oldest first."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id)
    if tenant is not None:
        query = query.where(ApiKey.tenant == tenant)
    async with db.session() as session:
        rows = (await session.scalars(query)).all()
    return [_info(row) for row in rows]
