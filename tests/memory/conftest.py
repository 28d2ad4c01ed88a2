"""Vector backends for the memory tests: every test that takes ``open_vectors`` runs against
embedded Chroma (a tmp dir) and against a real Chroma server (``chroma run`` on 127.0.0.1,
one per session, marked ``slow``). One parametrized fixture, no copies of tests."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from memory.vectors import VectorStore

OpenVectors = Callable[[Path], VectorStore]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Chroma server (``chroma run`` from this venv) for the whole session."""
    chroma = shutil.which("chroma", path=os.path.dirname(sys.executable))
    assert chroma is not None, "the chroma CLI must be installed beside this Python"
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    server = subprocess.Popen(
        [chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "chroma run exited early"
            assert time.monotonic() < deadline, "chroma run did not start within 60 s"
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.slow)])
def open_vectors(request: pytest.FixtureRequest) -> Iterator[OpenVectors]:
    """Opens a ``VectorStore`` for a test directory: embedded in ``DIR/chroma``, or on the
    session's Chroma server under a fresh scope key (so tests never see each other's
    collections). Stores it opened are closed after the test."""
    opened: list[VectorStore] = []
    url = request.getfixturevalue("chroma_url") if request.param == "server" else None
    key = secrets.token_bytes(32)

    def open_(directory: Path) -> VectorStore:
        if url is None:
            store = VectorStore.open_local(directory / "chroma")
        else:
            store = VectorStore.connect(url, scope_key=key)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()
