"""Tenant and ownership isolation across every thread, run and assistant endpoint.

One server (module scope) holds alice's thread paused at an approval interrupt, rita's
thread and ada's API-created assistant. Outsiders are bob (tenant b, user), bert
(tenant b, admin) and carol (tenant a, plain user, who may not see alice's threads).
Each must get a 404 (403 where a scope gates the endpoint first), an empty list or a
zero count, never data, and nothing they send may change alice's or ada's resources.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from identity.apikeys import create_api_key
from identity.types import scopes_for_roles
from runtime.settings import Settings
from store import Database, migrate
from store.models import Run, ToolCall
from tests.api.conftest import KEYS, ApiServer, _Running

PEOPLE = {
    **KEYS,
    "bert": ("b", "bert", ["admin"]),
    "carol": ("a", "carol", ["user"]),
}
OUTSIDERS = ("bob", "bert", "carol")
SECRET_TITLE = "isolation-secret-title"

# The model: "slow" sleeps in its worker thread; anything else creates a note, then asks
# to delete it (destructive: the run pauses for approval), then answers.
MODEL_SOURCE = f"""
import json
import time


def turn(messages):
    text = str([m for m in messages if m.type == "human"][-1].content)
    if text.startswith("slow"):
        time.sleep(1.0)
        return {{"content": "slow reply"}}
    index = sum(1 for m in messages if m.type == "ai")
    if index == 0:
        args = {{"title": "{SECRET_TITLE}", "body": "only alice may read this"}}
        return {{"content": "Saving.", "tool_calls": [{{"name": "notes_create", "args": args}}]}}
    if index == 1:
        created = [m for m in messages if m.type == "tool" and m.name == "notes_create"][-1]
        note_id = json.loads(created.content)["id"]
        call = {{"name": "notes_delete", "args": {{"note_id": note_id}}}}
        return {{"content": "Deleting.", "tool_calls": [call]}}
    return {{"content": "All done."}}
