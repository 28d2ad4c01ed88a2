"""api/routes/store.py and runtime/store_items.py through the official langgraph-sdk client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from store import Database
from store.models import StoreItem


def _client(server: Any, who: str = "alice") -> Any:
    return get_client(url=server.base_url, api_key=server.keys[who])


async def _row(server: Any, namespace: str, key: str, tenant: str = "a") -> StoreItem | None:
    db = Database(server.settings.store_url)
    try:
        async with db.session() as session:
            return await session.get(StoreItem, (tenant, namespace, key))
    finally:
        await db.dispose()


async def test_put_get_delete_round_trip(serve) -> None:  # type: ignore[no-untyped-def]
    client = _client(serve())
    await client.store.put_item(["users", "u1"], "prefs", {"theme": "dark", "tags": [1, 2]})

    item = await client.store.get_item(["users", "u1"], "prefs")
    assert item["namespace"] == ["users", "u1"] and item["key"] == "prefs"
    assert item["value"] == {"theme": "dark", "tags": [1, 2]}
    assert item["created_at"] == item["updated_at"]
    datetime.fromisoformat(item["created_at"])

    await client.store.delete_item(["users", "u1"], "prefs")
    with pytest.raises(NotFoundError, match="prefs"):
        await client.store.get_item(["users", "u1"], "prefs")
    await client.store.delete_item(["users", "u1"], "prefs")  # deleting again is a no-op


async def test_put_again_replaces_the_value_and_moves_updated_at(serve) -> None:  # type: ignore[no-untyped-def]
    client = _client(serve())
    await client.store.put_item(["users"], "k", {"v": 1, "old": True})
    first = await client.store.get_item(["users"], "k")
    await client.store.put_item(["users"], "k", {"v": 2})
    second = await client.store.get_item(["users"], "k")

    assert second["value"] == {"v": 2}
    assert second["created_at"] == first["created_at"]
    assert datetime.fromisoformat(second["updated_at"]) > datetime.fromisoformat(
        first["updated_at"]
    )
    assert len((await client.store.search_items(["users"]))["items"]) == 1


async def test_search_filters_on_exact_top_level_values(serve) -> None:  # type: ignore[no-untyped-def]
    client = _client(serve())
    await client.store.put_item(["docs"], "one", {"kind": "note", "n": 1})
    await client.store.put_item(["docs"], "two", {"kind": "note", "n": True})
    await client.store.put_item(["docs"], "three", {"kind": "todo", "n": 1})
    await client.store.put_item(["docs"], "four", {"kind": "note", "n": 1, "tags": ["x"]})

    found = await client.store.search_items(["docs"], filter={"kind": "note"})
    assert [item["key"] for item in found["items"]] == ["four", "two", "one"]  # newest first
    assert all(item["score"] is None for item in found["items"])
    numbered = await client.store.search_items(["docs"], filter={"kind": "note", "n": 1})
    assert [item["key"] for item in numbered["items"]] == ["four", "one"]  # true is not 1
    tagged = await client.store.search_items([], filter={"tags": ["x"]})
    assert [item["key"] for item in tagged["items"]] == ["four"]
    assert (await client.store.search_items(["docs"], filter={"missing": None}))["items"] == []

    page = await client.store.search_items(["docs"], filter={"kind": "note"}, limit=1, offset=1)
    assert [item["key"] for item in page["items"]] == ["two"]
    with pytest.raises(UnprocessableEntityError, match="exact matches"):
        await client.store.search_items(["docs"], filter={"n": {"$gt": 0}})


async def test_search_by_namespace_prefix_matches_whole_labels(serve) -> None:  # type: ignore[no-untyped-def]
    client = _client(serve())
    for namespace, key in [
        (["users", "u1"], "a"),
        (["users", "u1", "notes"], "b"),
        (["users", "u10"], "c"),
        (["users_x"], "d"),
        (["other"], "e"),
    ]:
        await client.store.put_item(namespace, key, {"key": key})

    under_u1 = await client.store.search_items(["users", "u1"])
    assert [item["key"] for item in under_u1["items"]] == ["b", "a"]
    under_users = await client.store.search_items(["users"], limit=10)
    assert sorted(item["key"] for item in under_users["items"]) == ["a", "b", "c"]
    assert (await client.store.search_items(["Users"]))["items"] == []  # case-sensitive
    everything = await client.store.search_items([], limit=2, offset=1)
    assert [item["key"] for item in everything["items"]] == ["d", "c"]


async def test_list_namespaces_with_prefix_suffix_and_max_depth(serve) -> None:  # type: ignore[no-untyped-def]
    client = _client(serve())
    for namespace in (["users", "u1", "notes"], ["users", "u1"], ["users", "u2", "notes"], ["x"]):
        await client.store.put_item(namespace, "k", {})

    listed = await client.store.list_namespaces()
    assert listed == {
        "namespaces": [["users", "u1"], ["users", "u1", "notes"], ["users", "u2", "notes"], ["x"]]
    }
    assert (await client.store.list_namespaces(max_depth=1))["namespaces"] == [["users"], ["x"]]
    shallow = await client.store.list_namespaces(prefix=["users"], max_depth=2)
    assert shallow["namespaces"] == [["users", "u1"], ["users", "u2"]]
    notes = await client.store.list_namespaces(suffix=["notes"])
    assert notes["namespaces"] == [["users", "u1", "notes"], ["users", "u2", "notes"]]
    wild = await client.store.list_namespaces(prefix=["users", "*", "notes"], limit=1, offset=1)
    assert wild["namespaces"] == [["users", "u2", "notes"]]


async def test_expired_items_are_absent_and_reads_refresh_the_ttl(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    client = _client(server)
    # A TTL of a few nanoseconds has passed by the time the put returns.
    await client.store.put_item(["cache"], "gone", {"v": 1}, ttl=1e-9)
    with pytest.raises(NotFoundError):
        await client.store.get_item(["cache"], "gone")
    assert (await client.store.search_items(["cache"]))["items"] == []
    assert (await client.store.list_namespaces())["namespaces"] == []
    await client.store.put_item(["cache"], "gone", {"v": 2})  # a new item, not an update
    revived = await client.store.get_item(["cache"], "gone")
    assert revived["value"] == {"v": 2} and revived["created_at"] == revived["updated_at"]

    await client.store.put_item(["cache"], "kept", {"v": 1}, ttl=60)
    before = await _row(server, "cache", "kept")
    assert before is not None and before.expires_at is not None
    await client.store.get_item(["cache"], "kept", refresh_ttl=False)
    unchanged = await _row(server, "cache", "kept")
    assert unchanged is not None and unchanged.expires_at == before.expires_at
    await client.store.get_item(["cache"], "kept")
    refreshed = await _row(server, "cache", "kept")
    assert refreshed is not None and refreshed.expires_at is not None
    assert refreshed.expires_at > before.expires_at


async def test_tenants_cannot_see_each_others_items(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    alice, bob, rita = _client(server, "alice"), _client(server, "bob"), _client(server, "rita")
    await alice.store.put_item(["shared"], "k", {"owner": "alice"})

    with pytest.raises(NotFoundError):
        await bob.store.get_item(["shared"], "k")
    assert (await bob.store.search_items([]))["items"] == []
    assert (await bob.store.list_namespaces())["namespaces"] == []
    await bob.store.delete_item(["shared"], "k")  # deletes nothing of alice's

    await bob.store.put_item(["shared"], "k", {"owner": "bob"})
    assert (await bob.store.get_item(["shared"], "k"))["value"] == {"owner": "bob"}
    assert (await alice.store.get_item(["shared"], "k"))["value"] == {"owner": "alice"}
    # The store belongs to the tenant, not the user: rita shares alice's tenant.
    assert (await rita.store.get_item(["shared"], "k"))["value"] == {"owner": "alice"}
    await bob.store.delete_item(["shared"], "k")
    assert (await alice.store.get_item(["shared"], "k"))["value"] == {"owner": "alice"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"namespace": ["a.b"], "key": "k", "value": {}}, "contains '.'"),
        ({"namespace": ["a", ""], "key": "k", "value": {}}, "empty"),
        ({"namespace": [], "key": "k", "value": {}}, "cannot be empty"),
        ({"namespace": ["langgraph"], "key": "k", "value": {}}, "reserved"),
        ({"namespace": ["a"], "key": "", "value": {}}, "key"),
        ({"namespace": ["a"], "key": "k", "value": {}, "ttl": 0}, "ttl"),
        ({"namespace": ["a"], "key": "k", "value": [1]}, "value"),
    ],
)
async def test_invalid_puts_are_refused(serve, body: dict[str, Any], message: str) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers("alice")) as http:
        response = await http.put("/store/items", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert message in response.json()["message"]


async def test_invalid_namespaces_on_reads_are_refused(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    client = _client(server)
    with pytest.raises(UnprocessableEntityError, match=r"contains '\.'"):
        await client.store.delete_item(["a.b"], "k")
    with pytest.raises(UnprocessableEntityError, match=r"contains '\.'"):
        await client.store.search_items(["a.b"])
    with pytest.raises(UnprocessableEntityError, match="empty"):
        await client.store.list_namespaces(prefix=[""])
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers("alice")) as http:
        response = await http.get("/store/items", params={"namespace": "a..b", "key": "k"})
    assert response.status_code == 422 and "empty" in response.json()["message"]


async def test_semantic_query_ranks_indexed_items_per_tenant(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    client, bob = _client(server), _client(server, "bob")
    await client.store.put_item(
        ["docs", "a"], "hi", {"text": "Hello there, nice to meet you"}, index=["text"]
    )
    await client.store.put_item(
        ["docs", "b"], "tax", {"text": "Quarterly VAT report", "n": 2}, index=["text"]
    )
    await client.store.put_item(
        ["docs"], "plain", {"text": "Good morning, welcome!"}
    )  # not indexed
    await bob.store.put_item(["docs"], "bob", {"text": "Hi, greetings from bob"}, index=True)

    found = (await client.store.search_items(["docs"], query="greetings and welcome"))["items"]
    assert [item["key"] for item in found] == ["hi", "tax"]
    assert found[0]["score"] > found[1]["score"] and found[0]["namespace"] == ["docs", "a"]
    assert [
        i["key"] for i in (await client.store.search_items(["docs", "b"], query="hello"))["items"]
    ] == ["tax"]
    filtered = await client.store.search_items(["docs"], query="hello", filter={"n": 2})
    assert [item["key"] for item in filtered["items"]] == ["tax"]

    await client.store.put_item(["docs", "a"], "hi", {"text": "now unindexed"}, index=False)
    await client.store.delete_item(["docs", "b"], "tax")
    assert (await client.store.search_items(["docs"], query="hello"))["items"] == []
    bobs = (await bob.store.search_items([], query="hello"))["items"]
    assert [item["key"] for item in bobs] == ["bob"]
