"""Held uploads and legal bases over HTTP (api/routes/privacy.py with api/routes/files.py,
a real uvicorn server): ``POST /consent`` releases the caller's held documents to the
background ingestion worker, ``GET /consent`` lists them while held, withdrawal and
``POST /consent/reject`` delete them."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import ApiServer, serve  # noqa: F401  (the API tests' fixture)
from tests.memory.documents_helpers import warm_model_cache
from tests.memory.test_documents_api import upload, wait_for

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)

UNION = b"Alice is a member of the trade union; the kestrel strike starts Monday.\n"


@pytest.fixture
def server(serve, data_dir, tmp_path_factory) -> ApiServer:  # type: ignore[no-untyped-def]  # noqa: F811
    warm_model_cache(tmp_path_factory, data_dir / "models")
    started: ApiServer = serve(workers=1)
    return started


async def held_upload(client: httpx.AsyncClient, server: ApiServer, name: str) -> str:
    response = await upload(client, server, "alice", name, UNION)
    assert response.status_code == 202, response.text
    document_id: str = response.json()["document_id"]
    body = await wait_for(client, server, "alice", document_id, "awaiting_basis", "ready")
    assert body["status"] == "awaiting_basis"
    return document_id


async def test_consent_releases_held_uploads_and_withdrawal_deletes_them(
    server: ApiServer,
) -> None:
    headers = server.headers("alice")
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as alice:
        document_id = await held_upload(alice, server, "notes.txt")
        listed = (await alice.get("/consent")).json()
        assert [d["document_id"] for d in listed["held_documents"]] == [document_id]
        assert listed["held_documents"][0]["sensitivity"] == "special"

        granted = await alice.post("/consent", json={"categories": ["special"]})

        assert granted.status_code == 201, granted.text
        body = granted.json()
        assert body["released"] == 0 and body["released_documents"] == 1
        ready = await wait_for(alice, server, "alice", document_id, "ready", "failed")
        assert ready["status"] == "ready" and ready["chunk_count"] == 1
        assert (await alice.get("/consent")).json()["held_documents"] == []
        again = await upload(alice, server, "alice", "notes.txt", UNION)
        assert again.json() == {
            "document_id": document_id,
            "job_id": None,
            "unchanged": True,
            "status": "ready",
        }

        withdrawn = await alice.post(f"/consent/{body['basis']['id']}/withdraw")

        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["deleted_documents"] == 1
        assert (await alice.get(f"/files/{document_id}")).status_code == 404
        assert (await alice.get("/files")).json() == []


async def test_rejecting_deletes_held_uploads(server: ApiServer) -> None:
    headers = server.headers("alice")
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as alice:
        document_id = await held_upload(alice, server, "notes.txt")

        rejected = await alice.post("/consent/reject")

        assert rejected.status_code == 200, rejected.text
        assert rejected.json() == {"deleted": 0, "deleted_documents": 1}
        assert (await alice.get(f"/files/{document_id}")).status_code == 404
        assert (await alice.get("/consent")).json()["held_documents"] == []