"""
APPROVE = {"decisions": [{"type": "approve"}]}


@dataclass
class World:
    server: ApiServer
    thread_id: str
    run_id: str
    checkpoint_id: str
    interrupt_id: str
    assistant_id: str
    rita_thread_id: str

    def ids(self) -> dict[str, str]:
        return {
            "tid": self.thread_id,
            "rid": self.run_id,
            "cid": self.checkpoint_id,
            "iid": self.interrupt_id,
            "aid": self.assistant_id,
        }


async def _create_keys(settings: Settings) -> dict[str, str]:
    migrate(settings.store_url)
    db = Database(settings.store_url)
    try:
        return {
            name: (await create_api_key(db=db, tenant=tenant, user=user, roles=roles)).key
            for name, (tenant, user, roles) in PEOPLE.items()
        }
    finally:
        await db.dispose()


def _paused_thread(client: httpx.Client, who: str, server: ApiServer) -> tuple[str, str]:
    """A thread of ``who`` whose run ended at the notes_delete approval interrupt."""
    headers = server.headers(who)
    thread = client.post("/threads", json={"metadata": {"owner_note": who}}, headers=headers)
    thread.raise_for_status()
    thread_id = thread.json()["thread_id"]
    run = client.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "agent", "input": {"messages": [{"type": "human", "content": "go"}]}},
        headers=headers,
    )
    run.raise_for_status()
    run_id = run.json()["run_id"]
    joined = client.get(f"/threads/{thread_id}/runs/{run_id}/join", headers=headers)
    joined.raise_for_status()
    assert joined.json()["__interrupt__"][0]["value"]["action_requests"][0]["name"] == (
        "notes_delete"
    )
    return thread_id, run_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("isolation")
    model = root / "model.py"
    model.write_text(MODEL_SOURCE, encoding="utf-8")
    settings = Settings(
        data_dir=root / "data",
        model=f"scripted:{model}:turn",
        rate_limit_per_key="",
        rate_limit_per_tenant="",
    )
    keys = asyncio.run(_create_keys(settings))
    running = _Running(settings, workers=2)
    running.start()
    server = ApiServer(f"http://127.0.0.1:{running.port}/api/v1", settings, keys)
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            thread_id, run_id = _paused_thread(client, "alice", server)
            state = client.get(f"/threads/{thread_id}/state", headers=server.headers("alice"))
            state.raise_for_status()
            assistant = client.post(
                "/assistants",
                json={"graph_id": "agent", "name": "ada-assistant", "metadata": {"team": "a"}},
                headers=server.headers("ada"),
            )
            assistant.raise_for_status()
            rita = client.post("/threads", json={}, headers=server.headers("rita"))
            rita.raise_for_status()
            yield World(
                server=server,
                thread_id=thread_id,
                run_id=run_id,
                checkpoint_id=state.json()["checkpoint"]["checkpoint_id"],
                interrupt_id=state.json()["interrupts"][0]["id"],
                assistant_id=assistant.json()["assistant_id"],
                rita_thread_id=rita.json()["thread_id"],
            )
    finally:
        running.stop()


def client_for(world: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=world.server.base_url, timeout=30)


@dataclass(frozen=True)
class Probe:
    """One endpoint as an outsider would call it; ``{tid}``-style fields are filled in."""

    name: str
    method: str
    path: str
    body: Any = None
    scope: str | None = None  # a scope checked before the lookup (403 without it)
    tenant_wide: bool = False  # visible to every user of the tenant (assistants)
    creates: bool = False  # on an unknown id this creates the thread (no 404 to compare)


INPUT = {"assistant_id": "agent", "input": {"messages": [{"type": "human", "content": "hi"}]}}
RESUME = {"assistant_id": "agent", "input": {}, "command": {"resume": APPROVE}}
PROBES = [
    Probe("get thread", "GET", "/threads/{tid}"),
    Probe("patch thread", "PATCH", "/threads/{tid}", {"metadata": {"pwned": True}}),
    Probe("delete thread", "DELETE", "/threads/{tid}"),
    Probe("get state", "GET", "/threads/{tid}/state"),
    Probe("get state at checkpoint", "GET", "/threads/{tid}/state/{cid}"),
    Probe(
        "post state checkpoint",
        "POST",
        "/threads/{tid}/state/checkpoint",
        {"checkpoint": {"checkpoint_id": "{cid}"}},
    ),
    Probe("update state", "POST", "/threads/{tid}/state", {"values": {"messages": []}}),
    Probe(
        "update state as end",
        "POST",
        "/threads/{tid}/state",
        {"values": None, "as_node": "__end__"},
    ),
    Probe("history", "POST", "/threads/{tid}/history", {"limit": 10}),
    Probe("history (GET)", "GET", "/threads/{tid}/history"),
    Probe("copy", "POST", "/threads/{tid}/copy"),
    Probe("list runs", "GET", "/threads/{tid}/runs"),
    Probe("get run", "GET", "/threads/{tid}/runs/{rid}"),
    Probe("join run", "GET", "/threads/{tid}/runs/{rid}/join"),
    Probe("rejoin stream", "GET", "/threads/{tid}/runs/{rid}/stream"),
    Probe("cancel run", "POST", "/threads/{tid}/runs/{rid}/cancel"),
    Probe("cancel run rollback", "POST", "/threads/{tid}/runs/{rid}/cancel?wait=1&action=rollback"),
    Probe("delete run", "DELETE", "/threads/{tid}/runs/{rid}"),
    Probe("give feedback", "POST", "/threads/{tid}/runs/{rid}/feedback", {"score": -1}),
    Probe("list feedback", "GET", "/threads/{tid}/runs/{rid}/feedback"),
    Probe("create run", "POST", "/threads/{tid}/runs", INPUT),
    Probe(
        "create run if_not_exists",
        "POST",
        "/threads/{tid}/runs",
        {**INPUT, "if_not_exists": "create"},
        creates=True,
    ),
    Probe("stream run", "POST", "/threads/{tid}/runs/stream", INPUT),
    Probe("wait run", "POST", "/threads/{tid}/runs/wait", INPUT),
    Probe("resume", "POST", "/threads/{tid}/runs", RESUME),
    Probe(
        "resume by interrupt id",
        "POST",
        "/threads/{tid}/runs",
        {**RESUME, "command": {"resume": {"{iid}": APPROVE}}},
    ),
    Probe("resume streamed", "POST", "/threads/{tid}/runs/stream", RESUME),
    Probe(
        "fork from checkpoint",
        "POST",
        "/threads/{tid}/runs/wait",
        {**INPUT, "checkpoint_id": "{cid}"},
    ),
    Probe("console trace", "GET", "/console/threads/{tid}/trace"),  # issue 8
    Probe("console preview", "GET", "/console/threads/{tid}/preview"),  # issue 8
    Probe("get assistant", "GET", "/assistants/{aid}", tenant_wide=True),
    Probe("assistant graph", "GET", "/assistants/{aid}/graph", tenant_wide=True),
    Probe("assistant schemas", "GET", "/assistants/{aid}/schemas", tenant_wide=True),
    Probe(
        "patch assistant",
        "PATCH",
        "/assistants/{aid}",
        {"name": "pwned"},
        scope="keys:manage",
        tenant_wide=True,
    ),
    Probe("delete assistant", "DELETE", "/assistants/{aid}", scope="keys:manage", tenant_wide=True),
    Probe(
        "stateless run with the assistant",
        "POST",
        "/runs/wait",
        {**INPUT, "assistant_id": "{aid}"},
        tenant_wide=True,
    ),
]


PLACEHOLDERS = {
    "{tid}": "{thread_id}",
    "{rid}": "{run_id}",
    "{cid}": "{checkpoint_id}",
    "{aid}": "{assistant_id}",
}


async def test_the_matrix_covers_every_endpoint_of_a_thread_or_assistant(world: World) -> None:
    """Each probe names a real route, and every route taking a thread or assistant id
    is probed (an endpoint added later fails here until it joins the matrix)."""
    async with client_for(world) as client:
        spec = (await client.get("/openapi.json")).json()
    routes = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in spec["paths"].items()
        for method in operations
    }
    probed = set()
    for probe in PROBES:
        path = probe.path.split("?")[0]
        for ours, theirs in PLACEHOLDERS.items():
            path = path.replace(ours, theirs)
        probed.add((probe.method, path))
    assert probed <= routes, f"probes of routes that do not exist: {probed - routes}"
    by_id = {route for route in routes if "{thread_id}" in route[1] or "{assistant_id}" in route[1]}
    assert by_id <= probed, f"endpoints missing from the matrix: {sorted(by_id - probed)}"


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {_fill(key, ids): _fill(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, ids) for item in value]
    return value


def _assert_no_leak(world: World, sent: str, text: str) -> None:
    """Nothing of alice's or ada's that the caller did not send may appear in ``text``."""
    secrets = [*world.ids().values(), world.rita_thread_id, SECRET_TITLE, "alice", "ada-assistant"]
    for secret in secrets:
        if secret not in sent:
            assert secret not in text, f"the answer leaks {secret!r}: {text[:500]}"


async def _assert_untouched(client: httpx.AsyncClient, world: World) -> None:
    """Alice's thread, run and interrupt and ada's assistant are as the fixture left them."""
    alice, ada = world.server.headers("alice"), world.server.headers("ada")
    thread = await client.get(f"/threads/{world.thread_id}", headers=alice)
    assert thread.status_code == 200, thread.text
    assert thread.json()["status"] == "interrupted"
    assert thread.json()["metadata"].get("owner_note") == "alice"
    assert "pwned" not in thread.json()["metadata"]
    state = await client.get(f"/threads/{world.thread_id}/state", headers=alice)
    assert [item["id"] for item in state.json()["interrupts"]] == [world.interrupt_id]
    assert state.json()["checkpoint"]["checkpoint_id"] == world.checkpoint_id
    runs = await client.get(f"/threads/{world.thread_id}/runs", headers=alice)
    assert [(run["run_id"], run["status"]) for run in runs.json()] == [(world.run_id, "success")]
    assistant = await client.get(f"/assistants/{world.assistant_id}", headers=ada)
    assert assistant.status_code == 200, assistant.text
    assert (assistant.json()["name"], assistant.json()["version"]) == ("ada-assistant", 1)


def _cases() -> list[Any]:
    cases = []
    for who in OUTSIDERS:
        for probe in PROBES:
            if probe.tenant_wide and PEOPLE[who][0] == "a":
                continue  # carol may use her tenant's assistants
            cases.append(pytest.param(who, probe, id=f"{who}-{probe.name}"))
    return cases


@pytest.mark.parametrize(("who", "probe"), _cases())
async def test_outsider_gets_not_found(world: World, who: str, probe: Probe) -> None:
    ids = world.ids()
    path = _fill(probe.path, ids)
    body = _fill(probe.body, ids)
    roles = PEOPLE[who][2]
    lacks_scope = probe.scope is not None and probe.scope not in scopes_for_roles(roles)
    async with client_for(world) as client:
        answer = await client.request(
            probe.method,
            path,
            json=body,
            headers=world.server.headers(who),
        )
        assert answer.status_code == (403 if lacks_scope else 404), answer.text
        assert set(answer.json()) == {"error", "message"}
        assert answer.json()["error"] == ("forbidden" if lacks_scope else "not_found")
        _assert_no_leak(world, path + json.dumps(body), answer.text)
        await _assert_untouched(client, world)
        if probe.creates:
            return
        # No existence oracle: the answer for alice's resource is the one for no resource.
        unknown = {key: str(uuid.uuid4()) for key in ids}
        nothing = await client.request(
            probe.method,
            _fill(probe.path, unknown),
            json=_fill(probe.body, unknown),
            headers=world.server.headers(who),
        )
        assert (nothing.status_code, nothing.json()["error"]) == (
            answer.status_code,
            answer.json()["error"],
        )


LISTS = [
    Probe("search all threads", "POST", "/threads/search", {"limit": 1000}),
    Probe("search threads by id", "POST", "/threads/search", {"ids": ["{tid}"]}),
    Probe(
        "search threads by metadata",
        "POST",
        "/threads/search",
        {"metadata": {"graph_id": "agent"}, "status": "interrupted"},
    ),
    Probe("count threads", "POST", "/threads/count", {}),
    Probe("count threads by id", "POST", "/threads/count", {"ids": ["{tid}"]}),
    Probe("search assistants", "POST", "/assistants/search", {"limit": 1000}, tenant_wide=True),
    Probe(
        "search assistants by metadata",
        "POST",
        "/assistants/search",
        {"metadata": {"team": "a"}},
        tenant_wide=True,
    ),
    Probe(
        "count assistants",
        "POST",
        "/assistants/count",
        {"metadata": {"team": "a"}},
        tenant_wide=True,
    ),
]


@pytest.mark.parametrize(
    ("who", "probe"),
    [
        pytest.param(who, probe, id=f"{who}-{probe.name}")
        for who in OUTSIDERS
        for probe in LISTS
        if not (probe.tenant_wide and PEOPLE[who][0] == "a")
    ],
)
async def test_outsider_lists_show_nothing(world: World, who: str, probe: Probe) -> None:
    body = _fill(probe.body, world.ids())
    async with client_for(world) as client:
        answer = await client.request(
            probe.method, probe.path, json=body, headers=world.server.headers(who)
        )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    if probe.path.endswith("/count"):
        assert found == 0
    else:
        assert isinstance(found, list)
        listed = {item.get("thread_id") or item.get("assistant_id") for item in found}
        assert not listed & {world.thread_id, world.rita_thread_id, world.assistant_id}
    _assert_no_leak(world, json.dumps(body), answer.text)


async def test_lists_do_show_the_owners_resources(world: World) -> None:
    """The list probes above could pass by listing nothing at all: they do list for alice."""
    server = world.server
    async with client_for(world) as client:
        threads = await client.post(
            "/threads/search", json={"ids": [world.thread_id]}, headers=server.headers("alice")
        )
        count = await client.post(
            "/threads/count", json={"ids": [world.thread_id]}, headers=server.headers("alice")
        )
        assistants = await client.post(
            "/assistants/count", json={"metadata": {"team": "a"}}, headers=server.headers("alice")
        )
    assert [thread["thread_id"] for thread in threads.json()] == [world.thread_id]
    assert (count.json(), assistants.json()) == (1, 1)


@pytest.mark.parametrize("who", ["bob", "bert"])
async def test_outsider_cannot_claim_the_thread_id(world: World, who: str) -> None:
    """Thread ids are global: creating one that another tenant holds must not hand it over."""
    async with client_for(world) as client:
        for if_exists in ("do_nothing", "raise"):
            answer = await client.post(
                "/threads",
                json={"thread_id": world.thread_id, "if_exists": if_exists},
                headers=world.server.headers(who),
            )
            assert answer.status_code in (404, 409), answer.text
            assert set(answer.json()) == {"error", "message"}
            _assert_no_leak(world, world.thread_id, answer.text)
        await _assert_untouched(client, world)


VISIBILITY = [
    # (viewer, owner of the thread, visible)
    ("alice", "alice", True),
    ("rita", "alice", True),
    ("ada", "alice", True),
    ("carol", "alice", False),
    ("bob", "alice", False),
    ("bert", "alice", False),
    ("rita", "rita", True),
    ("ada", "rita", True),
    ("alice", "rita", False),
    ("carol", "rita", False),
    ("bob", "rita", False),
]


@pytest.mark.parametrize(("viewer", "owner", "visible"), VISIBILITY)
async def test_who_sees_which_thread(world: World, viewer: str, owner: str, visible: bool) -> None:
    """Users see their own threads; reviewers and admins see all of their tenant's."""
    thread_id = world.thread_id if owner == "alice" else world.rita_thread_id
    headers = world.server.headers(viewer)
    async with client_for(world) as client:
        got = await client.get(f"/threads/{thread_id}", headers=headers)
        search = await client.post("/threads/search", json={"limit": 1000}, headers=headers)
        count = await client.post("/threads/count", json={"ids": [thread_id]}, headers=headers)
    assert got.status_code == (200 if visible else 404), got.text
    assert (thread_id in {t["thread_id"] for t in search.json()}) is visible
    assert count.json() == (1 if visible else 0)


