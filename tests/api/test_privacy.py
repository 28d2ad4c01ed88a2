"""``/export``, ``/admin/erase``, ``/consent`` and ``/memories`` over a real server."""

from __future__ import annotations

from typing import Any

import httpx

EMAIL = "alice.anders@example.com"


async def _run(client: httpx.AsyncClient, text: str) -> str:
    thread = (await client.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": text}]}}
    answer = await client.post(f"/threads/{thread}/runs/wait", json=body)
    assert answer.status_code == 200, answer.text
    return str(thread)


def _client(server: Any, who: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, headers=server.headers(who), timeout=60)


async def test_export_erase_and_consent(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    async with (
        _client(server, "alice") as alice,
        _client(server, "ada") as ada,
        _client(server, "rita") as rita,
        _client(server, "bob") as bob,
    ):
        thread = await _run(alice, f"note my e-mail is {EMAIL}")
        await _run(bob, "note bob was here")

        own = await alice.get("/export")
        assert own.status_code == 200
        data = own.json()
        assert [t["thread_id"] for t in data["threads"]] == [thread]
        assert EMAIL in str(data["threads"][0]["values"]) and "bob was here" not in own.text
        assert (await rita.get("/export", params={"user": "alice"})).status_code == 403
        by_admin = await ada.get("/export", params={"user": "alice"})
        assert by_admin.status_code == 200 and by_admin.json()["subject"]["user"] == "alice"
        # An admin of tenant a cannot reach bob in tenant b: the export is simply empty.
        assert (await ada.get("/export", params={"user": "bob"})).json()["threads"] == []

        granted = await alice.post("/consent", json={"categories": ["special"]})
        assert granted.status_code == 201, granted.text
        basis_id = granted.json()["basis"]["id"]
        listed = (await alice.get("/consent")).json()
        assert [b["id"] for b in listed["bases"]] == [basis_id] and listed["held"] == []
        bad = await alice.post("/consent", json={"basis": "contract"})
        assert bad.status_code == 422 and bad.json()["error"] == "legal_basis_invalid"
        for_other = await alice.post("/consent", json={"user": "rita"})
        assert for_other.status_code == 403
        withdrawn = await alice.post(f"/consent/{basis_id}/withdraw")
        assert withdrawn.status_code == 200 and withdrawn.json()["basis"]["withdrawn_by"] == "alice"
        assert (await alice.post("/consent/nope/withdraw")).status_code == 404
        assert (await alice.get("/memories")).json() == []
        assert (await alice.delete("/memories/mem_missing")).status_code == 404

        assert (await alice.post("/admin/erase", json={"user": "alice"})).status_code == 403
        erased = await ada.post("/admin/erase", json={"user": "alice", "identifiers": [EMAIL]})
        assert erased.status_code == 200, erased.text
        report = erased.json()
        assert report["ok"], report
        assert (
            report["deleted"]["threads"] == 1 and "given#1" in report["verification"]["identifiers"]
        )
        assert EMAIL not in erased.text
        assert report["deleted"]["api_keys"] == 1
        assert (await alice.get("/export")).status_code == 401  # her key went with her
        assert (await ada.get(f"/threads/{thread}")).status_code == 404
        after = (await ada.get("/export", params={"user": "alice"})).json()
        # Only the audit chain remains (tamper evidence), its arguments and results erased.
        assert {name for name, n in after["counts"].items() if n} == {"audit"}
        assert all(entry["payload_erased"] and entry["args"] is None for entry in after["audit"])
        assert len((await bob.get("/export")).json()["threads"]) == 1
