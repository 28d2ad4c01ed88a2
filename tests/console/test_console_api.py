"""The console's page and reads, over real HTTP (no browser)."""

from __future__ import annotations

import httpx

from tests.console.conftest import ConsoleServer


def get(server: ConsoleServer, who: str | None, path: str) -> httpx.Response:
    headers = server.headers(who) if who else {}
    return httpx.get(f"{server.api}{path}", headers=headers, timeout=30)


def test_page_and_assets_are_served_without_a_key_and_lock_down_scripts(
    console_server: ConsoleServer,
) -> None:
    page = httpx.get(f"{console_server.origin}/console", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert '<script src="/console/assets/app.js"' in page.text
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = httpx.get(f"{console_server.origin}/console/assets/{name}", timeout=30)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
    js = httpx.get(f"{console_server.origin}/console/assets/app.js", timeout=30).text
    assert "innerHTML" not in js.replace("never innerHTML", "")
    missing = httpx.get(f"{console_server.origin}/console/assets/..%2Fapp.py", timeout=30)
    assert missing.status_code == 404
    assert httpx.get(f"{console_server.origin}/console/assets/index.html").status_code == 404


def test_whoami_reveals_the_principal_and_needs_a_key(console_server: ConsoleServer) -> None:
    assert get(console_server, None, "/whoami").status_code == 401
    me = get(console_server, "rita", "/whoami").json()
    assert (me["tenant"], me["user"], me["roles"]) == ("a", "rita", ["reviewer"])
    assert "reviews:decide" in me["scopes"]


def test_tools_list_carries_risk_and_input_schema(console_server: ConsoleServer) -> None:
    tools = {tool["name"]: tool for tool in get(console_server, "rita", "/tools").json()["tools"]}
    delete = tools["notes_delete"]
    assert delete["risk"] == "destructive" and delete["supports_dry_run"] is True
    assert delete["input_schema"]["properties"]["note_id"]["minimum"] == 1
    assert delete["input_schema"]["additionalProperties"] is False
    assert get(console_server, "rita", "/tools/notes_delete").json()["name"] == "notes_delete"
    assert get(console_server, "rita", "/tools/no_such_tool").status_code == 404


def test_trace_lists_runs_with_model_and_tool_steps(console_server: ConsoleServer) -> None:
    trace = get(console_server, "rita", f"/console/threads/{console_server.thread_id}/trace")
    assert trace.status_code == 200
    runs = trace.json()["runs"]
    assert runs and runs[0]["status"] == "success"
    assert runs[0]["stop_reason"] == "waiting_for_human"
    kinds = [step["kind"] for step in runs[0]["steps"]]
    assert "model" in kinds and "tool" in kinds
    tool_step = next(step for step in runs[0]["steps"] if step["kind"] == "tool")
    assert tool_step["tool"] == "notes_create" and tool_step["status"] == "succeeded"
    assert runs[0]["totals"]["model_calls"] == kinds.count("model")
    nodes = runs[0]["nodes"]  # the per-step trace rows
    assert nodes[0]["node"] == "model" and nodes[0]["alias"] and nodes[0]["prompt"]
    assert nodes[-1]["node"] == "gate" and nodes[-1]["status"] == "interrupted"
    outcomes = [(c["tool"], c["outcome"]) for n in nodes for c in n["tool_calls"]]
    assert ("notes_create", "success") in outcomes and ("notes_delete", "proposed") in outcomes
    assert sum(n["input_tokens"] for n in nodes) == runs[0]["totals"]["input_tokens"]


def test_preview_dry_runs_the_proposed_call_as_the_requester(
    console_server: ConsoleServer,
) -> None:
    body = get(console_server, "rita", f"/console/threads/{console_server.thread_id}/preview")
    assert body.status_code == 200
    data = body.json()
    assert data["acting_as"] == "alice"
    [previews] = data["previews"].values()
    # The model proposed deleting note 2, which alice does not have: the dry run says so.
    assert previews[0]["tool"] == "notes_delete"
    assert previews[0]["would_fail"]["error"] == "not_found"


def test_other_tenant_gets_nothing(console_server: ConsoleServer) -> None:
    thread = console_server.thread_id
    for path in (f"/console/threads/{thread}/trace", f"/console/threads/{thread}/preview"):
        assert get(console_server, "rex", path).status_code == 404
    found = httpx.post(
        f"{console_server.api}/threads/search",
        json={"status": "interrupted"},
        headers=console_server.headers("rex"),
    ).json()
    assert found == []


def test_tenant_runs_are_for_admins_with_counts_and_filters(
    console_server: ConsoleServer,
) -> None:
    assert get(console_server, "rita", "/console/runs").status_code == 403
    data = get(console_server, "ada", "/console/runs").json()
    assert data["counts"]["success"] >= 1
    assert all(run["thread_id"] for run in data["runs"])
    assert get(console_server, "ada", "/console/runs?status=failed").json()["runs"] == []
    bad = get(console_server, "ada", "/console/runs?status=exploded")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
    assert get(console_server, "rex", "/console/runs").status_code == 403