async def _run_row(world: World, run_id: str) -> tuple[Run | None, list[ToolCall]]:
    db = Database(world.server.settings.store_url)
    try:
        async with db.session() as session:
            run = await session.get(Run, run_id)
            calls = list(
                (await session.execute(select(ToolCall).where(ToolCall.run_id == run_id))).scalars()
            )
        return run, calls
    finally:
        await db.dispose()


async def test_reviewer_resumes_a_users_interrupt_acting_as_the_user(world: World) -> None:
    server = world.server
    with httpx.Client(base_url=server.base_url, timeout=30) as sync_client:
        thread_id, _ = _paused_thread(sync_client, "alice", server)
    async with client_for(world) as client:
        for outsider in ("bob", "carol"):
            refused = await client.post(
                f"/threads/{thread_id}/runs", json=RESUME, headers=server.headers(outsider)
            )
            assert refused.status_code == 404, refused.text
        resumed = await client.post(
            f"/threads/{thread_id}/runs", json=RESUME, headers=server.headers("rita")
        )
        assert resumed.status_code == 200, resumed.text
        run_id = resumed.json()["run_id"]
        joined = await client.get(
            f"/threads/{thread_id}/runs/{run_id}/join", headers=server.headers("rita")
        )
        assert joined.status_code == 200, joined.text
        assert joined.json()["messages"][-1]["content"] == "All done."
        assert "__interrupt__" not in joined.json()
        run = await client.get(
            f"/threads/{thread_id}/runs/{run_id}", headers=server.headers("alice")
        )
        assert run.json()["status"] == "success"
        thread = await client.get(f"/threads/{thread_id}", headers=server.headers("alice"))
        assert thread.json()["status"] == "idle"

    row, calls = await _run_row(world, run_id)
    assert row is not None
    assert (row.tenant, row.requester, row.submitted_by) == ("a", "alice", "rita")
    assert row.requester_roles == ["user"]
    deleted = [call for call in calls if call.tool == "notes_delete"]
    assert [(c.principal, c.approved_by, c.status) for c in deleted] == [
        ("alice", "rita", "succeeded")
    ]


