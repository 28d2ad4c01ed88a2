"""Per-tenant provider credentials ("bring your own key"), encrypted at rest.

A tenant may store its own API key per provider (``openai``, ``google``,
``openai-compatible``); the router then sends that tenant's calls with it, through a
client of its own, while other tenants keep the deployment's default key.

``openai-compatible`` keys are stored per base URL (``normalise_base_url``: scheme, host,
port and path, host lower-cased, default port and trailing slash dropped): an
``openai-compatible:MODEL@BASE_URL`` deployment gets only the key stored for exactly its
base URL, never another server's; without one it uses the deployment's configured key
(or the placeholder), as for tenants without keys. A deployment whose base URL no key
can be stored for (user info, query, fragment) takes no tenant keys. ``openai`` and
``google`` keys have no base URL (one endpoint each, configured by the operator).

Keys are sealed with AES-256-GCM. The encryption key comes from ``RELAYGRAPH_SECRET_KEY``
(any string of 32+ characters; stretched with HKDF) or from a random key generated once
into the data directory with 0600 permissions. The tenant and provider are the GCM
associated data, so a ciphertext copied onto another tenant's row does not decrypt.
Plain keys live only in ``ProviderCredential`` objects, whose ``repr``/``str`` hide them,
and are never returned by listings, the API or the CLI (only a 4-character hint).

A deployment may have no default key (``openai:``/``google:`` without ``OPENAI_API_KEY`` /
``GOOGLE_API_KEY``): tenants with their own key are served, others fall back to the next
deployment with an error naming the setting (see ``providers.factory.KeylessModel``).

Keys stored before migration 0013 for ``openai-compatible`` have no base URL (they went
to every compatible endpoint): they are now sent nowhere, listed as "unscoped, unused",
and must be entered again with their base URL (then deleted: ``delete`` without a URL).
The base URL is part of the GCM associated data of scoped keys, so a ciphertext copied
onto another server's row does not decrypt either.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, get_args, runtime_checkable
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Select, delete, select

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
MAX_BASE_URL_CHARS = 512
SCOPED_PROVIDERS: tuple[str, ...] = ("openai-compatible",)
"""Providers whose keys are stored per base URL."""
UNSCOPED_UNUSED: Literal["unscoped, unused"] = "unscoped, unused"
CredentialStatus = Literal["active", "unscoped, unused"]
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
BASE_URL_PATTERN = (
    r"^[hH][tT][tT][pP][sS]?://[A-Za-z0-9._~-]+(?::"
    + _PORT
    + r")?(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$"
)
"""Base URLs ``normalise_base_url`` accepts, as a regular expression for API schemas
(stricter: no IPv6 literals); at most ``MAX_BASE_URL_CHARS`` long."""
_HOST = re.compile(r"[a-z0-9._~-]+|[0-9a-f:.]+")
"""An ASCII host name or IPv4 address (lower-cased), or an IPv6 literal without brackets."""


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
    def _aad(tenant: str, provider: str, base_url: str) -> bytes:
        # Unscoped keys keep the associated data they were sealed with before base URLs.
        scope = f"\x00{base_url}" if base_url else ""
        return f"{tenant}\x00{provider}{scope}".encode()

    def seal(self, plain: str, *, tenant: str, provider: str, base_url: str = "") -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        aad = self._aad(tenant, provider, base_url)
        sealed = self._aead.encrypt(nonce, plain.encode(), aad)
        return f"{_FORMAT}:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str, *, tenant: str, provider: str, base_url: str = "") -> str:
        """Raises:
        CredentialError: not sealed by this key for this tenant, provider and base URL."""
        version, _, body = token.partition(":")
        try:
            if version != _FORMAT:
                raise ValueError(version)
            raw = base64.urlsafe_b64decode(body)
            plain = self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._aad(tenant, provider, base_url)
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
    """A tenant's plain key for one provider (and, for ``openai-compatible``, one base
    URL); ``repr``/``str`` never show it."""

    tenant: str
    provider: str
    api_key: str = field(repr=False)
    base_url: str = ""

    @property
    def fingerprint(self) -> str:
        """A short digest identifying the key (for client caching), not revealing it."""
        return hashlib.sha256(self.api_key.encode()).hexdigest()[:16]

    def __str__(self) -> str:
        at = f" for {self.base_url}" if self.base_url else ""
        return f"{self.provider} credential of tenant {self.tenant}{at} (key hidden)"


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown about a stored credential: never the key, only its last 4 chars.
    ``base_url`` is None for openai/google keys and for unscoped (pre-0013, unused)
    ``openai-compatible`` keys, whose ``status`` says so."""

    tenant: str
    provider: str
    base_url: str | None
    key_hint: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def status(self) -> CredentialStatus:
        """``active``, or ``unscoped, unused`` for a compatible key stored without a URL."""
        if self.provider in SCOPED_PROVIDERS and not self.base_url:
            return UNSCOPED_UNUSED
        return "active"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "tenant": self.tenant,
            "provider": self.provider,
            "base_url": self.base_url,
            "status": self.status,
            "key_hint": self.key_hint,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@runtime_checkable
