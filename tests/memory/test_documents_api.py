"""api/routes/files.py through a real uvicorn server: upload, background ingestion with
progress, listing and reading scoped to the owner, bad input, the legal-basis hold, delete."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiServer, serve  # noqa: F401  (the API tests' fixture)
from tests.memory.documents_helpers import make_pdf, warm_model_cache

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)

NOTES = b"Release notes\n\nThe kestrel build fixes the login timeout.\n"


@pytest.fixture
def server(serve, data_dir, tmp_path_factory) -> ApiServer:  # type: ignore[no-untyped-def]  # noqa: F811
    warm_model_cache(tmp_path_factory, data_dir / "models")
    started: ApiServer = serve(workers=1)
    return started


async def upload(
    client: httpx.AsyncClient,
    server: ApiServer,
    who: str,
    name: str,
    data: bytes,
    mime: str = "text/plain",
    **form: str,
) -> httpx.Response:
    return await client.post(
        f"{server.base_url}/files",
        headers=server.headers(who),
        files={"file": (name, data, mime)},
        data=form,
    )


async def wait_for(
    client: httpx.AsyncClient, server: ApiServer, who: str, document_id: str, *statuses: str
) -> dict[str, Any]:
    async with asyncio.timeout(90):
        while True:
            response = await client.get(
                f"{server.base_url}/files/{document_id}", headers=server.headers(who)
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["status"] in statuses:
                return body
            await asyncio.sleep(0.1)


async def test_upload_is_ingested_in_the_background_and_scoped_to_its_owner(
    server: ApiServer,
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await upload(client, server, "alice", "notes.txt", NOTES)
        assert response.status_code == 202, response.text
        queued = response.json()
        assert queued["job_id"] and queued["document_id"] and queued["unchanged"] is False

        body = await wait_for(client, server, "alice", queued["document_id"], "ready", "failed")

        assert body["status"] == "ready" and body["chunk_count"] == 1
        assert body["owner"] == "alice" and body["tenant"] == "a"
        assert body["job"]["status"] == "succeeded" and body["job"]["progress"] == 1.0
        stages = [event["stage"] for event in body["job"]["events"]]
        assert stages[0] == "queued" and stages[-1] == "done"

        again = await upload(client, server, "alice", "notes.txt", NOTES)
        assert again.status_code == 202
        assert again.json() == {
            "document_id": queued["document_id"],
            "job_id": None,
            "unchanged": True,
            "status": "ready",
        }

        mine = await client.get(f"{server.base_url}/files", headers=server.headers("alice"))
        assert [item["document_id"] for item in mine.json()] == [queued["document_id"]]
        for who in ("bob", "rita"):  # other tenant; same tenant, not the owner
            listed = await client.get(f"{server.base_url}/files", headers=server.headers(who))
            assert listed.status_code == 200 and listed.json() == []
            read = await client.get(
                f"{server.base_url}/files/{queued['document_id']}", headers=server.headers(who)
            )
            assert read.status_code == 404 and read.json()["error"] == "not_found"
            gone = await client.delete(
                f"{server.base_url}/files/{queued['document_id']}", headers=server.headers(who)
            )
            assert gone.status_code == 404
        admin = await client.get(
            f"{server.base_url}/files/{queued['document_id']}", headers=server.headers("ada")
        )
        assert admin.status_code == 200  # admins read the tenant

        deleted = await client.delete(
            f"{server.base_url}/files/{queued['document_id']}", headers=server.headers("alice")
        )
        assert deleted.status_code == 204
        after = await client.get(
            f"{server.base_url}/files/{queued['document_id']}", headers=server.headers("alice")
        )
        assert after.status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "mime", "status", "code"),
    [
        ("empty.txt", b"", "text/plain", 422, "empty_file"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png", 415, "unsupported_type"),
        ("x.pdf", b"%PDF-1.7\nnot really a pdf", "application/pdf", 422, "corrupt_pdf"),
        ("report.pdf", b"plain text pretending", "application/pdf", 415, "type_mismatch"),
    ],
)
async def test_bad_uploads_are_refused_with_a_clear_error_and_nothing_stored(
    server: ApiServer, name: str, data: bytes, mime: str, status: int, code: str
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await upload(client, server, "alice", name, data, mime)
        assert response.status_code == status, response.text
        assert response.json()["error"] == code
        assert name in response.json()["message"]
        listed = await client.get(f"{server.base_url}/files", headers=server.headers("alice"))
        assert listed.json() == []


async def test_special_category_upload_awaits_a_legal_basis(server: ApiServer) -> None:
    content = make_pdf(["Medical record: the patient was diagnosed with diabetes."])
    async with httpx.AsyncClient(timeout=60) as client:
        response = await upload(client, server, "alice", "record.pdf", content, "application/pdf")
        assert response.status_code == 202
        document_id = response.json()["document_id"]

        body = await wait_for(client, server, "alice", document_id, "awaiting_basis", "ready")

        assert body["status"] == "awaiting_basis" and body["sensitivity"] == "special"
        assert body["chunk_count"] == 0 and body["job"]["status"] == "held"
        assert "diabetes" not in str(body)  # counts of findings only, never their text


async def test_uploads_need_credentials_and_the_write_scope(server: ApiServer) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            f"{server.base_url}/files", files={"file": ("a.txt", b"hi", "text/plain")}
        )
        assert response.status_code == 401
        spec = (await client.get(f"{server.base_url}/openapi.json")).json()
        assert {"post", "get"} <= set(spec["paths"]["/api/v1/files"])
        assert "415" in spec["paths"]["/api/v1/files"]["post"]["responses"]
