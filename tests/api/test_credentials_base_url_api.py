"""/api/v1/admin/credentials for ``openai-compatible`` keys: stored per base URL (required
there, refused for openai/google with 422), listed with their URL (never the key), and a
tenant's run reaches a compatible server with the key stored for exactly that server's URL
(checked at two local OpenAI-compatible stubs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from providers.openai import PLACEHOLDER_API_KEY
from tests.stubs.openai_stub import OpenAIStub

KEY_A = "sk-tenant-a-for-server-a-1111"
KEY_B = "sk-tenant-a-for-server-b-2222"
WAIT = {"assistant_id": "agent", "input": {"messages": [{"type": "human", "content": "hi"}]}}


@pytest.fixture
def server_b() -> Iterator[OpenAIStub]:
    with OpenAIStub() as stub:
        yield stub


def test_compatible_keys_are_per_base_url_and_runs_use_only_their_servers(
    serve: Any, openai_stub: Any, server_b: OpenAIStub
) -> None:
    server_a = openai_stub
    server = serve(
        model=f"openai-compatible:local@{server_a.base_url}",
        secret_key="an-api-test-secret-of-enough-length-000",
    )
    url = f"{server.base_url}/admin/credentials"

    def call(method: str, path: str = "", **kwargs: Any) -> httpx.Response:
        return httpx.request(method, url + path, headers=server.headers("ada"), **kwargs)

    def run_key() -> str:
        ran = httpx.post(f"{server.base_url}/runs/wait", json=WAIT, headers=server.headers("alice"))
        assert ran.status_code == 200, ran.text
        return str(server_a.request_headers[-1]["authorization"]).removeprefix("Bearer ")

    # Validation: a compatible key needs its server; openai/google keys take none.
    missing = call("PUT", "/openai-compatible", json={"api_key": KEY_A})
    assert missing.status_code == 422 and missing.json()["error"] == "invalid_request"
    assert missing.json()["message"] == "base_url: Field required"
    for provider in ("openai", "google"):
        refused = call("PUT", f"/{provider}", json={"api_key": KEY_A, "base_url": "http://x/v1"})
        assert refused.status_code == 422 and "take no base URL" in refused.json()["message"]
        asked = call("GET", f"/{provider}", params={"base_url": "http://x/v1"})
        assert asked.status_code == 422 and asked.json()["error"] == "credential_error"
    for bad_url in ("ftp://x/v1", "http://user@x/v1", "http://x/v1?a=1", "http://x:70000/v1"):
        bad = call("PUT", "/openai-compatible", json={"api_key": KEY_A, "base_url": bad_url})
        assert bad.status_code == 422 and "http(s)://HOST[:PORT][/PATH]" in bad.json()["message"]
    assert call("GET", "/openai-compatible").status_code == 422
    schema = httpx.get(f"{server.base_url}/openapi.json").json()["components"]["schemas"]
    assert "pattern" in schema["CompatibleCredentialSet"]["properties"]["base_url"]
    assert schema["CredentialSet"]["additionalProperties"] is False
    assert call("GET").json() == []

    # A key for server B only: tenant a's run at server A gets no tenant key.
    stored = call(
        "PUT", "/openai-compatible", json={"api_key": KEY_B, "base_url": server_b.base_url + "/"}
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["base_url"] == server_b.base_url and KEY_B not in stored.text
    server_a.reply("no key for a")
    assert run_key() == PLACEHOLDER_API_KEY

    # Now one for A (another spelling of the same URL): A's runs carry it, not B's.
    upper = server_a.base_url.replace("http://", "HTTP://")
    assert (
        call("PUT", "/openai-compatible", json={"api_key": KEY_A, "base_url": upper}).status_code
        == 200
    )
    server_a.reply("with a's key")
    assert run_key() == KEY_A

    listed = call("GET")
    assert KEY_A not in listed.text and KEY_B not in listed.text
    assert sorted((c["base_url"], c["key_hint"], c["status"]) for c in listed.json()) == sorted(
        [(server_a.base_url, "…1111", "active"), (server_b.base_url, "…2222", "active")]
    )
    got = call("GET", "/openai-compatible", params={"base_url": upper + "/"})
    assert got.status_code == 200 and got.json()["key_hint"] == "…1111"
    absent = call("GET", "/openai-compatible", params={"base_url": "http://c.test/v1"})
    assert absent.status_code == 404 and "http://c.test/v1" in absent.json()["message"]

    # Deleting A's key: A's runs are back to the deployment's key (B's is never used).
    assert (
        call("DELETE", "/openai-compatible", params={"base_url": server_a.base_url}).status_code
        == 204
    )
    assert (
        call("DELETE", "/openai-compatible", params={"base_url": server_a.base_url}).status_code
        == 404
    )
    unscoped = call("DELETE", "/openai-compatible")
    assert unscoped.status_code == 404 and "unscoped" in unscoped.json()["message"]
    server_a.reply("default again")
    assert run_key() == PLACEHOLDER_API_KEY
    assert [c["base_url"] for c in call("GET").json()] == [server_b.base_url]
    assert server_b.requests == []
