"""Load: 200 SSE clients follow 20 long-running runs (10 clients each) on one
`relaygraph serve` process on 127.0.0.1 for 60 s, with 1 s heartbeats.

Asserts 0 errors (every client connected with 200 and kept its stream until the end),
events delivered in order without gaps, no silence longer than a few heartbeats, and a
bounded RSS growth of the server while the streams run. Prints the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.mcp_server.conftest import create_keys, run_async

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

REPO = Path(__file__).resolve().parents[2]
MODEL = f"scripted:{REPO / 'tests' / 'security' / 'long_model.py'}:turn"
CLIENTS = 200
RUNS = 20
SECONDS = 60.0
HEARTBEAT = 1.0
RSS_GROWTH_LIMIT_MB = 64.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _serve_options(port: int) -> list[str]:
    return ["--port", str(port), "--workers", str(RUNS)]


def _start_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "relaygraph", "serve", *_serve_options(port)],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


class _Client:
    def __init__(self) -> None:
        self.status = 0
        self.events = 0
        self.heartbeats = 0
        self.ids: list[int] = []
        self.max_gap = 0.0
        self.error: str | None = None
        self.ended_early = False

    async def follow(self, client: httpx.AsyncClient, path: str, until: float) -> None:
        try:
            async with client.stream("GET", path) as response:
                self.status = response.status_code
                if response.status_code != 200:
                    self.error = f"{response.status_code} {(await response.aread())[:200]!r}"
                    return
                last = time.monotonic()
                lines = response.aiter_lines()
                while True:
                    left = until - time.monotonic()
                    if left <= 0:
                        return
                    try:
                        line = await asyncio.wait_for(anext(lines), left)
                    except TimeoutError:
                        return
                    except StopAsyncIteration:
                        self.ended_early = True
                        return
                    now = time.monotonic()
                    self.max_gap = max(self.max_gap, now - last)
                    last = now
                    if line.startswith(": heartbeat"):
                        self.heartbeats += 1
                    elif line.startswith("id:"):
                        self.ids.append(int(line[3:].strip()))
                        self.events += 1
        except Exception as exc:  # counted as an error below
            self.error = f"{type(exc).__name__}: {exc}"


async def test_200_sse_clients_for_60_seconds(data_dir: Path, tmp_path: Path) -> None:
    from runtime.settings import Settings

    keys = run_async(create_keys(Settings(data_dir=data_dir)))
    port = _free_port()
    env = {
        **os.environ,
        "RELAYGRAPH_DATA_DIR": str(data_dir),
        "RELAYGRAPH_MODEL": MODEL,
        "RELAYGRAPH_SSE_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "RELAYGRAPH_MAX_SSE_STREAMS": str(CLIENTS),
        "RELAYGRAPH_RATE_LIMIT_PER_KEY": "",
        "RELAYGRAPH_RATE_LIMIT_PER_TENANT": "",
        "LONG_MODEL_TURN_SECONDS": "1.0",
        "LONG_MODEL_TURNS": "200",
    }
    log = tmp_path / "server.log"
    server = _start_server(port, env, log)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        async with httpx.AsyncClient(
            base_url=base,
            headers={"x-api-key": keys["alice"]},
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=CLIENTS + 20, max_keepalive_connections=20),
        ) as client:
            for _ in range(600):
                try:
                    if (await client.get("/ok")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, "the server exited"
                await asyncio.sleep(0.1)
            rss_idle = _rss_mb(server.pid)
            runs = []
            for index in range(RUNS):
                thread = (await client.post("/threads", json={})).json()["thread_id"]
                created = await client.post(
                    f"/threads/{thread}/runs",
                    json={
                        "assistant_id": "agent",
                        "input": {"messages": [{"role": "user", "content": f"load {index}"}]},
                        "stream_mode": ["values", "updates"],
                    },
                )
                assert created.status_code == 200, created.text
                runs.append(f"/threads/{thread}/runs/{created.json()['run_id']}")
            started = time.monotonic()
            until = started + SECONDS
            clients = [_Client() for _ in range(CLIENTS)]
            following = [
                asyncio.create_task(c.follow(client, f"{runs[i % RUNS]}/stream", until))
                for i, c in enumerate(clients)
            ]
            await asyncio.sleep(5)
            rss_connected = _rss_mb(server.pid)
            await asyncio.gather(*following)
            elapsed = time.monotonic() - started
            rss_end = _rss_mb(server.pid)
            for path in runs:
                await client.post(f"{path}/cancel")
            await asyncio.sleep(2)
            rss_after = _rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)

    errors = [c.error for c in clients if c.error] + [
        "ended early" for c in clients if c.ended_early
    ]
    gaps = sorted(c.max_gap for c in clients)
    gapless = all(c.ids == list(range(c.ids[0], c.ids[0] + len(c.ids))) for c in clients if c.ids)
    figures = {
        "clients": CLIENTS,
        "runs": RUNS,
        "seconds": round(elapsed, 1),
        "errors": len(errors),
        "events_delivered": sum(c.events for c in clients),
        "heartbeats": sum(c.heartbeats for c in clients),
        "heartbeat_interval_s": HEARTBEAT,
        "max_gap_s": round(gaps[-1], 2),
        "p99_max_gap_s": round(gaps[int(0.99 * (len(gaps) - 1))], 2),
        "rss_mb": {
            "idle": round(rss_idle, 1),
            "connected": round(rss_connected, 1),
            "end": round(rss_end, 1),
            "after_close": round(rss_after, 1),
        },
    }
    print("\nsse load: " + json.dumps(figures))
    assert errors == [], errors[:5]
    assert all(c.status == 200 for c in clients)
    assert gapless, "a client saw a gap in event ids"
    assert all(c.heartbeats + c.events > 0 for c in clients)
    # Generous (the machine is shared): no client may go quiet long enough for a proxy or
    # client idle timeout; the figure printed above is the real one.
    assert gaps[-1] < 5 * HEARTBEAT + 5, f"a client heard nothing for {gaps[-1]:.1f} s"
    assert rss_end - rss_connected < RSS_GROWTH_LIMIT_MB, figures["rss_mb"]