class CredentialSource(Protocol):
    """What the router asks: the tenant's own key for a provider (for an
    ``openai-compatible`` deployment: for its base URL), if it has one."""

    async def credential(
        self, tenant: str, provider: str, base_url: str | None = None
    ) -> ProviderCredential | None: ...


def normalise_base_url(url: str) -> str:
    """``url`` as credentials are keyed by: ``scheme://host[:port]/path``, scheme and host
    lower-cased, the scheme's default port and trailing slashes dropped, path kept as is.

    Raises:
        CredentialError: not an http(s) URL with a host, or it carries user info, a query
            or a fragment (a base URL has none), or it is longer than 512 characters.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise CredentialError(f"base URL {url!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        raise CredentialError(
            f"base URL {url!r} must be an http:// or https:// URL with a host, "
            "e.g. http://127.0.0.1:11434/v1"
        )
    if not _HOST.fullmatch(host) or any(c.isspace() or not c.isprintable() for c in text):
        raise CredentialError(
            f"base URL {url!r} has characters a base URL cannot have (spaces, control "
            "characters, or a non-ASCII host: give it in punycode, xn--…)"
        )
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise CredentialError(
            f"base URL {url!r} must not carry user info, a query or a fragment; "
            "give scheme, host, port and path only"
        )
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    normal = f"{scheme}://{host}{parts.path.rstrip('/')}"
    if len(normal) > MAX_BASE_URL_CHARS:
        raise CredentialError(f"base URL is longer than {MAX_BASE_URL_CHARS} characters")
    return normal


def _check(provider: str) -> None:
    if provider not in PROVIDERS:
        raise CredentialError(
            f"unknown provider {provider!r}; credentials exist for: {', '.join(PROVIDERS)}"
        )


def scope_of(provider: str, base_url: str | None) -> str:
    """The stored base URL of ``provider``'s key: normalised ``base_url`` for
    ``openai-compatible`` (required), ``''`` for the others (refused if given).

    Raises:
        CredentialError: unknown provider, a base URL missing, malformed or not allowed.
    """
    _check(provider)
    if provider in SCOPED_PROVIDERS:
        if not base_url or not base_url.strip():
            raise CredentialError(
                f"{provider} keys are stored per server: give its base URL (the part after "
                "@ in openai-compatible:MODEL@BASE_URL, e.g. http://127.0.0.1:11434/v1)"
            )
        return normalise_base_url(base_url)
    if base_url:
        raise CredentialError(
            f"{provider} keys take no base URL (the {provider} endpoint is the operator's "
            "setting); only openai-compatible keys are stored per base URL"
        )
    return ""


def _hint(api_key: str) -> str:
    return "…" + api_key[-4:] if len(api_key) >= 12 else "…"


def _info(row: ProviderCredentialRow) -> CredentialInfo:
    return CredentialInfo(
        tenant=row.tenant,
        provider=row.provider,
        base_url=row.base_url or None,
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
        self._cache: dict[tuple[str, str, str], tuple[float, ProviderCredential | None]] = {}

    def __repr__(self) -> str:
        return "CredentialStore(<encrypted>)"

    @staticmethod
    def _row_query(tenant: str, provider: str, base_url: str) -> Select[ProviderCredentialRow]:
        return select(ProviderCredentialRow).where(
            ProviderCredentialRow.tenant == tenant,
            ProviderCredentialRow.provider == provider,
            ProviderCredentialRow.base_url == base_url,
        )

    async def set(
        self,
        *,
        tenant: str,
        provider: str,
        api_key: str,
        base_url: str | None = None,
        created_by: str | None = None,
    ) -> CredentialInfo:
        """Store (or replace) the tenant's key for ``provider`` (``openai-compatible``:
        for the server at ``base_url``, which is required there and refused elsewhere).

        Raises:
            CredentialError: unknown provider, a missing, malformed or unexpected base
                URL, or an empty, oversized or multi-line key.
        """
        scope = scope_of(provider, base_url)
        api_key = api_key.strip()
        if not api_key or len(api_key) > MAX_KEY_CHARS or any(c.isspace() for c in api_key):
            raise CredentialError(
                f"the API key must be 1-{MAX_KEY_CHARS} characters without whitespace"
            )
        sealed = self._cipher.seal(api_key, tenant=tenant, provider=provider, base_url=scope)
        async with self.db.session() as session, session.begin():
            row = await session.scalar(self._row_query(tenant, provider, scope))
            if row is None:
                row = ProviderCredentialRow(tenant=tenant, provider=provider, base_url=scope)
                session.add(row)
            row.ciphertext = sealed
            row.key_hint = _hint(api_key)
            row.created_by = created_by
            await session.flush()
            await session.refresh(row)
            info = _info(row)
        self._cache.pop((tenant, provider, scope), None)
        return info

    async def delete(self, *, tenant: str, provider: str, base_url: str | None = None) -> bool:
        """Remove the tenant's key (its calls use the default key again); False if none.
        For ``openai-compatible`` without ``base_url``: the unscoped key stored before
        keys had base URLs (unused since).

        Raises:
            CredentialError: unknown provider, a malformed or unexpected base URL.
        """
        if provider in SCOPED_PROVIDERS and not base_url:
            scope = ""
        else:
            scope = scope_of(provider, base_url)
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(ProviderCredentialRow).where(
                    ProviderCredentialRow.tenant == tenant,
                    ProviderCredentialRow.provider == provider,
                    ProviderCredentialRow.base_url == scope,
                )
            )
        self._cache.pop((tenant, provider, scope), None)
        return bool(getattr(result, "rowcount", 0))

    async def list_credentials(self, *, tenant: str | None = None) -> list[CredentialInfo]:
        """Metadata of stored credentials (never the keys), one tenant or all."""
        query = select(ProviderCredentialRow).order_by(
            ProviderCredentialRow.tenant,
            ProviderCredentialRow.provider,
            ProviderCredentialRow.base_url,
        )
        if tenant is not None:
            query = query.where(ProviderCredentialRow.tenant == tenant)
        async with self.db.session() as session:
            return [_info(row) for row in (await session.scalars(query))]

    async def credential(
        self, tenant: str, provider: str, base_url: str | None = None
    ) -> ProviderCredential | None:
        """The tenant's decrypted key for ``provider`` (cached briefly), or None. For
        ``openai-compatible`` only the key stored for exactly ``base_url`` (normalised)
        is returned: None without a URL, and never an unscoped or another server's key.

        Raises:
            CredentialError: the stored key cannot be decrypted with the configured secret,
                or ``base_url`` is malformed.
        """
        if provider in SCOPED_PROVIDERS:
            if not base_url:
                return None
            scope = normalise_base_url(base_url)
        else:
            scope = ""
        now = time.monotonic()
        cached = self._cache.get((tenant, provider, scope))
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.db.session() as session:
            row = await session.scalar(self._row_query(tenant, provider, scope))
        found = None
        if row is not None:
            plain = self._cipher.open(
                row.ciphertext, tenant=tenant, provider=provider, base_url=scope
            )
            found = ProviderCredential(tenant, provider, plain, scope)
        self._cache[(tenant, provider, scope)] = (now + self._cache_seconds, found)
        return found
