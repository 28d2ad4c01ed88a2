"""api/routes/approvals.py and api/routes/audit.py over real HTTP: reviewers decide
approvals of external calls; admins read and verify the audit chain."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from identity import Principal
from runtime.settings import Settings

MAIL = {"to": ["bob@example.org"], "subject": "hi", "body": "hello"}


def _ask_for_approval(settings: Settings) -> str:
    """Alice's external call of email_send, as an MCP client would make it."""

    async def ask() -> str:
        from store import Database
        from tools import BUILTIN_TOOLS, ToolExecutor, ToolPolicy, ToolRegistry

        db = Database(settings.store_url)
        try:
            executor = ToolExecutor(db, ToolPolicy(ToolRegistry(BUILTIN_TOOLS)))
            alice = Principal.with_roles("a", "alice", ["user"])
            outcome = await executor.call_external(alice, "email_send", MAIL)
            assert outcome.approval is not None
            return outcome.approval.approval_id
        finally:
            await db.dispose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, ask()).result()


async def test_reviewer_lists_and_decides_approvals_of_their_tenant(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    approval_id = _ask_for_approval(server.settings)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        rita, alice, bob = (server.headers(who) for who in ("rita", "alice", "bob"))

        listed = await http.get("/approvals", headers=rita)
        by_user = await http.get("/approvals", headers=alice)
        shown = await http.get(f"/approvals/{approval_id}", headers=rita)
        approved = await http.post(
            f"/approvals/{approval_id}/approve", json={"note": "fine"}, headers=rita
        )
        again = await http.post(f"/approvals/{approval_id}/reject", headers=rita)
        missing = await http.post("/approvals/apr_nope/approve", headers=rita)
        by_other_tenant = await http.get(f"/approvals/{approval_id}", headers=bob)

    assert listed.status_code == 200
    [item] = listed.json()["approvals"]
    assert (item["approval_id"], item["tool"], item["requester"]) == (
        approval_id,
        "email_send",
        "alice",
    )
    assert item["preview"]["would"] == "send an e-mail to bob@example.org"
    assert shown.json()["status"] == "pending"
    assert (by_user.status_code, by_user.json()["error"]) == (403, "forbidden")
    assert approved.status_code == 200
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", "rita")
    assert (again.status_code, again.json()["error"]) == (409, "approval_decided")
    assert (missing.status_code, missing.json()["error"]) == (404, "approval_not_found")
    assert by_other_tenant.status_code == 403  # bob is a user: no reviews:decide at all


async def test_admin_reads_and_verifies_the_audit_log(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    approval_id = _ask_for_approval(server.settings)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        rita, ada, alice = (server.headers(who) for who in ("rita", "ada", "alice"))
        await http.post(f"/approvals/{approval_id}/reject", json={"note": "spam"}, headers=rita)

        entries = await http.get("/audit", params={"payloads": "true"}, headers=ada)
        verified = await http.get("/audit/verify", headers=ada)
        by_user = await http.get("/audit", headers=alice)
        by_reviewer = await http.get("/audit", headers=rita)

    assert entries.status_code == 200
    rows: list[dict[str, Any]] = entries.json()["entries"]
    assert [row["event"] for row in rows] == ["approval_decision", "tool_call", "approval_request"]
    assert (rows[0]["approver"], rows[0]["decision"], rows[0]["result"]) == (
        "rita",
        "rejected",
        {"note": "spam"},
    )
    assert rows[1]["args"] == MAIL
    assert verified.json() == {"ok": True, "entries": 3, "erased_payloads": 0, "problems": []}
    assert (by_user.status_code, by_reviewer.status_code) == (403, 403)
