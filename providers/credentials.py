"""Per-tenant provider credentials ("bring your own key"), encrypted at rest.

A tenant may store its own API key per provider (``openai``, ``google``,
``openai-compatible``); the router then sends that tenant's calls with it, through a
client of its own, while other tenants keep the deployment's default key.

Keys are sealed with AES-256-GCM. The encryption key comes from ``RELAYGRAPH_SECRET_KEY``
(any string of 32+ characters; stretched with HKDF) or from a random key generated once
into the data directory with 0600 permissions. The tenant and provider are the GCM
associated data, so a ciphertext copied onto another tenant's row does not decrypt.
Plain keys live only in ``ProviderCredential`` objects, whose ``repr``/``str`` hide them,
and are never returned by listings, the API or the CLI (only a 4-character hint).

A deployment may have no default key (``openai:``/``google:`` without ``OPENAI_API_KEY`` /
``GOOGLE_API_KEY``): tenants with their own key are served, others fall back to the next
deployment with an error naming the setting (see ``providers.factory.KeylessModel``).

Known limit: a stored ``openai-compatible`` key is not scoped to a host. The table
(``provider_credentials``: tenant, provider, ciphertext, key hint) has one row per tenant and
provider and no metadata column, so the key goes to every ``openai-compatible:`` endpoint
the tenant's calls are routed to. Scoping it to a base URL needs a ``scope`` column (part
of the primary key) in a later migration.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, get_args, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select

from providers.errors import ProviderError
from store import Database
from store.models import ProviderCredentialRow

CredentialProvider = Literal["openai", "google", "openai-compatible"]
PROVIDERS: tuple[str, ...] = get_args(CredentialProvider)
SECRET_KEY_FILE = "relaygraph-secret.key"
_FORMAT = "v1"
_NONCE_BYTES = 12
MIN_SECRET_CHARS = 32
MAX_KEY_CHARS = 4096


class CredentialError(ProviderError):
    """A credential cannot be stored or read: unknown provider, empty or oversized key,
    or a ciphertext that the configured secret key cannot open (the key was changed)."""

    code = "credential_error"


def _hkdf(material: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"relaygraph provider credentials"
    ).derive(material)


def load_or_create_secret_key(data_dir: Path) -> bytes:
    """The 32-byte key in ``data_dir/relaygraph-secret.key``, created (0600) on first use.

    Several processes sharing one database must share this file (or set
    ``RELAYGRAPH_SECRET_KEY``): credentials sealed under another key cannot be read.

    Raises:
        CredentialError: the file exists but is not a 32-byte key.
    """
    path = data_dir / SECRET_KEY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = base64.urlsafe_b64encode(secrets.token_bytes(32))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            raw = path.read_bytes()
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
    try:
        key = base64.urlsafe_b64decode(raw.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise CredentialError(
            f"{path} does not hold a 32-byte base64 key; restore it from a backup (a new key "
            "makes every stored provider credential unreadable) or set RELAYGRAPH_SECRET_KEY"
        )
    return key


class CredentialCipher:
    """AES-256-GCM sealing of provider keys, bound to (tenant, provider)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise CredentialError("the credential encryption key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_secret(cls, secret: str | None, data_dir: Path) -> CredentialCipher:
        """From ``RELAYGRAPH_SECRET_KEY`` when set, else the data directory's key file.

        Raises:
            CredentialError: the secret is shorter than 32 characters, or the key file is bad.
        """
        if secret:
            if len(secret) < MIN_SECRET_CHARS:
                raise CredentialError(
                    f"RELAYGRAPH_SECRET_KEY must be at least {MIN_SECRET_CHARS} characters "
                    "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
            return cls(_hkdf(secret.encode()))
        return cls(load_or_create_secret_key(data_dir))

    def __repr__(self) -> str:
        return "CredentialCipher(<hidden>)"

    @staticmethod
    def _aad(tenant: str, provider: str) -> bytes:
        return f"{tenant}\x00{provider}".encode()

    def seal(self, plain: str, *, tenant: str, provider: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode(), self._aad(tenant, provider))
        return f"{_FORMAT}:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str, *, tenant: str, provider: str) -> str:
        """Raises:
        CredentialError: not sealed by this key for this tenant and provider."""
        version, _, body = token.partition(":")
        try:
            if version != _FORMAT:
                raise ValueError(version)
            raw = base64.urlsafe_b64decode(body)
            plain = self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._aad(tenant, provider)
            )
        except (InvalidTag, ValueError) as exc:
            raise CredentialError(
                f"the stored {provider} credential of tenant {tenant!r} cannot be decrypted: "
                "the secret key changed (restore RELAYGRAPH_SECRET_KEY or the key file) or "
                "the row was altered; set the credential again"
            ) from exc
        return plain.decode()


@dataclass(frozen=True)
class ProviderCredential:
    """A tenant's plain key for one provider; ``repr``/``str`` never show it."""

    tenant: str
    provider: str
    api_key: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """A short digest identifying the key (for client caching), not revealing it."""
        return hashlib.sha256(self.api_key.encode()).hexdigest()[:16]

    def __str__(self) -> str:
        return f"{self.provider} credential of tenant {self.tenant} (key hidden)"


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown about a stored credential: never the key, only its last 4 chars."""

    tenant: str
    provider: str
    key_hint: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, str | None]:
        return {
            "tenant": self.tenant,
            "provider": self.provider,
            "key_hint": self.key_hint,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@runtime_checkable
class CredentialSource(Protocol):
    """What the router asks: the tenant's own key for a provider, if it has one."""

    async def credential(self, tenant: str, provider: str) -> ProviderCredential | None: ...


def _check(provider: str) -> None:
    if provider not in PROVIDERS:
        raise CredentialError(
            f"unknown provider {provider!r}; credentials exist for: {', '.join(PROVIDERS)}"
        )


def _hint(api_key: str) -> str:
    return "…" + api_key[-4:] if len(api_key) >= 12 else "…"


def _info(row: ProviderCredentialRow) -> CredentialInfo:
    return CredentialInfo(
        tenant=row.tenant,
        provider=row.provider,
        key_hint=row.key_hint,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class CredentialStore:
    """Encrypted provider keys in the SQL store, with a short in-process cache for the
    router (a lookup per model call would otherwise be a query per call). Changes made
    through this object are seen at once; changes made by another process within
    ``cache_seconds``."""

    def __init__(self, db: Database, cipher: CredentialCipher, cache_seconds: float = 30.0):
        self.db = db
        self._cipher = cipher
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, ProviderCredential | None]] = {}

    def __repr__(self) -> str:
        return "CredentialStore(<encrypted>)"

    async def set(
        self, *, tenant: str, provider: str, api_key: str, created_by: str | None = None
    ) -> CredentialInfo:
        """Store (or replace) the tenant's key for ``provider``.

        Raises:
            CredentialError: unknown provider, or an empty, oversized or multi-line key.
        """
        _check(provider)
        api_key = api_key.strip()
        if not api_key or len(api_key) > MAX_KEY_CHARS or any(c.isspace() for c in api_key):
            raise CredentialError(
                f"the API key must be 1-{MAX_KEY_CHARS} characters without whitespace"
            )
        sealed = self._cipher.seal(api_key, tenant=tenant, provider=provider)
        async with self.db.session() as session, session.begin():
            row = await session.scalar(
                select(ProviderCredentialRow).where(
                    ProviderCredentialRow.tenant == tenant,
                    ProviderCredentialRow.provider == provider,
                )
            )
            if row is None:
                row = ProviderCredentialRow(tenant=tenant, provider=provider)
                session.add(row)
            row.ciphertext = sealed
            row.key_hint = _hint(api_key)
            row.created_by = created_by
            await session.flush()
            await session.refresh(row)
            info = _info(row)
        self._cache.pop((tenant, provider), None)
        return info

    async def delete(self, *, tenant: str, provider: str) -> bool:
        """Remove the tenant's key (its calls use the default key again); False if none."""
        _check(provider)
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(ProviderCredentialRow).where(
                    ProviderCredentialRow.tenant == tenant,
                    ProviderCredentialRow.provider == provider,
                )
            )
        self._cache.pop((tenant, provider), None)
        return bool(getattr(result, "rowcount", 0))

    async def list_credentials(self, *, tenant: str | None = None) -> list[CredentialInfo]:
        """Metadata of stored credentials (never the keys), one tenant or all."""
        query = select(ProviderCredentialRow).order_by(
            ProviderCredentialRow.tenant, ProviderCredentialRow.provider
        )
        if tenant is not None:
            query = query.where(ProviderCredentialRow.tenant == tenant)
        async with self.db.session() as session:
            return [_info(row) for row in (await session.scalars(query))]

    async def credential(self, tenant: str, provider: str) -> ProviderCredential | None:
        """The tenant's decrypted key for ``provider`` (cached briefly), or None.

        Raises:
            CredentialError: the stored key cannot be decrypted with the configured secret.
        """
        now = time.monotonic()
        cached = self._cache.get((tenant, provider))
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.db.session() as session:
            row = await session.scalar(
                select(ProviderCredentialRow).where(
                    ProviderCredentialRow.tenant == tenant,
                    ProviderCredentialRow.provider == provider,
                )
            )
        found = None
        if row is not None:
            plain = self._cipher.open(row.ciphertext, tenant=tenant, provider=provider)
            found = ProviderCredential(tenant, provider, plain)
        self._cache[(tenant, provider)] = (now + self._cache_seconds, found)
        return found
