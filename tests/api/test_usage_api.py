"""GET /api/v1/usage: grouped totals; admins see their tenant, users only themselves."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from runtime.settings import Settings
from store import Database
from store.models import ProviderUsage

ROWS = [
    ("a", "alice", "openai:gpt-4o-mini", 100, 0.001, "deployment"),
    ("a", "alice", "google:gemini-2.5-flash", 50, 0.002, "tenant"),
    ("a", "ada", "openai:gpt-4o-mini", 10, 0.004, "deployment"),
    ("b", "bob", "openai:gpt-4o-mini", 7, 0.5, "deployment"),
]


async def _insert(settings: Settings) -> None:
    db = Database(settings.store_url)
    try:
        async with db.transaction() as session:
            for tenant, user, deployment, tokens, cost, paid_by in ROWS:
                session.add(
                    ProviderUsage(
                        tenant=tenant,
                        user=user,
                        alias="smart",
                        deployment=deployment,
                        assistant_id="agent",
                        input_tokens=tokens,
                        output_tokens=1,
                        cost_usd=cost,
                        paid_by=paid_by,
                    )
                )
    finally:
        await db.dispose()


def test_usage_is_grouped_and_scoped(serve: Any) -> None:
    server = serve([{"content": "hi"}])
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _insert(server.settings)).result()

    def get(who: str, **params: str) -> httpx.Response:
        return httpx.get(f"{server.base_url}/usage", params=params, headers=server.headers(who))

    mine = get("alice").json()
    assert mine["user"] == "alice"
    assert {g["group"]["model"]: g["input_tokens"] for g in mine["groups"]} == {
        "google:gemini-2.5-flash": 50,
        "openai:gpt-4o-mini": 100,
    }
    assert mine["total_cost_usd"] == 0.003
    assert mine["tenant_key_cost_usd"] == 0.002  # alice's Gemini call used acme's own key
    paid = get("ada", group_by="paid_by").json()["groups"]
    assert [(g["group"]["paid_by"], g["calls"], g["tenant_key_calls"]) for g in paid] == [
        ("deployment", 2, 0),
        ("tenant", 1, 1),
    ]

    tenant = get("ada", group_by="user").json()
    assert tenant["user"] is None
    assert [(g["group"]["user"], g["calls"]) for g in tenant["groups"]] == [
        ("ada", 1),
        ("alice", 2),
    ]
    by_day = get("ada", group_by="assistant,day").json()["groups"]
    assert len(by_day) == 1 and by_day[0]["calls"] == 3

    assert get("bob").json()["total_cost_usd"] == 0.5  # tenant b sees only its own
    refused = get("alice", user="ada")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    bad = get("alice", group_by="colour")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_group_by"
