"""Run creation details over HTTP: idempotency, heartbeats, errors mid-stream,
disconnects, stateless runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from runtime.webhooks import deployment_secret, tenant_secret
from tests.api.conftest import ApiServer

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)

HERE = Path(__file__).parent
SLOW_MODEL = f"scripted:{HERE / 'slow_model.py'}:turn"
FAILING_MODEL = f"scripted:{HERE / 'failing_model.py'}:turn"
HELLO = {"messages": [{"role": "user", "content": "hello"}]}


def _client(server: ApiServer, who: str = "alice") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, headers=server.headers(who), timeout=30)


async def _sse(response: httpx.Response) -> list[tuple[str, str]]:
    """(kind, text) per line: ("comment", ...), ("event", name), ("id", n), ("data", json)."""
    lines: list[tuple[str, str]] = []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            lines.append(("comment", line[1:].strip()))
        elif ":" in line:
            field, _, value = line.partition(":")
            lines.append((field, value.strip()))
    return lines


async def test_idempotency_key_returns_the_run_already_created(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve([{"content": "hi"}] * 3)
    async with _client(server) as http:
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": "agent", "input": HELLO}
        headers = {"Idempotency-Key": "retry-me-1"}
        first = await http.post(f"/threads/{tid}/runs", json=body, headers=headers)
        second = await http.post(f"/threads/{tid}/runs", json=body, headers=headers)
        assert first.status_code == second.status_code == 200
        assert first.json()["run_id"] == second.json()["run_id"]
        assert first.headers["content-location"] == f"/threads/{tid}/runs/{first.json()['run_id']}"
        await http.get(f"/threads/{tid}/runs/{first.json()['run_id']}/join")
        runs = (await http.get(f"/threads/{tid}/runs")).json()
    assert [run["run_id"] for run in runs] == [first.json()["run_id"]]


async def test_heartbeats_flow_while_a_run_is_quiet(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(model=SLOW_MODEL, sse_heartbeat_seconds=0.1)
    async with _client(server) as http:
        body = {"assistant_id": "agent", "input": HELLO, "stream_mode": "updates"}
        async with http.stream("POST", "/runs/stream", json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = await _sse(response)
    comments = [text for kind, text in lines if kind == "comment"]
    assert comments.count("heartbeat") >= 3
    ids = [int(text) for kind, text in lines if kind == "id"]
    assert ids == sorted(ids) and len(ids) == len({*ids})
    assert next(text for kind, text in lines if kind == "event") == "metadata"


async def test_a_failure_mid_stream_arrives_as_an_error_event(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(model=FAILING_MODEL, model_max_retries=0)
    async with _client(server) as http:
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": "agent", "input": HELLO, "stream_mode": ["updates"]}
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
            assert response.status_code == 200
            location = response.headers["content-location"]
            lines = await _sse(response)
        events = [text for kind, text in lines if kind == "event"]
        assert events[-1] == "error" and "updates" in events
        error_data = [text for kind, text in lines if kind == "data"][-1]
        assert "the provider is down" in error_data and "Traceback" not in error_data
        run = (await http.get(location)).json()
        thread = (await http.get(f"/threads/{tid}")).json()
    assert run["status"] == "error" and thread["status"] == "error"


async def test_disconnect_cancels_by_default_and_continue_keeps_running(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(model=SLOW_MODEL)
    statuses: dict[str, Any] = {}
    async with _client(server) as http:
        for mode in ("cancel", "continue"):
            tid = (await http.post("/threads", json={})).json()["thread_id"]
            body = {"assistant_id": "agent", "input": HELLO, "on_disconnect": mode}
            async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
                location = response.headers["content-location"]
                async for line in response.aiter_lines():
                    if line.startswith("event: values"):
                        break  # the client goes away mid-run
            # Join (one long request) rather than poll: polling fast enough to be quick
            # runs into the key's rate limit on a slow machine.
            joined = await http.get(f"{location}/join", timeout=30)
            assert joined.status_code == 200, joined.text
            statuses[mode] = (await http.get(location)).json()["status"]
    assert statuses == {"cancel": "interrupted", "continue": "success"}


async def test_stateless_wait_deletes_its_thread(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve([{"content": "done statelessly"}])
    async with _client(server) as http:
        answer = await http.post("/runs/wait", json={"assistant_id": "agent", "input": HELLO})
        assert answer.status_code == 200
        assert answer.json()["messages"][-1]["content"] == "done statelessly"
        thread_id = answer.headers["content-location"].split("/")[2]
        assert (await http.get(f"/threads/{thread_id}")).status_code == 404
        kept = await http.post(
            "/runs/wait",
            json={"assistant_id": "agent", "input": HELLO, "on_completion": "keep"},
        )
        assert kept.json()["messages"][-1]["content"] == "done statelessly"
        kept_id = kept.headers["content-location"].split("/")[2]
        assert (await http.get(f"/threads/{kept_id}")).status_code == 200


class _Receiver:
    """A local webhook receiver on 127.0.0.1 that fails its first answer."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict[str, Any]] = []
        self.raw: list[tuple[bytes, dict[str, str]]] = []
        self.received = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import json

                raw = self.rfile.read(int(self.headers["content-length"]))
                receiver.raw.append((raw, {k.lower(): v for k, v in self.headers.items()}))
                receiver.bodies.append(json.loads(raw))
                first = len(receiver.bodies) == 1
                self.send_response(503 if first else 204)
                self.end_headers()
                if not first:
                    receiver.received.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_webhook_is_posted_on_completion_with_retries(serve) -> None:  # type: ignore[no-untyped-def]
    # The receiver is on loopback, which the SSRF guard refuses unless allowed.
    server = serve([{"content": "hooked"}], http_allow_networks=["127.0.0.1/32"])
    receiver = _Receiver()
    try:
        async with _client(server) as http:
            tid = (await http.post("/threads", json={})).json()["thread_id"]
            body = {"assistant_id": "agent", "input": HELLO, "webhook": receiver.url}
            run = (await http.post(f"/threads/{tid}/runs", json=body)).json()
            bad = await http.post(
                f"/threads/{tid}/runs", json={**body, "webhook": "file:///etc/passwd"}
            )
        assert bad.status_code == 422 and "http" in bad.json()["message"]
        assert await asyncio.to_thread(receiver.received.wait, 20)
    finally:
        receiver.close()
    assert len(receiver.bodies) == 2  # the first delivery got a 503 and was retried
    delivered = receiver.bodies[-1]
    assert (delivered["run_id"], delivered["status"]) == (run["run_id"], "success")
    assert delivered["values"]["messages"][-1]["content"] == "hooked"
    # Signed the Standard Webhooks way with tenant a's secret, the same id on each attempt.
    secret = tenant_secret(deployment_secret(None, server.settings.data_dir), "a")
    raw, headers = receiver.raw[-1]
    assert Webhook(secret).verify(raw, headers)["run_id"] == run["run_id"]
    assert receiver.raw[0][1]["webhook-id"] == headers["webhook-id"] == f"run_{run['run_id']}"
    other = tenant_secret(deployment_secret(None, server.settings.data_dir), "b")
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(raw, headers)


