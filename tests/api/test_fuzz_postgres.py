"""NUL characters on both store backends. PostgreSQL refuses NUL in text and JSON
(``psycopg.DataError``), so before these fixes every lookup with ``%00`` in its path or
query, and every body with ``\\u0000`` in it, was a 500 there. Now NUL in a path is a 404
(no id can hold one), in a query a 422, in a body a 422, whatever the backend."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)


URLS = [
    ("GET", "/threads/a%00b", None, 404),
    ("GET", "/threads/a%00b/state", None, 404),
    ("POST", "/threads/a%00b/runs/wait", None, 404),
    ("GET", "/tools/t%00", None, 404),
    ("GET", "/files/d%00", None, 404),
    ("GET", "/approvals/a%00", None, 404),
    ("DELETE", "/memories/m%00", None, 404),
    ("GET", "/store/items", {"namespace": "a", "key": "k\x00"}, 422),
    ("GET", "/store/items", {"namespace": "a\x00", "key": "k"}, 422),
    ("GET", "/audit", {"tool": "t\x00"}, 422),
    ("GET", "/usage", {"user": "u\x00"}, 422),
    ("GET", "/export", {"user": "u\x00"}, 422),
]
BODIES = [
    ("POST", "/threads", {"metadata": {"note": "a\x00b"}}),
    ("POST", "/threads", {"thread_id": "a\x00b"}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {"v": "\x00"}}),
    ("POST", "/threads/search", {"metadata": {"k\x00": 1}}),
]


def test_nul_in_a_url_or_body_is_a_client_error(serve: Any) -> None:
    server = serve()
    with httpx.Client(base_url=server.base_url, headers=server.headers("ada"), timeout=60) as c:
        for method, path, params, status in URLS:
            answer = c.request(method, path, params=params, json={"assistant_id": "agent"})
            assert answer.status_code == status, (path, answer.text)
            body = answer.json()
            assert set(body) == {"error", "message"} and "NUL" in body["message"]
        for method, path, content in BODIES:
            answer = c.request(method, path, json=content)
            assert answer.status_code == 422, (path, answer.text)
            assert "NUL" in answer.json()["message"]
        assert c.post("/threads/count", json={}).json() == 0  # nothing half-written
        upload = c.post(
            "/files", files={"file": ("notes.txt", b"some text")}, data={"source": "a\x00b"}
        )
        assert upload.status_code == 422 and "NUL" in upload.json()["message"], upload.text
        assert c.get("/files").json() == []
