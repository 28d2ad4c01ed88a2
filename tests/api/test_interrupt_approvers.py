"""Approver roles and four-eyes hold for graph interrupts as for MCP approvals: the
decider of a resume must be allowed by ``tools.approvals.ApprovalPolicy``; a refused
decider gets 403 and the thread keeps waiting, with nothing lost."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from graphs.interrupts import stamp_decider
from identity import Principal, local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import AuditEntry
from tests.api.test_roles import APPROVE, HELLO, TURNS
from tests.helpers import write_script


async def _paused(http: httpx.AsyncClient, server: Any) -> tuple[str, dict[str, Any]]:
    alice = server.headers("alice")
    tid = (await http.post("/threads", json={}, headers=alice)).json()["thread_id"]
    body = {"assistant_id": "agent", "input": HELLO}
    await http.post(f"/threads/{tid}/runs/wait", json=body, headers=alice)
    state = (await http.get(f"/threads/{tid}/state", headers=alice)).json()
    assert (await http.get(f"/threads/{tid}", headers=alice)).json()["status"] == "interrupted"
    return tid, state


async def _resume(http: httpx.AsyncClient, server: Any, tid: str, who: str) -> httpx.Response:
    return await http.post(
        f"/threads/{tid}/runs/wait",
        json={"assistant_id": "agent", "command": APPROVE},
        headers=server.headers(who),
    )


async def test_wrong_role_is_refused_and_the_thread_keeps_waiting(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(TURNS, approver_roles={"destructive": ["admin"]})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        tid, before = await _paused(http, server)
        runs_before = (await http.get(f"/threads/{tid}/runs", headers=server.headers("ada"))).json()

        refused = {who: await _resume(http, server, tid, who) for who in ("rita", "alice")}

        for who, answer in refused.items():
            assert answer.status_code == 403, (who, answer.text)
            body = answer.json()
            assert body["error"] == "forbidden"
            assert "notes_delete" in body["message"] and "roles that may: admin" in body["message"]
            assert "still waits" in body["message"]
        after = (await http.get(f"/threads/{tid}/state", headers=server.headers("alice"))).json()
        assert after["interrupts"] == before["interrupts"]
        assert after["values"] == before["values"]
        thread = (await http.get(f"/threads/{tid}", headers=server.headers("alice"))).json()
        assert thread["status"] == "interrupted"
        runs_after = (await http.get(f"/threads/{tid}/runs", headers=server.headers("ada"))).json()
        assert len(runs_after) == len(runs_before)  # no run row was written

        resumed = await _resume(http, server, tid, "ada")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["messages"][-1]["content"] == "done"
        thread = (await http.get(f"/threads/{tid}", headers=server.headers("alice"))).json()
        assert thread["status"] == "idle"


async def test_four_eyes_stops_the_requester_deciding_their_own_call(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(TURNS, four_eyes=True)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        tid, before = await _paused(http, server)

        own = await _resume(http, server, tid, "alice")
        assert own.status_code == 403
        assert "four-eyes" in own.json()["message"] and "'alice'" in own.json()["message"]
        after = (await http.get(f"/threads/{tid}/state", headers=server.headers("alice"))).json()
        assert after["interrupts"] == before["interrupts"]

        resumed = await _resume(http, server, tid, "rita")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["messages"][-1]["content"] == "done"


async def test_by_default_the_requester_confirms_their_own_call(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(TURNS)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        tid, _ = await _paused(http, server)
        resumed = await _resume(http, server, tid, "alice")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["messages"][-1]["content"] == "done"


async def test_the_gate_rechecks_stamped_deciders_and_keeps_waiting(
    tmp_path: Any, data_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path that skipped the runner's check still cannot slip a refused decision past
    the gate: it asks again, and the next allowed decider's answer is the one applied."""

    async def stamp_only(
        self: Runner, value: Any, pending: Any, thread: Any, decider: Principal
    ) -> Any:
        return stamp_decider(value, decider)

    monkeypatch.setattr(Runner, "_authorize_resume", stamp_only)
    settings = Settings(
        data_dir=data_dir,
        model=write_script(tmp_path / "script.json", TURNS),
        approver_roles={"destructive": ["admin"]},
    )
    alice = Principal.with_roles("default", "alice", ["user"])
    rita = Principal.with_roles("default", "rita", ["reviewer"])
    async with open_system(settings) as system:
        runner = Runner(system)
        first = await runner.run(RunRequest(principal=alice, input_text="tidy"))
        assert first.status == "interrupted"

        by_rita = await runner.run(
            RunRequest(principal=rita, thread_id=first.thread_id, decisions=APPROVE["resume"])
        )
        assert by_rita.status == "interrupted"
        description = by_rita.interrupt["action_requests"][0]["description"]
        assert "refused" in description and "roles that may: admin" in description

        by_admin = await runner.run(
            RunRequest(
                principal=local_principal(user="ada"),
                thread_id=first.thread_id,
                decisions=APPROVE["resume"],
            )
        )
        assert (by_admin.status, by_admin.final_message) == ("success", "done")
        async with system.db.session() as session:
            rows = (
                await session.execute(
                    select(AuditEntry.approver, AuditEntry.decision).where(
                        AuditEntry.event == "approval_decision", AuditEntry.via == "graph"
                    )
                )
            ).all()
        assert [tuple(row) for row in rows] == [("ada", "approved")]
