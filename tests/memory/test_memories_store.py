"""``RelayStore``: LangGraph's BaseStore over SQL items with a Chroma index beside them,
used through the public ``aput``/``aget``/``asearch``/``alist_namespaces`` (``abatch``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from memory.store import STORE_NAMESPACE, RelayStore, StoreIndex
from memory.types import Scope
from runtime import store_items
from tests.memory.conftest import OpenVectors
from tests.memory.memory_helpers import WordHashEmbedder, open_memories

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)


async def test_base_store_operations_and_semantic_search(
    tmp_path: Path, open_vectors: OpenVectors
) -> None:
    async with open_memories(tmp_path, vectors=open_vectors) as env:
        index = StoreIndex(env.db, env.vectors.index(STORE_NAMESPACE), WordHashEmbedder())

        def store(tenant: str) -> RelayStore:
            return RelayStore(db=env.db, tenant=tenant, backend=store_items, index=index)

        acme, globex = store("acme"), store("globex")
        await acme.aput(("users", "u1"), "prefs", {"food": "likes spicy ramen", "lang": "da"})
        await acme.aput(("users", "u1"), "car", {"food": "drives an electric car"}, index=["food"])
        await acme.aput(("users", "u2"), "x", {"food": "spicy ramen too"}, index=False)
        await globex.aput(("users", "u1"), "prefs", {"food": "spicy ramen fan"})

        got = await acme.aget(("users", "u1"), "prefs")
        assert got is not None and got.value["lang"] == "da"
        assert await globex.aget(("users", "u1"), "car") is None

        hits = await acme.asearch(("users",), query="spicy ramen")
        assert (hits[0].namespace, hits[0].key) == (("users", "u1"), "prefs")
        assert all(h.score is not None for h in hits) and ("users", "u2") not in [
            h.namespace for h in hits
        ]
        listed = await acme.asearch(("users", "u2"))
        assert [h.key for h in listed] == ["x"] and listed[0].score is None
        assert await acme.alist_namespaces(prefix=("users",)) == [("users", "u1"), ("users", "u2")]
        assert await acme.alist_namespaces(max_depth=1) == [("users",)]

        await acme.adelete(("users", "u1"), "prefs")
        assert [h.key for h in await acme.asearch(("users",), query="spicy ramen")] == ["car"]
        assert env.vectors.index(STORE_NAMESPACE).count(Scope("acme")) == 1
        assert [h.key for h in await globex.asearch((), query="ramen")] == ["prefs"]
        with pytest.raises(NotImplementedError):
            acme.batch([])
