"""Bearer JWT verification: HS256 with a shared secret, or RS256 (and other asymmetric
algorithms) with a PEM public key or a local JWKS file. Never fetches keys over the
network.

Exactly one key source is configured, and the accepted algorithms are restricted to
that key's family, so ``alg=none`` and HS/RS key confusion (a token "signed" with HMAC
using the public key as the secret) are rejected before any signature check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from identity.types import ROLE_SCOPES, Principal

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
MIN_SECRET_BYTES = 32


class JwtConfigError(ValueError):
    """The JWT settings are unusable; the message names the setting to fix."""


class JwtError(Exception):
    """A token is rejected. ``code`` is stable (``invalid_token``, ``token_expired``,
    ``invalid_audience``, ``invalid_issuer``, ``missing_claim``, ``unsupported_algorithm``);
    the message says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class JwtConfig:
    """How tokens are verified. Set exactly one of ``secret``, ``public_key_file`` and
    ``jwks_file``. Empty ``algorithms`` means HS256 for a secret, RS256 for a key."""

    secret: str | None = None
    public_key_file: Path | None = None
    jwks_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = ()
    tenant_claim: str = "tenant"
    roles_claim: str = "roles"
    leeway_seconds: float = 30.0

    @property
    def enabled(self) -> bool:
        return any(
            source is not None for source in (self.secret, self.public_key_file, self.jwks_file)
        )


def _allowed_algorithms(config: JwtConfig) -> frozenset[str]:
    family, default, kind = (
        (HMAC_ALGORITHMS, "HS256", "jwt_secret")
        if config.secret is not None
        else (ASYMMETRIC_ALGORITHMS, "RS256", "a public key or JWKS file")
    )
    chosen = frozenset(config.algorithms) or frozenset({default})
    wrong = chosen - family
    if wrong:
        raise JwtConfigError(
            f"jwt_algorithms {sorted(wrong)} cannot be used with {kind}; "
            f"allowed: {', '.join(sorted(family))}"
        )
    return chosen


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise JwtConfigError(f"{setting} {path} cannot be read: {exc.strerror or exc}") from None


def _load_public_key(path: Path) -> Any:
    try:
        return load_pem_public_key(_read(path, "jwt_public_key_file"))
    except ValueError as exc:
        raise JwtConfigError(
            f"jwt_public_key_file {path} is not a PEM public key ({exc}); it should start with "
            "'-----BEGIN PUBLIC KEY-----'"
        ) from None


@dataclass(frozen=True)
class _Jwk:
    kid: str | None
    alg: str | None
    key: Any


def _load_jwks(path: Path, algorithms: frozenset[str]) -> list[_Jwk]:
    try:
        data = json.loads(_read(path, "jwks_file"))
        entries = data["keys"] if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ValueError('expected a JSON object {"keys": [...]}')
    except (ValueError, KeyError) as exc:
        raise JwtConfigError(f"jwks_file {path} is not a JWKS document: {exc}") from None
    keys: list[_Jwk] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in _ASYMMETRIC_KEY_TYPES:
            continue  # symmetric keys never verify tokens here: no key confusion
        alg = entry.get("alg")
        if entry.get("use", "sig") != "sig" or (alg is not None and alg not in algorithms):
            continue
        try:
            keys.append(_Jwk(kid=entry.get("kid"), alg=alg, key=jwt.PyJWK(entry).key))
        except jwt.PyJWTError:
            continue
    if not keys:
        raise JwtConfigError(
            f"jwks_file {path} has no signing key usable with {sorted(algorithms)} "
            "(RSA/EC/OKP keys with use 'sig')"
        )
    return keys


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by exact name, else by dotted path (``realm_access.roles``)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