async def test_webhooks_to_private_addresses_are_refused(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve([{"content": "hooked"}, {"content": "again"}])
    receiver = _Receiver()
    try:
        async with _client(server) as http:
            tid = (await http.post("/threads", json={})).json()["thread_id"]
            body = {"assistant_id": "agent", "input": HELLO, "webhook": receiver.url}
            run = (await http.post(f"/threads/{tid}/runs", json=body)).json()
            joined = await http.get(f"/threads/{tid}/runs/{run['run_id']}/join")
            assert joined.status_code == 200
        # Loopback is refused by the same guard as http_fetch: nothing is ever posted.
        assert not await asyncio.to_thread(receiver.received.wait, 3)
    finally:
        receiver.close()
    assert receiver.bodies == []


REPO = HERE.parents[1]


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "relaygraph", "worker", "--concurrency", "2"],
        cwd=REPO,
        env=env,
        stderr=subprocess.DEVNULL,
    )


async def test_runs_executed_by_a_separate_worker_process(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`serve --no-workers` + `relaygraph worker`: results and streams reach the API
    process through the database (and a stateless run's thread is still deleted)."""
    server = serve([{"content": "from the worker"}], workers=0)
    env = {
        **os.environ,
        "RELAYGRAPH_DATA_DIR": str(server.settings.data_dir),
        "RELAYGRAPH_MODEL": str(server.settings.model),
    }
    worker = _start_worker(env)
    try:
        async with _client(server) as http:
            answer = await http.post("/runs/wait", json={"assistant_id": "agent", "input": HELLO})
            assert answer.status_code == 200, answer.text
            assert answer.json()["messages"][-1]["content"] == "from the worker"
            thread_id = answer.headers["content-location"].split("/")[2]
            assert (await http.get(f"/threads/{thread_id}")).status_code == 404

            tid = (await http.post("/threads", json={})).json()["thread_id"]
            body = {"assistant_id": "agent", "input": HELLO, "stream_mode": ["values"]}
            async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
                lines = await _sse(response)
        events = [text for kind, text in lines if kind == "event"]
        assert events[0] == "metadata" and events.count("values") >= 2
        assert "from the worker" in [text for kind, text in lines if kind == "data"][-1]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