async def test_the_owner_may_decide_her_own_interrupt(world: World) -> None:
    """Four-eyes is off by default (ARCHITECTURE.md): a user answers her own approvals,
    as agent-chat-ui does; reviewers may also decide them for the tenant."""
    server = world.server
    with httpx.Client(base_url=server.base_url, timeout=30) as sync_client:
        thread_id, _ = _paused_thread(sync_client, "alice", server)
    async with client_for(world) as client:
        answer = await client.post(
            f"/threads/{thread_id}/runs", json=RESUME, headers=server.headers("alice")
        )
        if answer.status_code == 200:  # let the run finish before the server stops
            await client.get(
                f"/threads/{thread_id}/runs/{answer.json()['run_id']}/join",
                headers=server.headers("alice"),
            )
    assert answer.status_code == 200, answer.text


async def _wait_for_status(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], wanted: set[str]
) -> str:
    deadline = time.monotonic() + 10
    while True:
        status = (await client.get(path, headers=headers)).json()["status"]
        if status in wanted or time.monotonic() > deadline:
            return str(status)
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("who", OUTSIDERS)
async def test_outsider_cannot_cancel_a_run_in_flight(world: World, who: str) -> None:
    server = world.server
    alice = server.headers("alice")
    async with client_for(world) as client:
        thread = (await client.post("/threads", json={}, headers=alice)).json()["thread_id"]
        slow = {
            "assistant_id": "agent",
            "input": {"messages": [{"type": "human", "content": "slow"}]},
        }
        run_id = (await client.post(f"/threads/{thread}/runs", json=slow, headers=alice)).json()[
            "run_id"
        ]
        run_path = f"/threads/{thread}/runs/{run_id}"
        assert await _wait_for_status(client, run_path, alice, {"running"}) == "running"

        bulk = await client.post(
            "/runs/cancel",
            json={"thread_id": thread, "run_ids": [run_id]},
            headers=server.headers(who),
        )
        assert bulk.status_code in (204, 404), bulk.text
        direct = await client.post(f"{run_path}/cancel", headers=server.headers(who))
        assert direct.status_code == 404, direct.text
        # A cancel would show at once for a pending run, within a second for a running one.
        assert (await client.get(run_path, headers=alice)).json()["status"] in (
            "running",
            "success",
        )

        joined = await client.get(f"{run_path}/join", headers=alice)
        assert joined.json()["messages"][-1]["content"] == "slow reply"
        assert (await client.get(run_path, headers=alice)).json()["status"] == "success"
