"""memory/vectors.py with real Chroma collections in tmp dirs (and a real Chroma server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memory.types import Scope, VectorIndexError, VectorIndexLockedError
from memory.vectors import (
    VectorIndex,
    VectorStore,
    load_or_create_scope_key,
    open_vector_store,
    scrub_chroma_dir,
)
from tests.memory.conftest import OpenVectors

ALICE = Scope("acme", "alice@example.com")
BOB = Scope("acme", "bob")
ALICE_ELSEWHERE = Scope("globex", "alice@example.com")
ACME_SHARED = Scope("acme")
DIM = 16


def vectors(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)


@pytest.fixture
def store(tmp_path: Path, open_vectors: OpenVectors) -> VectorStore:
    """Embedded, and (``slow``) on a Chroma server: see tests/memory/conftest.py."""
    return open_vectors(tmp_path)


@pytest.fixture
def memories(store: VectorStore) -> VectorIndex:
    return store.index("memories")


def test_query_returns_nearest_first_with_cosine_scores(memories: VectorIndex) -> None:
    data = vectors(40, seed=1)
    memories.add(ALICE, [f"m{i}" for i in range(40)], data)
    hits = memories.query(ALICE, data[7] * 3.0, k=5)  # scale does not matter: cosine
    assert hits[0].id == "m7"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 5
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    expected = np.argsort(-(unit @ unit[7]))[:5]
    assert [hit.id for hit in hits] == [f"m{i}" for i in expected]


def test_users_and_tenants_are_isolated(memories: VectorIndex) -> None:
    shared_ids = ["x1", "x2", "x3"]
    memories.add(ALICE, shared_ids, vectors(3, seed=2))
    memories.add(BOB, shared_ids, vectors(3, seed=3))
    memories.add(ALICE_ELSEWHERE, ["g1"], vectors(1, seed=4))
    memories.add(ACME_SHARED, ["doc1"], vectors(1, seed=5))
    probe = vectors(1, seed=3)[0]  # Bob's x1 exactly
    assert memories.query(BOB, probe, k=1)[0].score == pytest.approx(1.0, abs=1e-5)
    assert memories.query(ALICE, probe, k=1)[0].score < 0.99
    assert {hit.id for hit in memories.query(ALICE_ELSEWHERE, probe, k=10)} == {"g1"}
    assert {hit.id for hit in memories.query(ACME_SHARED, probe, k=10)} == {"doc1"}
    assert memories.query(Scope("acme", "carol"), probe, k=10) == []

    memories.delete(ALICE, ["x1"])
    assert memories.count(ALICE) == 2
    assert memories.count(BOB) == 3
    memories.delete_scope(BOB)
    assert memories.count(BOB) == 0
    assert memories.count(ALICE) == 2
    assert memories.count(ALICE_ELSEWHERE) == 1


def test_namespaces_are_separate(store: VectorStore) -> None:
    store.index("memories").add(ALICE, ["same-id"], vectors(1, seed=6))
    chunks = store.index("chunks")
    assert chunks.count(ALICE) == 0
    assert chunks.query(ALICE, vectors(1, seed=6)[0]) == []


def test_delete_by_id_and_by_scope(memories: VectorIndex) -> None:
    data = vectors(10, seed=7)
    memories.add(ALICE, [f"m{i}" for i in range(10)], data)
    memories.delete(ALICE, ["m0", "m5", "not-there"])
    remaining = {hit.id for hit in memories.query(ALICE, data[0], k=20)}
    assert remaining == {f"m{i}" for i in range(10)} - {"m0", "m5"}
    assert memories.count(ALICE) == 8
    memories.delete_scope(ALICE)
    assert memories.query(ALICE, data[0], k=20) == []
    assert memories.count(ALICE) == 0
    memories.delete_scope(ALICE)  # erasing twice is fine
    memories.add(ALICE, ["fresh"], data[:1])  # and the scope can be used again
    assert [hit.id for hit in memories.query(ALICE, data[0])] == ["fresh"]


def test_add_is_idempotent_and_replaces_vectors(memories: VectorIndex) -> None:
    data = vectors(3, seed=8)
    memories.add(ALICE, ["a", "b", "c"], data)
    memories.add(ALICE, ["a", "b", "c"], data)  # a retried write
    assert memories.count(ALICE) == 3
    replacement = vectors(1, seed=9)
    memories.add(ALICE, ["a"], replacement)
    assert memories.count(ALICE) == 3
    hit = memories.query(ALICE, replacement[0], k=1)[0]
    assert (hit.id, round(hit.score, 4)) == ("a", 1.0)


def test_query_can_be_restricted_to_allowed_ids(memories: VectorIndex) -> None:
    data = vectors(20, seed=10)
    memories.add(ALICE, [f"m{i}" for i in range(20)], data)
    hits = memories.query(ALICE, data[3], k=5, ids={"m10", "m11", "m3", "elsewhere"})
    assert {hit.id for hit in hits} == {"m10", "m11", "m3"}
    assert hits[0].id == "m3"
    assert memories.query(ALICE, data[3], k=5, ids=set()) == []


def test_vectors_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    data = vectors(30, seed=11)
    with VectorStore.open_local(path) as first:
        first.index("memories").add(ALICE, [f"m{i}" for i in range(30)], data)
        before = first.index("memories").query(ALICE, data[2], k=5)
    with VectorStore.open_local(path) as second:
        index = second.index("memories")
        assert index.count(ALICE) == 30
        after = index.query(ALICE, data[2], k=5)
    assert [hit.id for hit in after] == [hit.id for hit in before]
    np.testing.assert_allclose([h.score for h in after], [h.score for h in before], atol=1e-6)


def test_a_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from memory.vectors import VectorStore\n"
            f"store = VectorStore.open_local(Path({str(path)!r}))\n"
            "print('ready', flush=True); sys.stdin.readline(); store.close()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(VectorIndexLockedError) as caught:
            VectorStore.open_local(path)
        message = str(caught.value)
        assert f"pid {holder.pid}" in message
        assert "RELAYGRAPH_CHROMA_URL" in message
        assert caught.value.code == "vector_index_locked"
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0
    with VectorStore.open_local(path) as reopened:  # released when its owner closed
        assert reopened.index("memories").count(ALICE) == 0


def test_a_second_store_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    with VectorStore.open_local(tmp_path / "chroma") as store:
        with pytest.raises(VectorIndexLockedError):
            VectorStore.open_local(Path(store.location))


def test_chroma_files_hold_no_identifiers(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    with VectorStore.open_local(path) as opened:
        index = opened.index("memories")
        index.add(Scope("tenant-zeta-9", "alice@example.com"), ["opaque-1"], vectors(1, 12))
        index.add(Scope("tenant-zeta-9"), ["opaque-2"], vectors(1, 13))
    leaked = [
        str(file)
        for file in path.rglob("*")
        if file.is_file()
        and (b"alice@example.com" in file.read_bytes() or b"tenant-zeta-9" in file.read_bytes())
    ]
    assert leaked == []
    assert any(b"opaque-1" in f.read_bytes() for f in path.rglob("*") if f.is_file())


def test_partitions_stay_correct_when_the_cache_evicts(tmp_path: Path) -> None:
    with VectorStore.open_local(tmp_path / "chroma", cache_max_vectors=10) as small:
        index = small.index("memories")
        users = [Scope("acme", f"user{i}") for i in range(4)]
        for number, scope in enumerate(users):
            index.add(scope, [f"{number}-{i}" for i in range(8)], vectors(8, seed=20 + number))
        for number, scope in enumerate(users):
            probe = vectors(8, seed=20 + number)[5]
            assert index.query(scope, probe, k=1)[0].id == f"{number}-5"
        assert small._cached_vectors <= 10 + 8


@pytest.mark.parametrize(
    ("ids", "data", "message"),
    [
        (["a"], np.zeros((1, DIM)), "zero vector"),
        (["a"], np.full((1, DIM), np.nan), "NaN"),
        (["a", "b"], np.ones((1, DIM)), "one row per id"),
        (["a", "a"], np.ones((2, DIM)), "duplicate ids"),
        ([""], np.ones((1, DIM)), "bad vector id"),
        ("abc", np.ones((3, DIM)), "not one string"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    memories: VectorIndex, ids: list[str], data: np.ndarray, message: str
) -> None:
    with pytest.raises(VectorIndexError, match=message):
        memories.add(ALICE, ids, data)
    assert memories.count(ALICE) == 0


def test_dimension_change_and_bad_queries_are_refused(store: VectorStore) -> None:
    memories = store.index("memories")
    memories.add(ALICE, ["a"], vectors(1, seed=14))
    with pytest.raises(VectorIndexError, match="re-embed"):
        memories.add(ALICE, ["b"], np.ones((1, DIM + 1)))
    with pytest.raises(VectorIndexError, match="re-embed"):
        memories.query(ALICE, np.ones(DIM + 1))
    with pytest.raises(VectorIndexError, match="k must be"):
        memories.query(ALICE, np.ones(DIM), k=0)
    with pytest.raises(VectorIndexError, match="namespace"):
        store.index("Memories!")
    with pytest.raises(VectorIndexError, match="tenant"):
        Scope("")
    assert memories.count(ALICE) == 1


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    opened = VectorStore.open_local(tmp_path / "chroma")
    index = opened.index("memories")
    opened.close()
    with pytest.raises(VectorIndexError, match="closed"):
        index.count(ALICE)


def test_scope_key_is_created_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "scope.key"
    key = load_or_create_scope_key(key_file)
    assert len(key) == 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_or_create_scope_key(key_file) == key


# --- a real Chroma server (HttpClient) ---------------------------------------------


@pytest.mark.slow
def test_http_client_mode_against_a_chroma_server(chroma_url: str) -> None:
    key = b"k" * 32
    data = vectors(25, seed=15)
    with VectorStore.connect(chroma_url, scope_key=key) as first:
        index = first.index("memories")
        index.add(ALICE, [f"m{i}" for i in range(25)], data)
        index.add(BOB, ["b"], data[:1])
        hits = index.query(ALICE, data[4], k=3)
        assert hits[0].id == "m4" and hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert {h.id for h in index.query(ALICE, data[4], k=3, ids=["m1", "m2"])} == {"m1", "m2"}
    # A second client (another process would do the same) sees the same partitions.
    with VectorStore.connect(chroma_url, scope_key=key) as second:
        index = second.index("memories")
        assert index.count(ALICE) == 25
        index.delete(ALICE, ["m4"])
        assert index.query(ALICE, data[4], k=1)[0].id != "m4"
        index.delete_scope(ALICE)
        assert index.query(ALICE, data[4], k=1) == []
        assert index.count(BOB) == 1


def test_bad_chroma_urls_are_refused() -> None:
    with pytest.raises(VectorIndexError, match="bad Chroma URL"):
        VectorStore.connect("localhost:8000", scope_key=b"k" * 32)
    with pytest.raises(VectorIndexError, match="16 bytes"):
        VectorStore.connect("http://127.0.0.1:9", scope_key=b"short")


@pytest.mark.slow
def test_settings_choose_the_embedded_store_or_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chroma_url: str
) -> None:
    from runtime.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    assert settings.embedding_model == "local:all-MiniLM-L6-v2"
    assert settings.chroma_url is None
    assert settings.chroma_dir == (tmp_path / "data" / "chroma").resolve()
    assert settings.models_dir == settings.data_dir / "models"
    with open_vector_store(
        path=settings.chroma_dir, url=settings.chroma_url, cache_max_vectors=5
    ) as embedded:
        assert embedded.location == str(settings.chroma_dir)
        embedded.index("memories").add(ALICE, ["e"], vectors(1, seed=30))

    monkeypatch.setenv("RELAYGRAPH_CHROMA_URL", chroma_url)
    monkeypatch.setenv("RELAYGRAPH_EMBEDDING_MODEL", "openai:text-embedding-3-small")
    served = Settings(data_dir=tmp_path / "data")
    assert served.embedding_model == "openai:text-embedding-3-small"
    with open_vector_store(path=served.chroma_dir, url=served.chroma_url) as remote:
        assert remote.location == chroma_url
        index = remote.index("memories")
        assert index.count(ALICE) == 0  # the server's data, not the embedded directory's
        index.add(ALICE, ["s"], vectors(1, seed=31))
        assert index.count(ALICE) == 1
        index.delete_scope(ALICE)


# --- residue: hnswlib's uninitialised capacity, orphaned segments, deleted vectors ------


def _segments(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and (p / "header.bin").exists())


def test_scrub_zeroes_unused_hnsw_capacity_and_keeps_the_vectors(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    data = vectors(5, seed=40)
    with VectorStore.open_local(path) as opened:
        opened.index("memories").add(ALICE, [f"m{i}" for i in range(5)], data)
    (segment,) = _segments(path)
    # What hnswlib leaves in the capacity it persists unused: stray heap bytes.
    for name in ("length.bin", "data_level0.bin"):
        file = segment / name
        raw = bytearray(file.read_bytes())
        raw[-64:] = b"stray heap: maria.jensen@example.dk 010190-1234 ".ljust(64, b"!")
        file.write_bytes(bytes(raw))
    assert scrub_chroma_dir(path)["bytes_zeroed"] >= 128
    for file in segment.iterdir():
        assert b"maria.jensen" not in file.read_bytes(), file
    assert scrub_chroma_dir(path)["bytes_zeroed"] == 0  # nothing left to zero
    with VectorStore.open_local(path) as reopened:  # the index still reads and answers
        hits = reopened.index("memories").query(ALICE, data[3], k=2)
        assert hits[0].id == "m3" and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_purge_residue_removes_dropped_collections_and_deleted_vectors(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    # Entries of ±0.25 over 16 dimensions have norm 1 exactly, so the bytes are the same
    # however a layer normalises them: a byte search can find (or miss) each vector.
    data = np.random.default_rng(41).choice([-0.25, 0.25], size=(12, DIM)).astype(np.float32)
    with VectorStore.open_local(path) as opened:
        index = opened.index("store")
        index.add(ALICE, ["a1", "a2"], data[:2])
        index.add(ACME_SHARED, [f"s{i}" for i in range(10)], data[2:])
        assert len(_segments(path)) == 2
        index.delete_scope(ALICE)
        index.delete(ACME_SHARED, ["s0", "s1"])
        assert index.rebuild(ACME_SHARED) == 8
        assert index.rebuild(Scope("acme", "nobody")) == 0
        residue = opened.purge_residue()
        assert residue["segments_removed"] >= 2  # ALICE's, and the shared one's old copy
        assert len(_segments(path)) == 1
        # The store works on after the client was replaced.
        assert index.count(ACME_SHARED) == 8 and index.count(ALICE) == 0
        assert {h.id for h in index.query(ACME_SHARED, data[2], k=20)} == {
            f"s{i}" for i in range(2, 10)
        }
        index.add(ALICE, ["a3"], data[:1])
        assert index.query(ALICE, data[0], k=1)[0].id == "a3"
    # The deleted vectors' bytes are gone from every file, SQLite's free pages included.
    deleted = [data[0], data[1], data[2], data[3]]  # a1, a2, s0, s1 (a3 reuses data[0])
    blobs = b"".join(f.read_bytes() for f in path.rglob("*") if f.is_file())
    assert data[7].tobytes() in blobs, "control: a surviving vector (s5) is found"
    assert not any(vector.tobytes() in blobs for vector in deleted[1:])


def test_purge_residue_is_a_no_op_on_a_server(store: VectorStore) -> None:
    store.index("memories").add(ALICE, ["x"], vectors(1, seed=42))
    result = store.purge_residue()
    if store.location.startswith("http"):
        assert result == {"bytes_zeroed": 0, "segments_removed": 0}
    assert store.index("memories").count(ALICE) == 1


# --- crash-safe rebuild: the copy is built under a temporary name, then swapped in ------

REBUILD_CRASH_POINTS = ["copying", "dropping the original", "renaming the copy"]


class SimulatedCrash(Exception):
    pass


def _crash_during_rebuild(store: VectorStore, point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``rebuild`` stop at ``point`` as if the process died there."""
    from chromadb.api.models.Collection import Collection

    if point == "copying":
        store._max_batch = 3  # several batches, so the copy is left half-written
        upsert = Collection.upsert
        copied: list[int] = []

        def upsert_then_crash(self: Collection, *args: object, **kwargs: object) -> None:
            if self.name.endswith("-rebuild") and copied:
                raise SimulatedCrash(point)
            copied.append(1)
            upsert(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Collection, "upsert", upsert_then_crash)
    elif point == "dropping the original":

        def refuse_drop(name: str) -> None:
            raise SimulatedCrash(point)

        monkeypatch.setattr(store._client, "delete_collection", refuse_drop)
    else:

        def refuse_rename(self: Collection, *args: object, **kwargs: object) -> None:
            raise SimulatedCrash(point)

        monkeypatch.setattr(Collection, "modify", refuse_rename)


