"""Authentication and rate limits at the HTTP edge: API keys, bearer JWTs, the public
endpoints, and 429s, against a real server."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi.routing import APIRoute

from api.app import create_app
from identity.apikeys import parse_api_key, revoke_api_key
from runtime.settings import Settings
from store import Database
from tests.api.conftest import ApiServer, running_server

SECRET = "test-secret-" + "x" * 60
AUDIENCE = "relaygraph-tests"
ISSUER = "https://idp.test"
PUBLIC = {("GET", "/ok"), ("GET", "/info")}


def assert_unauthorized(answer: httpx.Response, code: str | None = None) -> None:
    assert answer.status_code == 401, answer.text
    body = answer.json()
    assert set(body) == {"error", "message"}
    assert body["message"]
    if code is not None:
        assert body["error"] == code
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="relaygraph"')
    assert "Traceback" not in answer.text


def _running(root: Path, **overrides: Any) -> AbstractContextManager[ApiServer]:
    """A server without run workers for the module's read-only tests (one start, not one
    per test; ``serve`` is for tests that change keys or need fresh rate-limit counters)."""
    return running_server(root / "data", workers=0, **overrides)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with _running(tmp_path_factory.mktemp("auth")) as running:
        yield running


async def test_missing_credentials(server: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.post("/threads/search", json={})
    assert_unauthorized(answer, "missing_credentials")
    assert "error=" not in answer.headers["WWW-Authenticate"]  # RFC 6750: no token, no error
    assert "x-api-key" in answer.json()["message"]


def _forged_secret(key: str) -> str:
    key_id, secret = parse_api_key(key)
    return f"rg_{key_id}_{'A' * 43 if secret != 'A' * 43 else 'B' * 43}"


BAD_CREDENTIALS: list[tuple[str, Callable[[str], dict[str, str]], str]] = [
    ("forged secret", lambda key: {"x-api-key": _forged_secret(key)}, "invalid_api_key"),
    (
        "forged secret as bearer",
        lambda key: {"Authorization": f"Bearer {_forged_secret(key)}"},
        "invalid_api_key",
    ),
    ("unknown key id", lambda key: {"x-api-key": f"rg_{'0' * 16}_{'A' * 43}"}, "invalid_api_key"),
    ("malformed key", lambda key: {"x-api-key": key[:-5]}, "malformed_api_key"),
    ("not our key", lambda key: {"x-api-key": "sk-not-a-relaygraph-key"}, "malformed_api_key"),
    ("basic auth", lambda key: {"Authorization": "Basic YWxpY2U6cGFzcw=="}, "unsupported_scheme"),
    ("empty bearer", lambda key: {"Authorization": "Bearer"}, "unsupported_scheme"),
    ("jwt without jwt settings", lambda key: {"Authorization": "Bearer a.b.c"}, "invalid_token"),
]


@pytest.mark.parametrize(
    ("headers_for", "code"),
    [pytest.param(make, code, id=name) for name, make, code in BAD_CREDENTIALS],
)
async def test_bad_credentials(
    server: ApiServer, headers_for: Callable[[str], dict[str, str]], code: str
) -> None:
    headers = headers_for(server.keys["alice"])
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.post("/threads/search", json={}, headers=headers)
    assert_unauthorized(answer, code)
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    _, real_secret = parse_api_key(server.keys["alice"])
    assert real_secret not in answer.text
    for value in headers.values():
        secret = value.removeprefix("Bearer ").rpartition("_")[2]
        if len(secret) > 8:
            assert secret not in answer.text, "the answer echoes the presented secret"


async def test_revoked_key(serve: Callable[..., ApiServer]) -> None:
    server = serve(turns=[], workers=0)
    headers = server.headers("alice")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        assert (await client.post("/threads/count", json={}, headers=headers)).status_code == 200
        db = Database(server.settings.store_url)
        try:
            key_id, _ = parse_api_key(server.keys["alice"])
            await revoke_api_key(db=db, key_id=key_id)
        finally:
            await db.dispose()
        answer = await client.post("/threads/count", json={}, headers=headers)
        assert_unauthorized(answer, "revoked_api_key")
        # The other keys of the tenant keep working.
        other = await client.post("/threads/count", json={}, headers=server.headers("rita"))
        assert other.status_code == 200, other.text


# --- bearer JWTs ------------------------------------------------------------------------------


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "jay",
        "tenant": "a",
        "roles": ["user"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 600,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _token(secret: str = SECRET, algorithm: str = "HS256", **overrides: Any) -> str:
    return jwt.encode(_claims(**overrides), secret, algorithm=algorithm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _alg_none() -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(_claims()).encode())}."


def _tampered() -> str:
    header, _, signature = _token().split(".")
    payload = _b64(json.dumps(_claims(tenant="b")).encode())
    return f"{header}.{payload}.{signature}"


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("jwt")
    with _running(root, jwt_secret=SECRET, jwt_audience=AUDIENCE, jwt_issuer=ISSUER) as running:
        yield running


async def test_jwt_is_accepted_and_maps_to_a_principal(jwt_server: ApiServer) -> None:
    bearer = {"Authorization": f"Bearer {_token()}"}
    async with httpx.AsyncClient(base_url=jwt_server.base_url) as client:
        created = await client.post("/threads", json={}, headers=bearer)
        assert created.status_code == 200, created.text
        thread_id = created.json()["thread_id"]
        assert (await client.get(f"/threads/{thread_id}", headers=bearer)).status_code == 200
        # jay is a user of tenant a: the tenant's admin sees the thread, others do not.
        seen = {
            who: (await client.get(f"/threads/{thread_id}", headers=jwt_server.headers(who)))
            for who in ("ada", "alice", "bob")
        }
        # API keys still work on a server that accepts JWTs.
        count = await client.post("/threads/count", json={}, headers=jwt_server.headers("ada"))
    assert {who: answer.status_code for who, answer in seen.items()} == {
        "ada": 200,
        "alice": 404,
        "bob": 404,
    }
    assert count.json() == 1


BAD_TOKENS: list[tuple[str, Callable[[], str], str]] = [
    ("expired", lambda: _token(exp=int(time.time()) - 3600), "token_expired"),
    ("wrong audience", lambda: _token(aud="someone-else"), "invalid_audience"),
    ("no audience", lambda: _token(aud=None), "missing_claim"),
    ("wrong issuer", lambda: _token(iss="https://evil.test"), "invalid_issuer"),
    ("no expiry", lambda: _token(exp=None), "missing_claim"),
    ("no tenant", lambda: _token(tenant=None), "missing_claim"),
    ("alg none", _alg_none, "unsupported_algorithm"),
    ("wrong secret", lambda: _token(secret="another-secret-" + "y" * 60), "invalid_token"),
    ("HS512", lambda: _token(algorithm="HS512"), "unsupported_algorithm"),
    ("tampered payload", _tampered, "invalid_token"),
    ("garbage", lambda: "not.a.jwt", "invalid_token"),
]


@pytest.mark.parametrize(
    ("make", "code"), [pytest.param(make, code, id=name) for name, make, code in BAD_TOKENS]
)
async def test_bad_jwt(jwt_server: ApiServer, make: Callable[[], str], code: str) -> None:
    async with httpx.AsyncClient(base_url=jwt_server.base_url) as client:
        answer = await client.post(
            "/threads/search", json={}, headers={"Authorization": f"Bearer {make()}"}
        )
    assert_unauthorized(answer, code)
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


# --- what needs a key -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ok", "/info", "/docs", "/openapi.json"])
async def test_public_endpoints_need_no_key(server: ApiServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    if path == "/ok":
        assert answer.json() == {"ok": True}
    elif path == "/info":
        assert "version" in answer.json()
    elif path == "/docs":
        assert "text/html" in answer.headers["content-type"]
    else:
        assert answer.json()["paths"]


def _routes(spec: dict[str, Any], tmp_path: Path) -> set[tuple[str, str]]:
    """Every (method, path) of the API: the OpenAPI paths plus routes hidden from them."""
    routes = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in spec["paths"].items()
        for method in operations
    }
    app = create_app(Settings(data_dir=tmp_path / "unused"), workers=0)
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path.startswith("/api/v1/"):
            for method in route.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    routes.add((method, route.path.removeprefix("/api/v1")))
    return routes


async def test_every_other_endpoint_requires_authentication(
    server: ApiServer, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        spec = (await client.get("/openapi.json")).json()
        routes = _routes(spec, tmp_path)
        assert PUBLIC <= routes
        assert len(routes) > 30, sorted(routes)  # the threads, runs and assistants API
        checked = []
        for method, path in sorted(routes - PUBLIC):
            concrete = re.sub(r"\{[^}]+\}", "dummy", path)
            body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
            answer = await client.request(method, concrete, json=body)
            assert answer.status_code == 401, f"{method} {path} answered {answer.status_code}"
            assert set(answer.json()) == {"error", "message"}
            checked.append((method, path))
    assert ("POST", "/threads/{thread_id}/runs/stream") in checked


# --- rate limits ------------------------------------------------------------------------------


async def test_rate_limit_per_key(serve: Callable[..., ApiServer]) -> None:
    server = serve(turns=[], rate_limit_per_key="5/minute", rate_limit_per_tenant="")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        statuses = [
            (await client.post("/threads/count", json={}, headers=server.headers("alice")))
            for _ in range(6)
        ]
        assert [answer.status_code for answer in statuses] == [200] * 5 + [429]
        refused = statuses[-1]
        assert refused.json()["error"] == "rate_limited"
        assert "5 per 1 minute" in refused.json()["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # Another key of the same tenant has its own allowance; public paths have none.
        assert (
            await client.post("/threads/count", json={}, headers=server.headers("rita"))
        ).status_code == 200
        assert (await client.get("/ok")).status_code == 200

        burst = await asyncio.gather(
            *(
                client.post("/threads/count", json={}, headers=server.headers("bob"))
                for _ in range(20)
            )
        )
    assert sorted(answer.status_code for answer in burst) == [200] * 5 + [429] * 15
    assert all("Retry-After" in answer.headers for answer in burst if answer.status_code == 429)


async def test_rate_limit_per_tenant(serve: Callable[..., ApiServer]) -> None:
    server = serve(turns=[], rate_limit_per_key="", rate_limit_per_tenant="4/minute")
    async with httpx.AsyncClient(base_url=server.base_url) as client:

        async def status(who: str) -> int:
            answer = await client.post("/threads/count", json={}, headers=server.headers(who))
            return answer.status_code

        tenant_a = [await status(who) for who in ("alice", "alice", "rita", "rita", "ada")]
        other_tenant = await status("bob")
        refused = await client.post("/threads/count", json={}, headers=server.headers("alice"))
    assert tenant_a == [200, 200, 200, 200, 429]
    assert other_tenant == 200
    assert refused.status_code == 429 and "tenant" in refused.json()["message"]
    assert int(refused.headers["Retry-After"]) >= 1
