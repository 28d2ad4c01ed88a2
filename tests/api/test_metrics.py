"""Prometheus /metrics: served without a key by default, admins only when configured."""

from __future__ import annotations

from typing import Any

import httpx


def test_metrics_count_runs_and_describe_the_queue(serve: Any) -> None:
    api = serve()
    headers = api.headers("alice")
    with httpx.Client(base_url=api.base_url, headers=headers, timeout=30) as client:
        thread_id = client.post("/threads", json={}).json()["thread_id"]
        client.post(
            f"/threads/{thread_id}/runs/wait",
            json={
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": "hi"}]},
            },
        ).raise_for_status()
        root = api.base_url.removesuffix("/api/v1")
        text = httpx.get(f"{root}/metrics").text
    assert (
        'relaygraph_runs_total{assistant="agent",status="success",stop_reason="completed"}' in text
    )
    assert "relaygraph_queue_depth 0.0" in text
    assert "relaygraph_run_duration_seconds_bucket" in text
    assert 'relaygraph_step_duration_seconds_count{node="model"}' in text
    # Model calls are counted from the router's usage rows; breakers read at scrape time.
    assert 'relaygraph_model_calls_total{alias="scripted:' in text
    assert 'outcome="ok"}' in text
    assert 'relaygraph_model_breaker_state{deployment="scripted:' in text


def test_metrics_can_be_restricted_to_admins(serve: Any) -> None:
    api = serve(metrics_public=False)
    root = api.base_url.removesuffix("/api/v1")
    assert httpx.get(f"{root}/metrics").status_code == 401
    assert httpx.get(f"{root}/metrics", headers=api.headers("alice")).status_code == 403
    response = httpx.get(f"{root}/metrics", headers=api.headers("ada"))
    assert response.status_code == 200
    assert "relaygraph_sse_connections" in response.text