def _files_bytes(path: Path) -> bytes:
    return b"".join(f.read_bytes() for f in path.rglob("*") if f.is_file())


@pytest.mark.parametrize("point", REBUILD_CRASH_POINTS)
def test_a_crash_during_rebuild_loses_no_vector_and_erased_ones_stay_gone(
    tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chroma"
    # ±0.25 over 16 dimensions: unit norm exactly, so each vector's bytes are searchable.
    data = np.random.default_rng(50).choice([-0.25, 0.25], size=(10, DIM)).astype(np.float32)
    ids = [f"s{i}" for i in range(10)]
    erased, kept = ids[:3], ids[3:]
    store = VectorStore.open_local(path)
    index = store.index("store")
    index.add(ACME_SHARED, ids, data)
    index.delete(ACME_SHARED, erased)
    with monkeypatch.context() as patch:
        _crash_during_rebuild(store, point, patch)
        with pytest.raises(SimulatedCrash):
            index.rebuild(ACME_SHARED)
    # A temporary copy (or only the copy) is what a crash at this point leaves.
    names = {c.name for c in store._client.list_collections()}
    assert any(name.endswith("-rebuild") for name in names)
    assert list((path / "relaygraph-rebuilds").iterdir()), "the rebuild is marked"
    store._release_client()  # the process dies: no close(), no scrub
    store._lock.release()  # type: ignore[union-attr]

    with VectorStore.open_local(path) as reopened:
        index = reopened.index("store")
        assert index.count(ACME_SHARED) == len(kept)
        hits = index.query(ACME_SHARED, data[5], k=20)
        assert {hit.id for hit in hits} == set(kept)
        for position in range(3, 10):  # every survivor is still its own nearest neighbour
            best = index.query(ACME_SHARED, data[position], k=1)[0]
            assert best.id == ids[position] and best.score == pytest.approx(1.0, abs=1e-5)
        names = {c.name for c in reopened._client.list_collections()}
        assert not any(name.endswith("-rebuild") for name in names)
        assert not list((path / "relaygraph-rebuilds").iterdir())
    blobs = _files_bytes(path)
    assert data[4].tobytes() in blobs, "control: a surviving vector is found"
    assert not any(data[i].tobytes() in blobs for i in range(3)), "an erased vector remains"


def test_a_rebuild_after_an_interrupted_one_finishes_it_on_the_same_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = vectors(6, seed=51)
    with VectorStore.open_local(tmp_path / "chroma") as store:
        index = store.index("memories")
        index.add(ALICE, [f"m{i}" for i in range(6)], data)
        with monkeypatch.context() as patch:
            _crash_during_rebuild(store, "renaming the copy", patch)
            with pytest.raises(SimulatedCrash):
                index.rebuild(ALICE)
        # Only the copy holds Alice's vectors now; the next rebuild puts it in place.
        assert index.rebuild(ALICE) == 6
        assert index.count(ALICE) == 6
        assert index.query(ALICE, data[2], k=1)[0].id == "m2"
        assert not any(c.name.endswith("-rebuild") for c in store._client.list_collections())


def test_a_failed_rename_is_finished_before_the_scope_is_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chromadb.api.models.Collection import Collection
    from chromadb.errors import InternalError

    data = vectors(5, seed=55)
    with VectorStore.open_local(tmp_path / "chroma") as store:
        index = store.index("memories")
        index.add(ALICE, [f"m{i}" for i in range(4)], data[:4])
        rename = Collection.modify
        failures = [1, 1]  # the rebuild's rename, and its immediate retry, fail

        def flaky_rename(self: Collection, *args: object, **kwargs: object) -> None:
            if failures:
                failures.pop()
                raise InternalError("disk full")
            rename(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Collection, "modify", flaky_rename)
        with pytest.raises(VectorIndexError, match="no vector is lost"):
            index.rebuild(ALICE)
        # Only the copy holds Alice's vectors; a new write must not start an empty original.
        index.add(ALICE, ["m4"], data[4:])
        assert index.count(ALICE) == 5
    with VectorStore.open_local(tmp_path / "chroma") as reopened:
        index = reopened.index("memories")
        assert index.count(ALICE) == 5
        assert {hit.id for hit in index.query(ALICE, data[0], k=10)} == {f"m{i}" for i in range(5)}


def test_erasing_a_scope_also_drops_an_interrupted_rebuild_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with VectorStore.open_local(tmp_path / "chroma") as store:
        index = store.index("memories")
        index.add(ALICE, ["m0", "m1"], vectors(2, seed=52))
        with monkeypatch.context() as patch:
            _crash_during_rebuild(store, "dropping the original", patch)
            with pytest.raises(SimulatedCrash):
                index.rebuild(ALICE)
        index.delete_scope(ALICE)
        assert index.count(ALICE) == 0
        assert store._client.count_collections() == 0
        assert not list((tmp_path / "chroma" / "relaygraph-rebuilds").iterdir())


@pytest.mark.slow
def test_a_process_killed_mid_rebuild_loses_no_vector(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    data = vectors(8, seed=53)
    with VectorStore.open_local(path) as store:
        store.index("memories").add(ALICE, [f"m{i}" for i in range(8)], data)
        store.index("memories").delete(ALICE, ["m0"])
    # The child dies (os._exit: no clean-up at all) right after the original is dropped,
    # when only the temporary copy holds Alice's vectors.
    script = (
        "import os\n"
        "from pathlib import Path\n"
        "from chromadb.api.models.Collection import Collection\n"
        "from memory.types import Scope\n"
        "from memory.vectors import VectorStore\n"
        "Collection.modify = lambda self, *a, **k: os._exit(17)\n"
        f"store = VectorStore.open_local(Path({str(path)!r}))\n"
        f"store.index('memories').rebuild(Scope({ALICE.tenant!r}, {ALICE.user!r}))\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 17, child.stderr
    with VectorStore.open_local(path) as reopened:
        index = reopened.index("memories")
        assert index.count(ALICE) == 7
        assert {hit.id for hit in index.query(ALICE, data[3], k=10)} == {
            f"m{i}" for i in range(1, 8)
        }


@pytest.mark.slow
def test_on_a_server_the_next_user_of_the_scope_finishes_an_interrupted_rebuild(
    chroma_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secrets

    key = secrets.token_bytes(32)
    data = vectors(5, seed=54)
    crashed = VectorStore.connect(chroma_url, scope_key=key)
    crashed.index("memories").add(ALICE, [f"m{i}" for i in range(5)], data)
    with monkeypatch.context() as patch:
        _crash_during_rebuild(crashed, "renaming the copy", patch)
        with pytest.raises(SimulatedCrash):
            crashed.index("memories").rebuild(ALICE)
    with VectorStore.connect(chroma_url, scope_key=key) as other:  # another process
        index = other.index("memories")
        assert index.count(ALICE) == 5
        assert index.query(ALICE, data[1], k=1)[0].id == "m1"
        index.delete_scope(ALICE)
        assert index.count(ALICE) == 0
    crashed.close()
