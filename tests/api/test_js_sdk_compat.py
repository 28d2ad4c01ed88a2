"""What the JS client (@langchain/langgraph-sdk) needs beyond the bodies, checked without
Node: the headers it reads (X-Pagination-Next, Content-Location, Location) and, for a
browser app, CORS on every answer, refusals included (tests/api/test_js_sdk.py runs the
client itself)."""

from __future__ import annotations

from typing import Any

import httpx

ORIGIN = "http://chat.example"


def test_assistant_search_names_the_next_page_offset(serve: Any) -> None:
    server = serve([{"content": "hi"}])
    headers = server.headers("alice")
    everything = httpx.post(
        f"{server.base_url}/assistants/search", json={"limit": 100}, headers=headers
    ).json()
    assert len(everything) >= 2

    pages: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = httpx.post(
            f"{server.base_url}/assistants/search",
            json={"limit": 1, "offset": offset},
            headers=headers,
        )
        assert page.status_code == 200 and len(page.json()) == 1
        pages.append(page.json()[0]["assistant_id"])
        following = page.headers.get("x-pagination-next")
        assert following is None or int(following) == offset + 1
        offset = int(following) if following is not None else None
    assert pages == [a["assistant_id"] for a in everything]

    whole = httpx.post(f"{server.base_url}/assistants/search", json={}, headers=headers)
    assert "x-pagination-next" not in whole.headers, "one page holds them all"


def test_cors_lets_a_browser_client_read_what_the_sdk_reads(serve: Any) -> None:
    server = serve([{"content": "hi"}], cors_origins=[ORIGIN], max_request_bytes=2048)
    base = server.base_url
    preflight = httpx.options(
        f"{base}/threads/some-thread/runs/stream",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key,content-type,last-event-id",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower().split(",")
    assert {"x-api-key", "content-type", "last-event-id"} <= {h.strip() for h in allowed}

    headers = {**server.headers("alice"), "Origin": ORIGIN}
    search = httpx.post(f"{base}/assistants/search", json={"limit": 1}, headers=headers)
    assert search.status_code == 200 and "x-pagination-next" in search.headers
    exposed = {
        h.strip().lower() for h in search.headers["access-control-expose-headers"].split(",")
    }
    assert {"content-location", "location", "x-pagination-next", "retry-after"} <= exposed

    # Refusals reach the page as what they are, not as an opaque CORS failure.
    unauthenticated = httpx.post(f"{base}/threads", json={}, headers={"Origin": ORIGIN})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["access-control-allow-origin"] == ORIGIN
    too_large = httpx.post(f"{base}/threads", json={"metadata": {"x": "y" * 4096}}, headers=headers)
    assert too_large.status_code == 413
    assert too_large.headers.get("access-control-allow-origin") == ORIGIN
