"""identity/jwt.py: what is accepted (HS256, RS256 by PEM or JWKS) and every way a token
is refused, key confusion and ``alg=none`` included."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from identity.jwt import JwtConfig, JwtConfigError, JwtError, JwtVerifier
from identity.types import REVIEWER_SCOPES, USER_SCOPES

SECRET = "s" * 40
ISSUER = "https://idp.example"
AUDIENCE = "relaygraph"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "ana",
        "tenant": "acme",
        "roles": ["user", "reviewer"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 600,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def public_pem(rsa_key: rsa.RSAPrivateKey) -> bytes:
    return rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def hs_verifier() -> JwtVerifier:
    return JwtVerifier(JwtConfig(secret=SECRET, issuer=ISSUER, audience=AUDIENCE))


@pytest.fixture
def rs_verifier(tmp_path: Path, public_pem: bytes) -> JwtVerifier:
    path = tmp_path / "public.pem"
    path.write_bytes(public_pem)
    return JwtVerifier(JwtConfig(public_key_file=path, issuer=ISSUER, audience=AUDIENCE))


def _jwks_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, **extra: Any) -> Path:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", **extra})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    decoy = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other.public_key()))
    decoy.update({"kid": "k0", "use": "sig"})
    # A symmetric key in the set must never be used (it would allow HMAC forgeries).
    oct_key = {"kty": "oct", "kid": "k2", "k": _b64(SECRET.encode())}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [decoy, jwk, oct_key]}))
    return path


def test_a_valid_hs256_token_becomes_a_principal(hs_verifier: JwtVerifier) -> None:
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")

    principal = hs_verifier.authenticate(token)

    assert (principal.tenant, principal.user) == ("acme", "ana")
    assert principal.scopes == REVIEWER_SCOPES


def test_a_valid_rs256_token_is_accepted_with_a_pem_key(
    rs_verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(_claims(), rsa_key, algorithm="RS256")

    assert rs_verifier.authenticate(token).user == "ana"


def test_a_valid_rs256_token_is_accepted_with_a_jwks_file(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = JwtVerifier(
        JwtConfig(jwks_file=_jwks_file(tmp_path, rsa_key), issuer=ISSUER, audience=AUDIENCE)
    )
    token = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})

    assert verifier.authenticate(token).tenant == "acme"


def test_jwks_refuses_an_unknown_kid_and_the_wrong_key(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = JwtVerifier(JwtConfig(jwks_file=_jwks_file(tmp_path, rsa_key)))
    claims = _claims(aud=None, iss=None)

    with pytest.raises(JwtError, match="no key with kid 'k9'"):
        verifier.verify(jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "k9"}))
    with pytest.raises(JwtError) as wrong_key:
        verifier.verify(jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "k0"}))
    assert wrong_key.value.code == "invalid_token"
    # The symmetric key in the set is ignored: an HS256 token "signed" with it is refused.
    forged = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k2"})
    with pytest.raises(JwtError) as confused:
        verifier.verify(forged)
    assert confused.value.code == "unsupported_algorithm"


def test_a_jwks_key_declaring_its_algorithm_refuses_another(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = _jwks_file(tmp_path, rsa_key, alg="RS256")
    verifier = JwtVerifier(JwtConfig(jwks_file=path, algorithms=("RS256", "PS256")))
    token = jwt.encode(
        _claims(aud=None, iss=None), rsa_key, algorithm="PS256", headers={"kid": "k1"}
    )

    with pytest.raises(JwtError) as caught:
        verifier.verify(token)

    assert caught.value.code == "unsupported_algorithm"


def test_a_forged_signature_is_refused(hs_verifier: JwtVerifier) -> None:
    token = jwt.encode(_claims(), "x" * 40, algorithm="HS256")

    with pytest.raises(JwtError) as caught:
        hs_verifier.verify(token)

    assert caught.value.code == "invalid_token"


def test_a_tampered_payload_is_refused(rs_verifier: JwtVerifier, rsa_key) -> None:  # type: ignore[no-untyped-def]
    header, _, signature = jwt.encode(_claims(), rsa_key, algorithm="RS256").split(".")
    payload = _b64(json.dumps(_claims(tenant="globex")).encode())

    with pytest.raises(JwtError) as caught:
        rs_verifier.verify(f"{header}.{payload}.{signature}")

    assert caught.value.code == "invalid_token"


def test_an_expired_token_is_refused(hs_verifier: JwtVerifier) -> None:
    token = jwt.encode(_claims(exp=int(time.time()) - 3600), SECRET, algorithm="HS256")

    with pytest.raises(JwtError) as caught:
        hs_verifier.verify(token)

    assert caught.value.code == "token_expired"
    assert "get a new one" in caught.value.message


def test_a_token_without_exp_is_refused(hs_verifier: JwtVerifier) -> None:
    claims = _claims()
    del claims["exp"]

    with pytest.raises(JwtError) as caught:
        hs_verifier.verify(jwt.encode(claims, SECRET, algorithm="HS256"))

    assert caught.value.code == "missing_claim"
    assert "'exp'" in caught.value.message


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        (_claims(aud="someone-else"), "invalid_audience"),
        (_claims(aud=None), "missing_claim"),
        (_claims(iss="https://evil.example"), "invalid_issuer"),
        (_claims(iss=None), "missing_claim"),
        (_claims(nbf=int(time.time()) + 3600), "invalid_token"),
    ],
)
def test_audience_issuer_and_not_before_are_enforced(
    hs_verifier: JwtVerifier, claims: dict[str, Any], code: str
) -> None:
    with pytest.raises(JwtError) as caught:
        hs_verifier.verify(jwt.encode(claims, SECRET, algorithm="HS256"))

    assert caught.value.code == code


def test_a_token_with_an_audience_is_refused_when_none_is_configured() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET))

    with pytest.raises(JwtError) as caught:
        verifier.verify(jwt.encode(_claims(), SECRET, algorithm="HS256"))

    assert caught.value.code == "invalid_audience"
    assert "RELAYGRAPH_JWT_AUDIENCE" in caught.value.message


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(hs_verifier: JwtVerifier, rs_verifier: JwtVerifier, alg: str) -> None:
    token = _unsigned({"alg": alg, "typ": "JWT"}, _claims()) + "."

    for verifier in (hs_verifier, rs_verifier):
        with pytest.raises(JwtError) as caught:
            verifier.verify(token)
        assert caught.value.code == "unsupported_algorithm"


def test_hs256_signed_with_the_rsa_public_key_is_refused(
    rs_verifier: JwtVerifier, public_pem: bytes
) -> None:
    # The classic key-confusion forgery: HMAC with the (public) PEM bytes as the secret.
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT"}, _claims())
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(signature)}"

    with pytest.raises(JwtError) as caught:
        rs_verifier.verify(token)

    assert caught.value.code == "unsupported_algorithm"
    assert "RS256" in caught.value.message


def test_an_rs256_token_is_refused_by_an_hs256_server(
    hs_verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(JwtError) as caught:
        hs_verifier.verify(jwt.encode(_claims(), rsa_key, algorithm="RS256"))

    assert caught.value.code == "unsupported_algorithm"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "Bearer x"])
def test_garbage_is_refused(hs_verifier: JwtVerifier, token: str) -> None:
    with pytest.raises(JwtError) as caught:
        hs_verifier.verify(token)

    assert caught.value.code in {"invalid_token", "unsupported_algorithm"}


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["user"], USER_SCOPES),
        ("user reviewer", REVIEWER_SCOPES),
        (["offline_access", "reviewer", 7], REVIEWER_SCOPES),
        (None, frozenset()),
    ],
)
def test_roles_claim_as_list_or_string(
    hs_verifier: JwtVerifier, roles: Any, expected: frozenset[str]
) -> None:
    token = jwt.encode(_claims(roles=roles), SECRET, algorithm="HS256")

    assert hs_verifier.authenticate(token).scopes == expected


def test_claim_names_are_configurable_and_may_be_nested() -> None:
    verifier = JwtVerifier(
        JwtConfig(secret=SECRET, tenant_claim="https://example.com/org", roles_claim="realm.roles")
    )
    claims = _claims(aud=None, tenant=None, roles=None)
    claims["https://example.com/org"] = "acme"
    claims["realm"] = {"roles": ["admin"]}

    principal = verifier.authenticate(jwt.encode(claims, SECRET, algorithm="HS256"))

    assert principal.tenant == "acme"
    assert principal.roles == {"admin"}


@pytest.mark.parametrize("tenant", [None, "", 42])
def test_a_token_without_a_tenant_is_refused(hs_verifier: JwtVerifier, tenant: Any) -> None:
    token = jwt.encode(_claims(tenant=tenant), SECRET, algorithm="HS256")

    with pytest.raises(JwtError) as caught:
        hs_verifier.authenticate(token)

    assert caught.value.code == "missing_claim"
    assert "RELAYGRAPH_JWT_TENANT_CLAIM" in caught.value.message


def test_a_token_without_sub_is_refused(hs_verifier: JwtVerifier) -> None:
    claims = _claims()
    del claims["sub"]

    with pytest.raises(JwtError) as caught:
        hs_verifier.authenticate(jwt.encode(claims, SECRET, algorithm="HS256"))

    assert caught.value.code == "missing_claim"


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (JwtConfig(), "exactly one"),
        (JwtConfig(secret=SECRET, jwks_file=Path("x.json")), "exactly one"),
        (JwtConfig(secret="short"), "at least 32 bytes"),
        (JwtConfig(secret=SECRET, algorithms=("RS256",)), "cannot be used with jwt_secret"),
        (JwtConfig(secret=SECRET, algorithms=("none",)), "cannot be used"),
        (JwtConfig(public_key_file=Path("/nonexistent.pem")), "cannot be read"),
    ],
)
def test_unusable_configuration_is_refused_at_start(config: JwtConfig, needle: str) -> None:
    with pytest.raises(JwtConfigError, match=needle):
        JwtVerifier(config)


def test_hs_algorithms_with_a_public_key_are_refused(tmp_path: Path, public_pem: bytes) -> None:
    path = tmp_path / "public.pem"
    path.write_bytes(public_pem)

    with pytest.raises(JwtConfigError, match="HS256"):
        JwtVerifier(JwtConfig(public_key_file=path, algorithms=("RS256", "HS256")))


def test_malformed_key_files_are_refused(tmp_path: Path) -> None:
    pem = tmp_path / "bad.pem"
    pem.write_text("not a key")
    jwks = tmp_path / "bad.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))

    with pytest.raises(JwtConfigError, match="BEGIN PUBLIC KEY"):
        JwtVerifier(JwtConfig(public_key_file=pem))
    with pytest.raises(JwtConfigError, match="no signing key"):
        JwtVerifier(JwtConfig(jwks_file=jwks))
