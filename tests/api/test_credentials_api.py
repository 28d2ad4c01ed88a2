"""/api/v1/admin/credentials: an admin stores the tenant's own provider key (never shown
again), and the tenant's runs then reach the provider with it while other tenants keep
the default key (checked at the local OpenAI stub)."""

from __future__ import annotations

from typing import Any

import httpx

OWN_KEY = "sk-tenant-a-own-key-1234567890"
DEFAULT_KEY = "sk-deployment-default-0000000"
WAIT = {"assistant_id": "agent", "input": {"messages": [{"type": "human", "content": "hi"}]}}


def test_admin_manages_the_tenant_key_and_runs_use_it(serve: Any, openai_stub: Any) -> None:
    server = serve(
        model="openai:gpt-4o-mini",
        openai_api_key=DEFAULT_KEY,
        openai_base_url=openai_stub.base_url,
        secret_key="an-api-test-secret-of-enough-length-000",
    )
    url = f"{server.base_url}/admin/credentials"

    def call(method: str, path: str = "", who: str = "ada", **kwargs: Any) -> httpx.Response:
        return httpx.request(method, url + path, headers=server.headers(who), **kwargs)

    assert call("GET").json() == []
    stored = call("PUT", "/openai", json={"api_key": OWN_KEY})
    assert stored.status_code == 200, stored.text
    assert OWN_KEY not in stored.text
    body = stored.json()
    assert (body["tenant"], body["provider"], body["key_hint"], body["created_by"]) == (
        "a",
        "openai",
        "…7890",
        "ada",
    )
    listed = call("GET")
    assert [c["provider"] for c in listed.json()] == ["openai"] and OWN_KEY not in listed.text
    assert call("GET", "/openai").json()["key_hint"] == "…7890"
    assert call("GET", "/google").status_code == 404

    # Only admins (keys:manage); other tenants see nothing; bad input is refused clearly.
    assert call("GET", who="alice").status_code == 403
    assert call("PUT", "/openai", who="alice", json={"api_key": "x" * 20}).status_code == 403
    assert call("GET", who="bob").status_code == 403
    unknown = call("PUT", "/anthropic", json={"api_key": "x" * 20})
    assert unknown.status_code == 422
    spaced = call("PUT", "/google", json={"api_key": "two words"})
    assert spaced.status_code == 422 and "without spaces inside" in spaced.json()["message"]

    # Tenant a's run carries its own key; tenant b's the deployment default.
    openai_stub.reply("answer for a")
    openai_stub.reply("answer for b")
    ran = httpx.post(f"{server.base_url}/runs/wait", json=WAIT, headers=server.headers("alice"))
    assert ran.status_code == 200, ran.text
    httpx.post(f"{server.base_url}/runs/wait", json=WAIT, headers=server.headers("bob"))
    sent = [h["authorization"] for h in openai_stub.request_headers]
    assert sent == [f"Bearer {OWN_KEY}", f"Bearer {DEFAULT_KEY}"]

    assert call("DELETE", "/openai").status_code == 204
    assert call("DELETE", "/openai").status_code == 404
    openai_stub.reply("default again")
    httpx.post(f"{server.base_url}/runs/wait", json=WAIT, headers=server.headers("alice"))
    assert openai_stub.request_headers[-1]["authorization"] == f"Bearer {DEFAULT_KEY}"
