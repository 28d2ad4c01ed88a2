"""Roles within a tenant: owners change their threads, reviewers only answer interrupts,
admins may do both."""

from __future__ import annotations

import httpx

from tests.helpers import call

TURNS = [
    {"content": "deleting", "tool_calls": [call("notes_delete", note_id=1)]},
    {"content": "done"},
] * 4
HELLO = {"messages": [{"role": "user", "content": "tidy"}]}
APPROVE = {"resume": {"decisions": [{"type": "approve"}]}}


async def test_reviewer_answers_interrupts_but_does_not_change_the_thread(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(TURNS)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice, rita, ada = (server.headers(who) for who in ("alice", "rita", "ada"))
        tid = (await http.post("/threads", json={}, headers=alice)).json()["thread_id"]
        body = {"assistant_id": "agent", "input": HELLO}
        await http.post(f"/threads/{tid}/runs/wait", json=body, headers=alice)
        assert (await http.get(f"/threads/{tid}", headers=rita)).json()["status"] == "interrupted"

        refused = [
            await http.post(f"/threads/{tid}/runs", json=body, headers=rita),
            await http.patch(f"/threads/{tid}", json={"metadata": {"x": 1}}, headers=rita),
            await http.delete(f"/threads/{tid}", headers=rita),
        ]
        assert [answer.status_code for answer in refused] == [403, 403, 403]
        assert all(answer.json()["error"] == "forbidden" for answer in refused)

        resumed = await http.post(
            f"/threads/{tid}/runs/wait",
            json={"assistant_id": "agent", "command": APPROVE},
            headers=rita,
        )
        assert resumed.status_code == 200
        assert resumed.json()["messages"][-1]["content"] == "done"
        # Not interrupted any more: a reviewer's state update is refused too.
        update = await http.post(
            f"/threads/{tid}/state", json={"values": None, "as_node": "__end__"}, headers=rita
        )
        assert update.status_code == 403

        patched = await http.patch(f"/threads/{tid}", json={"metadata": {"x": 1}}, headers=ada)
        assert patched.status_code == 200 and patched.json()["metadata"]["x"] == 1
        more = await http.post(f"/threads/{tid}/runs/wait", json=body, headers=ada)
        assert more.status_code == 200
        # Agent Inbox's "ignore": a reviewer ends an interrupted thread with a state update.
        ignored = await http.post(
            f"/threads/{tid}/state", json={"values": None, "as_node": "__end__"}, headers=rita
        )
        assert ignored.status_code == 200
        assert (await http.get(f"/threads/{tid}", headers=alice)).json()["status"] == "idle"
