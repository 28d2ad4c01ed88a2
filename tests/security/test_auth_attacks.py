"""Authentication attacks end to end, on the API (/api/v1) and the MCP endpoint (/mcp) of
one server that verifies RS256 JWTs: forged, expired, wrong audience or issuer,
``alg=none`` and HS/RS key confusion are all 401; API keys are hashed at rest and
compared in constant time; rate limits hold under a concurrent burst on /mcp.
(HS256 variants over the API: tests/api/test_auth.py; unit cases: tests/identity.)"""

from __future__ import annotations

import ast
import asyncio
import base64
import hashlib
import hmac
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.mcp_server.conftest import INIT, JSON_HEADERS, McpServer

pytestmark = pytest.mark.security

ISSUER = "https://issuer.test"
API_AUDIENCE = "https://api.test"
MCP_AUDIENCE = "https://mcp.test/mcp"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    def __init__(self, tmp: Path) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_file = tmp / "jwt-public.pem"
        self.public_file.write_bytes(self.public_pem)

    def claims(self, audience: str, **overrides: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "sub": "jay",
            "tenant": "a",
            "roles": ["user"],
            "iss": ISSUER,
            "aud": audience,
            "exp": int(time.time()) + 600,
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def token(self, audience: str, key: Any = None, algorithm: str = "RS256", **claims: Any) -> str:
        return jwt.encode(self.claims(audience, **claims), key or self.private, algorithm=algorithm)

    def attacks(self, audience: str, other_audience: str) -> dict[str, str]:
        claims = self.claims(audience)
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims).encode())
        confused = hmac.new(self.public_pem, f"{header}.{payload}".encode(), hashlib.sha256)
        valid = self.token(audience)
        head, _, signature = valid.split(".")
        raised = _b64(json.dumps({**claims, "roles": ["admin"], "tenant": "b"}).encode())
        return {
            "forged (another key)": self.token(audience, key=self.stranger),
            "tampered payload": f"{head}.{raised}.{signature}",
            "expired": self.token(audience, exp=int(time.time()) - 3600),
            "not yet valid": self.token(audience, nbf=int(time.time()) + 3600),
            "no expiry": self.token(audience, exp=None),
            "wrong audience": self.token(other_audience),
            "no audience": self.token(audience, aud=None),
            "wrong issuer": self.token(audience, iss="https://evil.test"),
            "alg none": f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}.",
            "alg None": f"{_b64(json.dumps({'alg': 'None'}).encode())}.{payload}.",
            "HS256 with the RS public key": f"{header}.{payload}.{_b64(confused.digest())}",
            "empty signature": f"{head}.{payload}.",
            "garbage": "eyJhbGciOiJSUzI1NiJ9.e30.AAAA",
        }


@pytest.fixture
def setup(mcp_http: Callable[..., McpServer], tmp_path: Path) -> tuple[McpServer, Keys]:
    keys = Keys(tmp_path)
    server = mcp_http(
        jwt_public_key_file=keys.public_file,
        jwt_issuer=ISSUER,
        jwt_audience=API_AUDIENCE,
        mcp_jwt_audience=MCP_AUDIENCE,
    )
    return server, keys


def _api(server: McpServer, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.base}/api/v1/threads/search",
        json={},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def _mcp(server: McpServer, token: str) -> httpx.Response:
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {token}"}
    return httpx.post(server.url, json=INIT, headers=headers, timeout=30)


def test_valid_tokens_are_accepted_for_their_own_audience(setup: tuple[McpServer, Keys]) -> None:
    server, keys = setup
    assert _api(server, keys.token(API_AUDIENCE)).status_code == 200
    assert _mcp(server, keys.token(MCP_AUDIENCE)).status_code == 200
    # A token for one audience is never accepted by the other (no token passthrough).
    assert _api(server, keys.token(MCP_AUDIENCE)).status_code == 401
    assert _mcp(server, keys.token(API_AUDIENCE)).status_code == 401


def test_every_attack_is_refused_on_both_doors(setup: tuple[McpServer, Keys]) -> None:
    server, keys = setup
    accepted: list[str] = []
    for name, token in keys.attacks(API_AUDIENCE, MCP_AUDIENCE).items():
        answer = _api(server, token)
        if answer.status_code != 401:
            accepted.append(f"api {name}: {answer.status_code}")
        else:
            assert set(answer.json()) == {"error", "message"}
            assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    for name, token in keys.attacks(MCP_AUDIENCE, API_AUDIENCE).items():
        answer = _mcp(server, token)
        if answer.status_code != 401:
            accepted.append(f"mcp {name}: {answer.status_code}")
        else:
            challenge = answer.headers["WWW-Authenticate"]
            assert 'error="invalid_token"' in challenge and "resource_metadata=" in challenge
            assert "mcp-session-id" not in answer.headers
    assert accepted == []


async def test_mcp_rate_limit_holds_under_a_concurrent_burst(
    mcp_http: Callable[..., McpServer],
) -> None:
    server = mcp_http(rate_limit_per_key="5/minute", rate_limit_per_tenant="")
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {server.keys['alice']}"}
    async with httpx.AsyncClient(timeout=30) as client:
        burst = await asyncio.gather(
            *(client.post(server.url, json=INIT, headers=headers) for _ in range(20))
        )
        other_key = await client.post(
            server.url,
            json=INIT,
            headers={**headers, "Authorization": f"Bearer {server.keys['bob']}"},
        )
    assert sorted(answer.status_code for answer in burst) == [200] * 5 + [429] * 15
    for answer in burst:
        if answer.status_code == 429:
            assert answer.json()["error"] == "rate_limited"
            assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert other_key.status_code == 200


def test_api_keys_are_stored_hashed_and_compared_in_constant_time() -> None:
    """The verification path compares digests with hmac.compare_digest and never with
    ``==``; the stored column is a digest, looked up by key id (not by secret)."""
    from identity import apikeys

    source = inspect.getsource(apikeys.verify_api_key)
    tree = ast.parse(source.lstrip())
    compared = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
    ]
    assert compared, "verify_api_key must use hmac.compare_digest"
    assert any("key_hash" in ast.unparse(call) for call in compared)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
        ):
            text = ast.unparse(node)
            assert "hash" not in text and "secret" not in text, text
    digest = apikeys._hash_secret("k1", "s3cret")
    assert "s3cret" not in digest
    assert digest == "sha256:" + hashlib.sha256(b"k1:s3cret").hexdigest()
