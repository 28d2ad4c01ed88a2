"""Turning request headers into a :class:`Principal`.

Accepted credentials, in order:

1. ``x-api-key: rg_...`` (what ``langgraph-sdk`` sends from ``LANGGRAPH_API_KEY``);
2. ``Authorization: Bearer rg_...``, an API key as a bearer token (MCP clients);
3. ``Authorization: Bearer <JWT>``, verified by :mod:`identity.jwt` when configured.

Every failure is a 401 :class:`AuthError`; whether a valid principal may do a thing
(403) is decided by the caller, from the principal's scopes.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from identity.apikeys import (
    ApiKeyError,
    looks_like_api_key,
    parse_api_key,
    revocations,
    verify_api_key,
)
from identity.jwt import JwtConfig, JwtError, JwtVerifier
from identity.types import Principal, local_principal
from store import Database

_HOW_TO_AUTHENTICATE = (
    "send an API key in the 'x-api-key' header (or as 'Authorization: Bearer rg_...'), "
    "or a JWT as 'Authorization: Bearer <token>'; an administrator creates keys with "
    "`relaygraph keys create --tenant T --user U --roles user`"
)


class AuthError(Exception):
    """The request is not authenticated. ``status`` is the HTTP status (401), ``code``
    a stable error code, ``message`` what to do; send :attr:`headers` with the answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """``WWW-Authenticate`` as RFC 6750 asks for a 401."""
        if self.status != 401:
            return {}
        challenge = 'Bearer realm="relaygraph"'
        if self.code != "missing_credentials":
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}


@dataclass(frozen=True)
class AuthConfig:
    """Authentication settings as plain values (built by ``runtime.system``).

    ``disabled`` makes every request the local all-roles principal: for a server that
    only listens on 127.0.0.1 for one person, never for a shared one.
    ``api_key_cache_seconds``: how long a verified API key is trusted before it is looked
    up again (0: every request). A key revoked in this process stops working at once; one
    revoked by another process (the CLI) within this time.
    """

    disabled: bool = False
    api_key_cache_seconds: float = 0.0
    jwt_secret: str | None = None
    jwt_public_key_file: Path | None = None
    jwks_file: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_algorithms: tuple[str, ...] = ()
    jwt_tenant_claim: str = "tenant"
    jwt_roles_claim: str = "roles"

    def jwt(self) -> JwtConfig:
        return JwtConfig(
            secret=self.jwt_secret,
            public_key_file=self.jwt_public_key_file,
            jwks_file=self.jwks_file,
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
            algorithms=self.jwt_algorithms,
            tenant_claim=self.jwt_tenant_claim,
            roles_claim=self.jwt_roles_claim,
        )


@dataclass(frozen=True)
class Caller:
    """Who made a request and with what: ``key_id`` is set for API keys (rate limits
    and audit name the key)."""

    principal: Principal
    method: Literal["api_key", "jwt", "disabled"]
    key_id: str | None = None


class KeyCache:
    """Verified API keys for a short time, so that a request costs no key lookup.

    Entries are keyed by the SHA-256 of the whole key (a wrong secret never matches a
    cached one) and live ``ttl`` seconds; every entry is dropped when this process
    revokes a key. Failures are never cached.
    """

    def __init__(
        self, ttl: float, *, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, Caller]] = OrderedDict()
        self._generation = revocations()

    @staticmethod
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def get(self, digest: str) -> Caller | None:
        if self._generation != revocations():
            self._entries.clear()
            self._generation = revocations()
            return None
        found = self._entries.get(digest)
        if found is None:
            return None
        if found[0] <= self.clock():
            del self._entries[digest]
            return None
        return found[1]

    def put(self, digest: str, caller: Caller, generation: int) -> None:
        """Remember ``caller``, verified when the revocation count was ``generation``
        (a revocation during the lookup leaves it out)."""
        if generation != revocations():
            return
        self._entries[digest] = (self.clock() + self.ttl, caller)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class Authenticator:
    """Authenticates requests from their headers, against the API keys in ``db`` and the
    configured JWT key."""

    def __init__(self, config: AuthConfig, db: Database) -> None:
        """Load the JWT key, if one is configured.

        Raises:
            JwtConfigError: the JWT settings are unusable (see :class:`JwtVerifier`).
        """
        self.config = config
        self.db = db
        self._keys = KeyCache(config.api_key_cache_seconds)
        jwt_config = config.jwt()
        self._jwt = JwtVerifier(jwt_config) if jwt_config.enabled else None

    async def identify(self, headers: Mapping[str, str]) -> Caller:
        """The caller behind ``headers`` (keys matched case-insensitively).

        Raises:
            AuthError: 401, no credentials, or credentials that are malformed, unknown,
                revoked, forged or expired.
        """
        if self.config.disabled:
            return Caller(principal=local_principal(), method="disabled")
        lowered = {name.lower(): value for name, value in headers.items()}
        api_key = lowered.get("x-api-key", "").strip()
        if api_key:
            return await self._api_key(api_key)
        authorization = lowered.get("authorization", "").strip()
        if not authorization:
            raise AuthError(
                401, "missing_credentials", f"authentication required: {_HOW_TO_AUTHENTICATE}"
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError(
                401,
                "unsupported_scheme",
                f"the Authorization header must read 'Bearer <token>'; {_HOW_TO_AUTHENTICATE}",
            )
        if looks_like_api_key(token):
            return await self._api_key(token)
        return self._bearer_jwt(token)

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The principal behind ``headers``.

        Raises:
            AuthError: see :meth:`identify`.
        """
        return (await self.identify(headers)).principal

    async def _api_key(self, key: str) -> Caller:
        caching = self._keys.ttl > 0
        digest = KeyCache.digest(key) if caching else ""
        if caching and (cached := self._keys.get(digest)) is not None:
            return cached
        generation = revocations()
        try:
            key_id, _ = parse_api_key(key)
            principal = await verify_api_key(db=self.db, key=key)
        except ApiKeyError as exc:
            raise AuthError(401, exc.code, exc.message) from None
        caller = Caller(principal=principal, method="api_key", key_id=key_id)
        if caching:
            self._keys.put(digest, caller, generation)
        return caller

    def _bearer_jwt(self, token: str) -> Caller:
        if self._jwt is None:
            raise AuthError(
                401,
                "invalid_token",
                "this server accepts no JWTs (no jwt_secret, jwt_public_key_file or jwks_file "
                "is set); use an API key: relaygraph keys look like rg_<id>_<secret>",
            )
        try:
            principal = self._jwt.authenticate(token)
        except JwtError as exc:
            raise AuthError(401, exc.code, exc.message) from None
        return Caller(principal=principal, method="jwt")
