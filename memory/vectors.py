"""The vector index: Chroma holds vectors and opaque ids, one collection per scope.

Why this shape:

- **Privacy.** Chroma keeps deleted documents' text and metadata in its SQLite files, so
  it gets no text and no metadata at all: only ids that mean nothing outside our SQL
  tables, and vectors. Even collection names carry no identifiers: they are an HMAC of
  (namespace, tenant, user) under a key kept outside Chroma, so its files cannot be
  linked to a person once the key is gone or the collection deleted.
- **Speed.** A ``where`` filter selecting one user of 100 in a 100k-vector collection
  takes ~51 ms in Chroma 1.5; a collection of one user's ~1k vectors answers in ~1.3 ms.
  So every (tenant, user) scope is its own collection. With the embedded client this
  process is the only writer (a file lock guarantees it), so each partition is also held
  in memory as a numpy matrix, loaded lazily and bounded by an LRU: exact search over
  1k vectors takes ~0.04 ms and is exact (recall 1.0). Chroma stays the durable copy.
  With a Chroma server (``connect``) other processes write too, so queries go to Chroma.
- **Erasure.** ``delete`` removes ids; ``delete_scope`` drops a scope's collection;
  ``rebuild`` copies a scope's surviving vectors into a fresh collection (hnswlib only marks
  deleted vectors). ``purge_residue`` then leaves no residue on disk (below).
- **Crash-safe rebuild.** The copy is written under a temporary name (``NAME-rebuild``)
  while the original stays whole; only then is the original dropped and the copy renamed
  (``Collection.modify(name=...)``, one SQLite update). At every instant one complete copy
  is durable: with the original still there, a leftover copy may be partial and is
  dropped; without it, the copy is complete and takes its place. Embedded, a marker file
  per rebuild (``relaygraph-rebuilds/NAME``, opaque names only) makes ``open_local``
  finish and redo interrupted rebuilds (so the erased vectors still leave the files);
  on a server, whoever next opens that scope finishes it.
- **Residue.** hnswlib allocates an index's capacity with ``malloc`` and writes all of it
  when it first persists a segment (``length.bin``, ``data_level0.bin``), so the unused
  capacity holds uninitialised process memory: stray bytes of any text this process
  handled, whoever it belonged to. Chroma 1.5 also leaves a deleted collection's segment
  directory behind, and its SQLite file keeps deleted rows in free pages.
  ``scrub_chroma_dir`` zeroes the unused capacity (it never holds an element: hnswlib
  zeroes an element's slot before using it and rereads the whole file on load), removes
  orphaned segment directories and compacts ``chroma.sqlite3``. It runs on open, on close
  and, with the client released, after every erasure (``purge_residue``).

All vectors are stored L2-normalised and compared by cosine similarity; ``VectorHit.score``
is that similarity (1.0 = same direction).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import shutil
import sqlite3
import struct
import threading
from collections import OrderedDict
from collections.abc import Collection as AbstractCollection
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
from filelock import FileLock, Timeout

from memory.types import Scope, VectorHit, VectorIndexError, VectorIndexLockedError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

_NAMESPACE = re.compile(r"^[a-z0-9]{1,32}$")
_MAX_ID_LENGTH = 256
_LOCK_FILE = "relaygraph.lock"
_OWNER_FILE = "relaygraph.owner"
_SCOPE_KEY_FILE = "relaygraph-scope.key"
_REBUILD_MARKERS = "relaygraph-rebuilds"
_REBUILD_SUFFIX = "-rebuild"
_COLLECTION_NAME = re.compile(r"^rg-[a-z0-9]{1,32}-[0-9a-f]{40}$")
_COLLECTION_CONFIGURATION: Any = {"hnsw": {"space": "cosine"}}
DEFAULT_CACHE_MAX_VECTORS = 250_000  # ~384 MB of 384-d float32
_CHROMA_SQLITE = "chroma.sqlite3"
_SEGMENT_DIR = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# hnswlib's persisted header (PERSISTENCE_VERSION 1): int32 version, then size_t
# offsetLevel0, max_elements, cur_element_count, size_data_per_element, ...
_HNSW_HEADER = struct.Struct("<iQQQQ")
_ZEROS = bytes(1 << 20)


def _zero_tail(path: Path, start: int) -> int:
    """Zero ``path`` from byte ``start`` to its end; returns how many bytes were not zero.

    Blocks that are already zero (sparse holes, mostly) are only read, not rewritten.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    dirty = 0
    with path.open("r+b") as handle:
        position = start
        while position < size:
            handle.seek(position)
            block = handle.read(min(len(_ZEROS), size - position))
            if not block:
                break
            if block.count(0) != len(block):
                dirty += len(block) - block.count(0)
                handle.seek(position)
                handle.write(_ZEROS[: len(block)])
            position += len(block)
        if dirty:
            handle.flush()
            os.fsync(handle.fileno())
    return dirty