class JwtVerifier:
    """Verifies bearer tokens against one configured key and turns their claims into a
    :class:`Principal`."""

    def __init__(self, config: JwtConfig) -> None:
        """Load the key and check the configuration.

        Raises:
            JwtConfigError: no key source, several, an unreadable or malformed key file,
                a too-short secret, or algorithms outside the key's family.
        """
        sources = [
            name
            for name, value in (
                ("jwt_secret", config.secret),
                ("jwt_public_key_file", config.public_key_file),
                ("jwks_file", config.jwks_file),
            )
            if value is not None
        ]
        if len(sources) != 1:
            raise JwtConfigError(
                "set exactly one of jwt_secret, jwt_public_key_file and jwks_file "
                f"(got {', '.join(sources) or 'none'})"
            )
        self.config = config
        self.algorithms = _allowed_algorithms(config)
        self._key: Any = None
        self._jwks: list[_Jwk] = []
        if config.secret is not None:
            if len(config.secret.encode()) < MIN_SECRET_BYTES:
                raise JwtConfigError(
                    f"jwt_secret must be at least {MIN_SECRET_BYTES} bytes; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
            self._key = config.secret
        elif config.public_key_file is not None:
            self._key = _load_public_key(config.public_key_file)
        elif config.jwks_file is not None:
            self._jwks = _load_jwks(config.jwks_file, self.algorithms)

    def _key_for(self, header: Mapping[str, Any]) -> Any:
        if not self._jwks:
            return self._key
        kid = header.get("kid")
        candidates = [k for k in self._jwks if kid is None or k.kid == kid]
        if kid is None and len(candidates) > 1:
            raise JwtError(
                "invalid_token", "the token has no 'kid' header and the JWKS holds several keys"
            )
        if not candidates:
            raise JwtError(
                "invalid_token",
                f"no key with kid {kid!r} in the JWKS file; update jwks_file if the identity "
                "provider rotated its keys",
            )
        key = candidates[0]
        if key.alg is not None and key.alg != header.get("alg"):
            raise JwtError(
                "unsupported_algorithm",
                f"the key {kid!r} is for {key.alg}, the token says {header.get('alg')}",
            )
        return key.key

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims after checking signature, algorithm, ``exp``, ``iss`` and
        ``aud`` (the last two required when configured).

        Raises:
            JwtError: the token is malformed, forged, expired, for another audience or
                issuer, uses an algorithm this server does not accept, or lacks a claim.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise JwtError("invalid_token", "the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise JwtError(
                "unsupported_algorithm",
                f"token algorithm {algorithm!r} is not accepted; this server accepts "
                f"{', '.join(sorted(self.algorithms))}",
            )
        required = ["exp", "sub"]
        if self.config.issuer is not None:
            required.append("iss")
        if self.config.audience is not None:
            required.append("aud")
        try:
            return jwt.decode(
                token,
                self._key_for(header),
                algorithms=sorted(self.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError:
            raise JwtError(
                "token_expired", "the token has expired; get a new one from your identity provider"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise JwtError(
                "missing_claim", f"the token has no {exc.claim!r} claim, which is required"
            ) from None
        except jwt.InvalidAudienceError:
            expected = self.config.audience
            raise JwtError(
                "invalid_audience",
                f"the token's audience is not {expected!r}; request a token for that audience"
                if expected
                else "the token names an audience but this server has no jwt_audience set; "
                "set RELAYGRAPH_JWT_AUDIENCE",
            ) from None
        except jwt.InvalidIssuerError:
            raise JwtError(
                "invalid_issuer",
                f"the token was not issued by {self.config.issuer!r}",
            ) from None
        except jwt.ImmatureSignatureError:
            raise JwtError("invalid_token", "the token is not valid yet (nbf/iat)") from None
        except jwt.PyJWTError:
            raise JwtError("invalid_token", "the token's signature or format is invalid") from None

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal for verified ``claims``: tenant from the tenant claim, user from
        ``sub``, roles from the roles claim (a list or a space-separated string; roles
        relaygraph does not define are ignored, since identity providers add their own).

        Raises:
            JwtError: ``missing_claim``, no usable tenant or subject.
        """
        tenant_claim = self.config.tenant_claim
        tenant = _claim(claims, tenant_claim)
        if not isinstance(tenant, str) or not tenant or len(tenant) > 128:
            raise JwtError(
                "missing_claim",
                f"the token has no usable {tenant_claim!r} claim naming the tenant; add it at "
                "the identity provider or set RELAYGRAPH_JWT_TENANT_CLAIM",
            )
        user = claims.get("sub")
        if not isinstance(user, str) or not user or len(user) > 256:
            raise JwtError("missing_claim", "the token's 'sub' claim is not a usable user id")
        raw_roles = _claim(claims, self.config.roles_claim)
        if isinstance(raw_roles, str):
            roles = raw_roles.split()
        elif isinstance(raw_roles, list):
            roles = [role for role in raw_roles if isinstance(role, str)]
        else:
            roles = []
        return Principal.with_roles(tenant, user, [r for r in roles if r in ROLE_SCOPES])

    def authenticate(self, token: str) -> Principal:
        """Verify ``token`` and return its principal.

        Raises:
            JwtError: see :meth:`verify` and :meth:`principal`.
        """
        return self.principal(self.verify(token))