def _fsync_directory(path: Path) -> None:
    """Make a file's creation or removal in ``path`` durable (a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def scrub_hnsw_segment(directory: Path) -> int:
    """Zero the unused capacity of one HNSW segment's files (see the module docstring).

    Only bytes past the elements the header counts are touched. Returns bytes zeroed.

    Raises:
        VectorIndexError: a header this code does not understand (a newer Chroma).
    """
    try:
        header = (directory / "header.bin").read_bytes()
    except FileNotFoundError:
        return 0
    if len(header) < _HNSW_HEADER.size:
        return 0
    version, _offset, _capacity, count, per_element = _HNSW_HEADER.unpack_from(header)
    if version != 1 or per_element <= 0:
        raise VectorIndexError(
            f"unknown HNSW segment format in {directory} (version {version})",
            hint="this Chroma version is newer than relaygraph knows; pin chromadb 1.5",
        )
    zeroed = _zero_tail(directory / "data_level0.bin", count * per_element)
    zeroed += _zero_tail(directory / "length.bin", count * 4)  # one float per element
    return zeroed


def scrub_chroma_dir(
    path: Path, *, compact: bool = True, busy_timeout_ms: int = 30_000
) -> dict[str, int]:
    """Leave no residue in an embedded Chroma directory no client has open.

    Zeroes the unused capacity of every HNSW segment, removes segment directories of
    deleted collections and (``compact``) compacts ``chroma.sqlite3`` (``secure_delete``,
    ``VACUUM``: deleted rows' vectors leave its free pages). Returns counts:
    ``bytes_zeroed`` (bytes that were not zero), ``segments_removed``.
    """
    path = Path(path)
    result = {"bytes_zeroed": 0, "segments_removed": 0}
    database = path / _CHROMA_SQLITE
    live: set[str] | None = None
    if database.exists():
        connection = sqlite3.connect(
            str(database), timeout=busy_timeout_ms / 1000, isolation_level=None
        )
        try:
            connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            try:
                live = {row[0] for row in connection.execute("SELECT id FROM segments")}
            except sqlite3.OperationalError:  # not initialised yet
                live = None
            if compact:
                connection.execute("PRAGMA secure_delete=ON")
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                connection.execute("VACUUM")
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
    for child in sorted(path.iterdir()) if path.exists() else ():
        if not child.is_dir() or not _SEGMENT_DIR.match(child.name):
            continue
        if live is not None and child.name not in live:
            shutil.rmtree(child, ignore_errors=True)
            result["segments_removed"] += 1
        else:
            result["bytes_zeroed"] += scrub_hnsw_segment(child)
    return result


def load_or_create_scope_key(path: Path) -> bytes:
    """The secret that turns scopes into collection names, created (0600) on first use.

    Several processes or machines sharing one Chroma server must share this key.
    """
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
    if len(key) < 16:
        raise VectorIndexError(
            f"the scope key in {path} is shorter than 16 bytes",
            hint="restore it from a backup; a new key orphans every stored vector",
        )
    return key


def open_vector_store(
    *,
    path: Path,
    url: str | None = None,
    scope_key: bytes | None = None,
    cache_max_vectors: int = DEFAULT_CACHE_MAX_VECTORS,
) -> VectorStore:
    """The configured store: a Chroma server when ``url`` is set, else embedded in ``path``.

    Without an explicit ``scope_key`` the key file in ``path`` is used (created once), so
    processes of one machine sharing a server agree; several machines need the same key.

    Raises:
        VectorIndexLockedError: embedded, and another process owns ``path``.
        VectorIndexError: bad URL or unreachable server.
    """
    if url:
        key = scope_key or load_or_create_scope_key(Path(path) / _SCOPE_KEY_FILE)
        return VectorStore.connect(url, scope_key=key)
    return VectorStore.open_local(path, scope_key=scope_key, cache_max_vectors=cache_max_vectors)


class _Partition:
    """One scope's vectors in memory for exact search."""

    __slots__ = ("ids", "matrix", "positions")

    def __init__(self, ids: list[str], matrix: np.ndarray) -> None:
        self.ids = ids
        self.matrix = matrix
        self.positions = {item: row for row, item in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def upsert(self, ids: list[str], vectors: np.ndarray) -> None:
        new_rows = []
        for item, vector in zip(ids, vectors, strict=True):
            row = self.positions.get(item)
            if row is None:
                new_rows.append((item, vector))
            else:
                self.matrix[row] = vector
        if new_rows:
            start = len(self.ids)
            added = np.stack([vector for _, vector in new_rows])
            self.matrix = added if start == 0 else np.concatenate([self.matrix, added])
            for offset, (item, _) in enumerate(new_rows):
                self.ids.append(item)
                self.positions[item] = start + offset

    def remove(self, ids: Sequence[str]) -> None:
        doomed = {self.positions[item] for item in ids if item in self.positions}
        if not doomed:
            return
        keep = [row for row in range(len(self.ids)) if row not in doomed]
        self.ids = [self.ids[row] for row in keep]
        self.matrix = self.matrix[keep]
        self.positions = {item: row for row, item in enumerate(self.ids)}

    def search(
        self, query: np.ndarray, k: int, allowed: AbstractCollection[str] | None
    ) -> list[VectorHit]:
        if allowed is None:
            rows = None
            scores = self.matrix @ query if len(self.ids) else np.zeros(0, dtype=np.float32)
        else:
            rows = np.fromiter(
                (self.positions[item] for item in allowed if item in self.positions), dtype=np.intp
            )
            scores = self.matrix[rows] @ query if len(rows) else np.zeros(0, dtype=np.float32)
        if len(scores) == 0:
            return []
        if k < len(scores):
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
        else:
            top = np.argsort(-scores, kind="stable")
        chosen = top if rows is None else rows[top]
        return [
            VectorHit(self.ids[row], float(score))
            for row, score in zip(chosen, scores[top], strict=True)
        ]


class VectorStore:
    """Owns the Chroma client (and, when embedded, the data directory lock).

    Open with ``open_local`` (embedded ``PersistentClient``, one owning process) or
    ``connect`` (``HttpClient`` to a Chroma server); get per-namespace views with
    ``index("memories")``. Methods are synchronous (Chroma's client is); call them through
    ``asyncio.to_thread`` from async code, except cached queries, which take microseconds.
    """

    def __init__(
        self,
        client: ClientAPI,
        *,
        scope_key: bytes,
        cache_max_vectors: int | None,
        lock: FileLock | None = None,
        location: str,
    ) -> None:
        self._client = client
        self._scope_key = scope_key
        self._cache_max_vectors = cache_max_vectors
        self._lock = lock
        self.location = location
        self._mutex = threading.RLock()
        self._collections: dict[str, Collection] = {}
        self._unfinished_rebuilds: set[str] = set()
        self._cache: OrderedDict[str, _Partition] = OrderedDict()
        self._cached_vectors = 0
        self._max_batch = client.get_max_batch_size()
        self._closed = False

    # --- opening ---------------------------------------------------------------------

    @classmethod
    def open_local(
        cls,
        path: Path,
        *,
        scope_key: bytes | None = None,
        cache_max_vectors: int = DEFAULT_CACHE_MAX_VECTORS,
    ) -> VectorStore:
        """Open (creating) the embedded Chroma directory ``path``, owned by this process.

        Raises:
            VectorIndexLockedError: another process has it open.
        """
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        path = Path(path).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        # Not thread-local: a store opened on a worker thread may be closed from the loop's.
        lock = FileLock(path / _LOCK_FILE, timeout=0, is_singleton=False, thread_local=False)
        owner_file = path / _OWNER_FILE
        try:
            lock.acquire()
        except Timeout:
            try:
                owner = owner_file.read_text().strip() or "unknown"
            except OSError:
                owner = "unknown"
            raise VectorIndexLockedError(
                f"the vector index at {path} is open in another process (pid {owner})",
                hint="embedded Chroma is owned by one process: stop that process, or run "
                f"a Chroma server (chroma run --path {path}) and set RELAYGRAPH_CHROMA_URL "
                "so every process connects to it",
            ) from None
        try:
            owner_file.write_text(str(os.getpid()))
            key = scope_key or load_or_create_scope_key(path / _SCOPE_KEY_FILE)
            scrub_chroma_dir(path, compact=False)  # a crashed owner may have left residue
            client = chromadb.PersistentClient(
                path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
            )
            store = cls(
                client,
                scope_key=key,
                cache_max_vectors=cache_max_vectors,
                lock=lock,
                location=str(path),
            )
        except BaseException:
            lock.release()
            raise
        try:
            if store.recover_rebuilds():
                store.purge_residue()  # the interrupted rebuilds' old segments
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def connect(
        cls, url: str, *, scope_key: bytes, headers: dict[str, str] | None = None
    ) -> VectorStore:
        """Connect to a Chroma server at ``url`` (``http://host:port``); no local cache.

        Raises:
            VectorIndexError: the URL is malformed or the server does not answer.
        """
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise VectorIndexError(
                f"bad Chroma URL {url!r}", hint="use http://host:port or https://host:port"
            )
        if len(scope_key) < 16:
            raise VectorIndexError("the scope key must be at least 16 bytes")
        ssl = parts.scheme == "https"
        try:
            client = chromadb.HttpClient(
                host=parts.hostname,
                port=parts.port or (443 if ssl else 8000),
                ssl=ssl,
                headers=headers,
                settings=ChromaSettings(anonymized_telemetry=False),
            )
        except Exception as exc:
            raise VectorIndexError(
                f"cannot reach the Chroma server at {url}: {exc}",
                hint="start it (chroma run --path DIR --port PORT) or unset RELAYGRAPH_CHROMA_URL",
            ) from exc
        return cls(client, scope_key=scope_key, cache_max_vectors=None, location=url)

    @property
    def embedded(self) -> bool:
        """True for an embedded directory this process owns (``open_local``): it is the
        only writer, so rebuilding a partition cannot lose another process's writes."""
        return self._lock is not None

    def close(self) -> None:
        """Release the directory lock; the store is unusable afterwards."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            self._collections.clear()
            self._cache.clear()
            if self._lock is not None:
                try:
                    self._release_client()
                    scrub_chroma_dir(Path(self.location), compact=False)
                finally:
                    self._lock.release()

    def _release_client(self) -> None:
        """Stop Chroma's system for this directory and forget it: its Rust side drops the
        SQLite pool and the HNSW indexes with their files, and a new client (or a reopen)
        reads the disk afresh. Chroma caches one system per path in the process."""
        from chromadb.api.shared_system_client import SharedSystemClient

        identifier = str(getattr(self._client, "_identifier", ""))
        system = SharedSystemClient._identifier_to_system.pop(identifier, None)
        SharedSystemClient._identifier_to_refcount.pop(identifier, None)
        if system is not None:
            system.stop()

    def purge_residue(self) -> dict[str, int]:
        """After deletions (erasure): make the embedded directory hold no trace of them.

        Chroma's client is released, the directory scrubbed (``scrub_chroma_dir``) and a
        fresh client opened, which rereads the scrubbed segments, so the uninitialised
        capacity in memory is gone too. With a Chroma server this is a no-op: the server
        never receives text, so its memory holds none of ours. Returns the scrub counts.
        """
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        with self._mutex:
            self._check_open()
            if self._lock is None:
                return {"bytes_zeroed": 0, "segments_removed": 0}
            self._collections.clear()
            self._release_client()
            try:
                return scrub_chroma_dir(Path(self.location))
            finally:
                self._client = chromadb.PersistentClient(
                    path=self.location, settings=ChromaSettings(anonymized_telemetry=False)
                )

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def index(self, namespace: str) -> VectorIndex:
        """The index for one kind of vector (``memories``, ``chunks``): ``[a-z0-9]{1,32}``."""
        if not _NAMESPACE.match(namespace):
            raise VectorIndexError(
                f"bad vector namespace {namespace!r}", hint="use 1-32 of [a-z0-9]"
            )
        return VectorIndex(self, namespace)

    # --- internals shared by the views ----------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise VectorIndexError(f"the vector store at {self.location} is closed")

    def collection_name(self, namespace: str, scope: Scope) -> str:
        """The opaque collection name of a scope (an HMAC; no identifier in clear)."""
        kind = "u" if scope.user else "t"
        message = "\x1f".join((namespace, scope.tenant, scope.user or "", kind))
        digest = hmac.new(self._scope_key, message.encode(), hashlib.sha256).hexdigest()
        return f"rg-{namespace}-{digest[:40]}"

    def _collection(self, name: str, *, create: bool) -> Collection | None:
        from chromadb.errors import NotFoundError

        found = self._collections.get(name)
        if found is not None:
            return found
        if self._lock is None or name in self._unfinished_rebuilds:
            # A rebuild of this scope was interrupted (on a server: perhaps by another
            # process): its copy must take the name before anything creates the name anew.
            found = self._get_collection(name)
            if found is None and self._finish_interrupted_rebuild(name) == "renamed":
                found = self._get_collection(name)
            if found is not None:
                self._collections[name] = found
                return found
            if not create:
                return None
        try:
            if create:
                found = self._client.get_or_create_collection(
                    name, configuration=_COLLECTION_CONFIGURATION, embedding_function=None
                )
            else:
                found = self._client.get_collection(name, embedding_function=None)
        except NotFoundError:
            return None
        self._collections[name] = found
        return found

    def _get_collection(self, name: str) -> Collection | None:
        from chromadb.errors import NotFoundError

        try:
            return self._client.get_collection(name, embedding_function=None)
        except NotFoundError:
            return None

    def _read_all(self, collection: Collection) -> tuple[list[str], np.ndarray]:
        ids: list[str] = []
        rows: list[np.ndarray] = []
        # One page per max batch; counting first spares Chroma an empty last page.
        for offset in range(0, collection.count(), self._max_batch):
            page = collection.get(include=["embeddings"], limit=self._max_batch, offset=offset)
            ids.extend(page["ids"])
            rows.append(np.asarray(page["embeddings"], dtype=np.float32))
        matrix = np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        return ids, matrix

    def _forget(self, name: str) -> None:
        """Drop the handle and the in-memory copy of a collection (they are reloaded)."""
        self._collections.pop(name, None)
        partition = self._cache.pop(name, None)
        if partition is not None:
            self._cached_vectors -= len(partition)

    # --- crash-safe rebuild ------------------------------------------------------------

    def _marker(self, name: str) -> Path | None:
        return None if self._lock is None else Path(self.location) / _REBUILD_MARKERS / name

    def _set_marker(self, name: str) -> None:
        self._unfinished_rebuilds.add(name)
        marker = self._marker(name)
        if marker is None:
            return
        marker.parent.mkdir(exist_ok=True)
        with marker.open("wb") as handle:
            os.fsync(handle.fileno())
        _fsync_directory(marker.parent)

    def _clear_marker(self, name: str) -> None:
        self._unfinished_rebuilds.discard(name)
        marker = self._marker(name)
        if marker is not None and marker.exists():
            marker.unlink()
            _fsync_directory(marker.parent)

    def _finish_interrupted_rebuild(self, name: str) -> str:
        """Resolve a leftover ``NAME-rebuild`` copy; returns what was done.

        ``"renamed"``: the original was already dropped, so the copy was complete and now
        carries the name. ``"dropped"``: the original is whole and the copy (perhaps
        partial) was deleted. ``"none"``: there was no copy.
        """
        temporary = self._get_collection(name + _REBUILD_SUFFIX)
        if temporary is None:
            return "none"
        self._forget(name)
        if self._get_collection(name) is None:
            temporary.modify(name=name)
            return "renamed"
        self._client.delete_collection(temporary.name)
        return "dropped"

    def _rebuild_collection(self, name: str) -> int:
        """See ``VectorIndex.rebuild``; the caller holds ``_mutex``."""
        self._finish_interrupted_rebuild(name)
        original = self._collection(name, create=False)
        if original is None:
            self._clear_marker(name)
            return 0
        self._set_marker(name)
        ids, matrix = self._read_all(original)
        self._forget(name)
        if ids:
            copy = self._client.create_collection(
                name + _REBUILD_SUFFIX,
                configuration=_COLLECTION_CONFIGURATION,
                embedding_function=None,
            )
            for start in range(0, len(ids), self._max_batch):
                stop = start + self._max_batch
                copy.upsert(ids=ids[start:stop], embeddings=matrix[start:stop])
            self._client.delete_collection(name)
            copy.modify(name=name)
            self._collections[name] = copy
        else:
            self._client.delete_collection(name)
        self._clear_marker(name)
        return len(ids)

    def recover_rebuilds(self) -> list[str]:
        """Finish rebuilds a crash interrupted (embedded: those with a marker file).

        Each is completed (a complete copy takes the name) or, when the original was still
        whole, done again, so vectors deleted before the rebuild leave the segment files.
        ``open_local`` calls this; with a server, each scope is finished when next used.
        Returns the collection names recovered. Run ``purge_residue`` afterwards.
        """
        directory = None if self._lock is None else Path(self.location) / _REBUILD_MARKERS
        if directory is None or not directory.is_dir():
            return []
        recovered = []
        with self._mutex:
            self._check_open()
            for marker in sorted(directory.iterdir()):
                if _COLLECTION_NAME.match(marker.name):
                    self._unfinished_rebuilds.add(marker.name)
                    self._rebuild_collection(marker.name)
                    recovered.append(marker.name)
        return recovered

    def _cached_partition(self, name: str) -> _Partition | None:
        """The in-memory copy of a partition, loaded from Chroma on a miss (local only)."""
        if self._cache_max_vectors is None:
            return None
        partition = self._cache.get(name)
        if partition is not None:
            self._cache.move_to_end(name)
            return partition
        collection = self._collection(name, create=False)
        ids: list[str] = []
        matrix = np.zeros((0, 0), dtype=np.float32)
        if collection is not None:
            ids, matrix = self._read_all(collection)
        partition = _Partition(ids, matrix)
        self._cache[name] = partition
        self._cached_vectors += len(partition)
        self._evict(keep=name)
        return partition

    def _evict(self, keep: str) -> None:
        assert self._cache_max_vectors is not None
        while self._cached_vectors > self._cache_max_vectors and len(self._cache) > 1:
            oldest = next(iter(self._cache))
            if oldest == keep:
                self._cache.move_to_end(oldest)
                continue
            self._cached_vectors -= len(self._cache.pop(oldest))

    def _note_resize(self, name: str, before: int) -> None:
        partition = self._cache.get(name)
        if partition is not None:
            self._cached_vectors += len(partition) - before
            self._evict(keep=name)


def _check_ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str):
        raise VectorIndexError("ids must be a sequence of strings, not one string")
    items = list(ids)
    for item in items:
        if not isinstance(item, str) or not item or len(item) > _MAX_ID_LENGTH:
            raise VectorIndexError(
                f"bad vector id {item!r}",
                hint=f"ids are non-empty strings of at most {_MAX_ID_LENGTH} characters",
            )
    if len(set(items)) != len(items):
        raise VectorIndexError("duplicate ids in one call")
    return items


def _unit_rows(vectors: Any, expected_rows: int) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != expected_rows or array.shape[1] == 0:
        raise VectorIndexError(
            f"vectors must be a 2-d array with one row per id ({expected_rows}), "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise VectorIndexError("vectors contain NaN or infinity")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms == 0).any():
        raise VectorIndexError("a zero vector has no direction and cannot be indexed")
    return array / norms


class VectorIndex:
    """One namespace of a ``VectorStore``: add, query and delete vectors per scope."""

    def __init__(self, store: VectorStore, namespace: str) -> None:
        self._store = store
        self.namespace = namespace

    def add(self, scope: Scope, ids: Sequence[str], vectors: Any) -> None:
        """Insert or replace (idempotent on retry) the vectors of ``ids`` in ``scope``.

        Raises:
            VectorIndexError: bad ids or vectors, or a dimension that differs from the
                scope's existing vectors (the embedding model changed: re-embed).
        """
        from chromadb.errors import ChromaError

        items = _check_ids(ids)
        matrix = _unit_rows(vectors, len(items))
        if not items:
            return
        store = self._store
        name = store.collection_name(self.namespace, scope)
        with store._mutex:
            store._check_open()
            partition = store._cached_partition(name)
            if partition is not None and len(partition):
                if partition.matrix.shape[1] != matrix.shape[1]:
                    raise self._dimension_error(partition.matrix.shape[1], matrix.shape[1])
            collection = store._collection(name, create=True)
            assert collection is not None
            try:
                for start in range(0, len(items), store._max_batch):
                    stop = start + store._max_batch
                    collection.upsert(ids=items[start:stop], embeddings=matrix[start:stop])
            except (ChromaError, ValueError) as exc:
                # Some batches may have landed: let the cache reload from Chroma.
                if store._cache.pop(name, None) is not None and partition is not None:
                    store._cached_vectors -= len(partition)
                if "dimension" in str(exc).lower():
                    raise self._dimension_error(None, matrix.shape[1]) from exc
                raise VectorIndexError(f"Chroma refused the vectors: {exc}") from exc
            if partition is not None:
                before = len(partition)
                partition.upsert(items, matrix)
                store._note_resize(name, before)

    def query(
        self,
        scope: Scope,
        vector: Any,
        k: int = 5,
        *,
        ids: AbstractCollection[str] | None = None,
    ) -> list[VectorHit]:
        """The ``k`` nearest vectors in ``scope``, best first.

        ``ids`` restricts the search to those ids (e.g. what the SQL layer says this
        principal may see in this thread); ``None`` searches the whole scope.

        Raises:
            VectorIndexError: bad vector or ``k``.
        """
        if not isinstance(k, int) or k < 1:
            raise VectorIndexError(f"k must be a positive integer, got {k!r}")
        query = _unit_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1), 1)[0]
        if ids is not None and not ids:
            return []
        store = self._store
        name = store.collection_name(self.namespace, scope)
        with store._mutex:
            store._check_open()
            partition = store._cached_partition(name)
            if partition is not None:
                if len(partition) and partition.matrix.shape[1] != len(query):
                    raise self._dimension_error(partition.matrix.shape[1], len(query))
                return partition.search(query, k, ids)
            return self._query_chroma(name, query, k, ids)

    def _query_chroma(
        self, name: str, query: np.ndarray, k: int, ids: AbstractCollection[str] | None
    ) -> list[VectorHit]:
        from chromadb.errors import ChromaError, NotFoundError

        store = self._store
        for attempt in range(2):
            collection = store._collection(name, create=False)
            if collection is None:
                return []
            try:
                size = collection.count()
                wanted: list[str] | None = None
                if ids is not None and size:
                    # A server refuses a query naming ids it does not hold: keep those it has.
                    wanted = list(collection.get(ids=list(ids), include=[])["ids"])
                    size = len(wanted)
                if size == 0:
                    return []
                result = collection.query(
                    query_embeddings=[query],
                    n_results=min(k, size),
                    ids=wanted,
                    include=["distances"],
                )
            except NotFoundError:  # deleted by another process: forget the handle, retry
                store._collections.pop(name, None)
                if attempt:
                    return []
                continue
            except ChromaError as exc:
                if "dimension" in str(exc).lower():
                    raise self._dimension_error(None, len(query)) from exc
                raise VectorIndexError(f"Chroma query failed: {exc}") from exc
            distances = (result["distances"] or [[]])[0]
            return [
                VectorHit(item, 1.0 - float(distance))
                for item, distance in zip(result["ids"][0], distances, strict=True)
            ]
        return []

    def delete(self, scope: Scope, ids: Sequence[str]) -> None:
        """Remove ``ids`` from ``scope`` (missing ids are ignored)."""
        items = _check_ids(ids)
        if not items:
            return
        store = self._store
        name = store.collection_name(self.namespace, scope)
        with store._mutex:
            store._check_open()
            collection = store._collection(name, create=False)
            if collection is not None:
                for start in range(0, len(items), store._max_batch):
                    collection.delete(ids=items[start : start + store._max_batch])
            partition = store._cache.get(name)
            if partition is not None:
                before = len(partition)
                partition.remove(items)
                store._note_resize(name, before)

    def delete_scope(self, scope: Scope) -> None:
        """Drop every vector of ``scope`` (erasure): its collection is deleted."""
        from chromadb.errors import NotFoundError

        store = self._store
        name = store.collection_name(self.namespace, scope)
        with store._mutex:
            store._check_open()
            store._forget(name)
            # A crashed rebuild's copy holds the scope's vectors too.
            for doomed in (name, name + _REBUILD_SUFFIX):
                try:
                    store._client.delete_collection(doomed)
                except (NotFoundError, ValueError):
                    pass
            store._clear_marker(name)

    def schedule_rebuild(self, scope: Scope) -> None:
        """Record, before deleting from ``scope`` by id, that it must be rebuilt: embedded,
        a durable marker makes ``open_local`` rebuild it should the process die before
        ``rebuild`` runs (``rebuild`` clears the marker)."""
        store = self._store
        name = store.collection_name(self.namespace, scope)
        with store._mutex:
            store._check_open()
            store._set_marker(name)

    def rebuild(self, scope: Scope) -> int:
        """Copy ``scope``'s vectors into a fresh collection and drop the old one, so that
        vectors deleted by id (which hnswlib only marks) leave its segment files. Returns
        how many vectors were kept. Run ``VectorStore.purge_residue`` afterwards.

        Crash-safe: the copy is built under a temporary name and swapped in (see the
        module docstring), so a crash at any point loses no surviving vector.
        On a server, no other process may write ``scope`` meanwhile (its writes could be
        lost with the old collection).

        Raises:
            VectorIndexError: Chroma failed; the scope's vectors are intact (the next
                rebuild, or ``open_local``, finishes the interrupted one).
        """
        from chromadb.errors import ChromaError

        store = self._store
        name = store.collection_name(self.namespace, scope)
        with store._mutex:
            store._check_open()
            try:
                return store._rebuild_collection(name)
            except (ChromaError, ValueError) as exc:
                store._forget(name)
                try:  # put the complete copy in place now, if the original is gone
                    store._finish_interrupted_rebuild(name)
                except (ChromaError, ValueError):
                    pass  # still marked: the next use of the scope or open finishes it
                raise VectorIndexError(
                    f"rebuilding a {self.namespace} collection failed: {exc}",
                    hint="no vector is lost; run the erasure again to finish it",
                ) from exc

    def count(self, scope: Scope) -> int:
        """How many vectors ``scope`` holds."""
        store = self._store
        name = store.collection_name(self.namespace, scope)
        with store._mutex:
            store._check_open()
            collection = store._collection(name, create=False)
            return 0 if collection is None else collection.count()

    def _dimension_error(self, existing: int | None, given: int) -> VectorIndexError:
        have = f"{existing}-d" if existing else "differently sized"
        return VectorIndexError(
            f"{self.namespace} vectors in this scope are {have}, got {given}-d",
            hint="the embedding model changed: re-embed the stored texts into a new namespace",
        )
