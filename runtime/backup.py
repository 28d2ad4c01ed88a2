"""Backup and restore of the embedded data directory (SQLite store, checkpoints, Chroma, files).

A backup is a directory:

- ``relaygraph.db`` and ``checkpoints.db``: consistent snapshots taken with SQLite's online
  backup API while both source connections hold a read transaction, opened back to back, so
  the two files show the same moment even while other processes write;
- ``chroma/``: a copy of the embedded Chroma directory, taken under the same file lock that
  ``memory.vectors`` holds while a process owns it, so no writer is mid-write;
- ``files/``: uploaded files; ``data/``: the data directory's key files (credential and
  webhook secrets; without them stored credentials cannot be decrypted);
- ``manifest.json``: format, versions, the store's Alembic revision, the time, and the size
  and SHA-256 of every file, checked before anything is restored.

Only the embedded defaults are covered: PostgreSQL and a Chroma server have their own tools
(``pg_dump``, the server's persist directory).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from memory.vectors import _LOCK_FILE as CHROMA_LOCK_FILE  # the lock memory.vectors holds
from memory.vectors import _OWNER_FILE as CHROMA_OWNER_FILE
from runtime.settings import Settings
from store.database import sqlite_path

FORMAT = 1
MANIFEST = "manifest.json"
STORE_FILE = "relaygraph.db"
CHECKPOINT_FILE = "checkpoints.db"
CHROMA_DIR = "chroma"
FILES_DIR = "files"
KEYS_DIR = "data"
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
# Derived or per-process files in the data directory that a backup leaves out.
_SKIPPED_NAMES = {".migrate.lock", "models"}
_CHROMA_SKIPPED = frozenset({CHROMA_LOCK_FILE, CHROMA_OWNER_FILE})


class BackupError(RuntimeError):
    """A backup or restore cannot proceed; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    manifest: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the embedded data of one configuration lives."""

    data_dir: Path
    store: Path
    checkpoints: Path
    chroma: Path
    files: Path


def _layout(settings: Settings) -> _Layout:
    if settings.chroma_url:
        raise BackupError(
            "RELAYGRAPH_CHROMA_URL is set: back up the Chroma server's persist directory with "
            "the server's own tools; relaygraph backup covers the embedded defaults only"
        )
    store = sqlite_path(settings.store_url)
    if store is None:
        raise BackupError(
            "the store is not a SQLite file (RELAYGRAPH_DATABASE_URL): use pg_dump for "
            "PostgreSQL; relaygraph backup covers the embedded defaults only"
        )
    if settings.checkpoint_url:
        raise BackupError(
            "RELAYGRAPH_CHECKPOINT_URL is set: back up that database with its own tools"
        )
    return _Layout(
        data_dir=settings.data_dir,
        store=store.expanduser().resolve(),
        checkpoints=settings.checkpoint_path,
        chroma=settings.chroma_dir,
        files=settings.files_dir,
    )


@contextmanager
def _chroma_lock(directory: Path, wait_seconds: float) -> Iterator[None]:
    """Hold the embedded Chroma directory's owner lock (no-op when it does not exist).

    Raises:
        BackupError: another process owns the directory for longer than ``wait_seconds``.
    """
    if not directory.exists():
        yield
        return
    lock = FileLock(
        directory / CHROMA_LOCK_FILE, timeout=wait_seconds, is_singleton=False, thread_local=False
    )
    try:
        lock.acquire()
    except Timeout:
        try:
            owner = (directory / CHROMA_OWNER_FILE).read_text().strip() or "unknown"
        except OSError:
            owner = "unknown"
        raise BackupError(
            f"the vector index at {directory} is open in another process (pid {owner}); "
            "embedded Chroma is owned by one process at a time: stop `relaygraph serve` "
            "(or the command holding it) and try again, or pass --wait SECONDS"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_empty(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


def _versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version}
    for package in ("relaygraph", "langgraph", "langgraph-checkpoint-sqlite", "chromadb"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def _alembic_revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]) if row else None


def _snapshot_databases(sources: dict[str, Path], target: Path, busy_timeout_ms: int) -> str | None:
    """Copy each SQLite database in ``sources`` (name → file) into ``target``.

    Every source connection opens a read transaction first, one after the other, so all
    the copies show one moment; returns the store's Alembic revision at that moment.
    """
    with ExitStack() as stack:
        connections: dict[str, sqlite3.Connection] = {}
        for name, path in sources.items():
            if not path.exists():
                continue
            connection = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
            stack.callback(connection.close)
            connection.execute("BEGIN")
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()  # pin snapshot
            connections[name] = connection
        revision = _alembic_revision(connections[STORE_FILE]) if STORE_FILE in connections else None
        for name, source in connections.items():
            copy = sqlite3.connect(target / name)
            try:
                source.backup(copy)
                # One self-contained file, without a WAL beside it.
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
            source.execute("COMMIT")
    return revision


def _copy_tree(source: Path, target: Path, skipped: frozenset[str] = frozenset()) -> None:
    if not source.exists():
        return
    shutil.copytree(source, target, ignore=lambda _dir, names: [n for n in names if n in skipped])


def _key_files(data_dir: Path, layout: _Layout) -> list[Path]:
    """Top-level files of the data directory other than databases, locks and caches."""
    databases = {layout.store.name, layout.checkpoints.name}
    keep = []
    for entry in sorted(data_dir.iterdir()) if data_dir.exists() else []:
        name = entry.name
        if not entry.is_file() or name in _SKIPPED_NAMES or name.startswith(".write-probe-"):
            continue
        if name in databases or any(
            name == db + side for db in databases for side in _SQLITE_SIDE_FILES
        ):
            continue
        keep.append(entry)
    return keep


def _inventory(root: Path) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            files[path.relative_to(root).as_posix()] = {
                "bytes": path.stat().st_size,
                "sha256": _sha256(path),
            }
    return files


def create_backup(settings: Settings, target: Path, *, wait_seconds: float = 0.0) -> BackupResult:
    """Write a consistent backup of the embedded data directory into ``target``.

    ``target`` must not exist or be an empty directory. The backup holds secrets (the
    credential key), so it is created readable by its owner only.

    Raises:
        BackupError: not the embedded defaults, the target is not empty, or another
            process owns the embedded Chroma directory.
    """
    layout = _layout(settings)
    target = target.expanduser().resolve()
    if not _is_empty(target):
        raise BackupError(f"backup target {target} is not empty; choose a new directory")
    if target.is_relative_to(layout.data_dir):
        raise BackupError(f"backup target {target} is inside the data directory; choose another")
    if not layout.store.exists():
        raise BackupError(f"no store at {layout.store}: nothing to back up")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(target, 0o700)
    try:
        with _chroma_lock(layout.chroma, wait_seconds):
            revision = _snapshot_databases(
                {STORE_FILE: layout.store, CHECKPOINT_FILE: layout.checkpoints},
                target,
                settings.sqlite_busy_timeout_ms,
            )
            _copy_tree(layout.chroma, target / CHROMA_DIR, _CHROMA_SKIPPED)
        _copy_tree(layout.files, target / FILES_DIR)
        keys = _key_files(layout.data_dir, layout)
        if keys:
            (target / KEYS_DIR).mkdir()
            for path in keys:
                shutil.copy2(path, target / KEYS_DIR / path.name)
        manifest = {
            "format": FORMAT,
            "kind": "relaygraph-embedded-backup",
            "created_at": datetime.now(UTC).isoformat(),
            "alembic_revision": revision,
            "versions": _versions(),
            "source": {"data_dir": str(layout.data_dir)},
            "files": _inventory(target),
        }
        (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return BackupResult(path=target, manifest=manifest)


def read_manifest(source: Path) -> dict[str, Any]:
    """The manifest of the backup in ``source``, checked against the files beside it.

    Raises:
        BackupError: no manifest, an unknown format or revision, or a file that is
            missing, extra or altered.
    """
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    from store.migrate import alembic_config

    path = source / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{source} is not a relaygraph backup (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from None
    if manifest.get("kind") != "relaygraph-embedded-backup" or manifest.get("format") != FORMAT:
        raise BackupError(
            f"{path} has format {manifest.get('format')!r}; this relaygraph reads format {FORMAT}"
        )
    revision = manifest.get("alembic_revision")
    if revision is not None:
        scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
        try:
            known = scripts.get_revision(revision)
        except CommandError:
            known = None
        if known is None:
            raise BackupError(
                f"the backup's store is at revision {revision!r}, unknown to this relaygraph "
                f"(made by {manifest.get('versions', {}).get('relaygraph', '?')}): "
                "restore it with that version or newer"
            )
    listed: dict[str, dict[str, Any]] = manifest.get("files") or {}
    if STORE_FILE not in listed:
        raise BackupError(f"the backup in {source} has no {STORE_FILE}")
    present = _inventory(source)
    missing = sorted(set(listed) - set(present))
    extra = sorted(set(present) - set(listed))
    altered = sorted(n for n in set(listed) & set(present) if listed[n] != present[n])
    if missing or extra or altered:
        raise BackupError(
            f"the backup in {source} does not match its manifest "
            f"(missing {missing[:5]}, unexpected {extra[:5]}, altered {altered[:5]}); "
            "it is incomplete or was modified"
        )
    return manifest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _clear(layout: _Layout) -> None:
    """Remove the current embedded data (the Chroma lock file stays: we hold it)."""
    for database in (layout.store, layout.checkpoints):
        for suffix in ("", *_SQLITE_SIDE_FILES):
            _remove(database.with_name(database.name + suffix))
    if layout.chroma.exists():
        for entry in layout.chroma.iterdir():
            if entry.name != CHROMA_LOCK_FILE:
                _remove(entry)
    _remove(layout.files)
    for entry in list(layout.data_dir.iterdir()) if layout.data_dir.exists() else []:
        if entry.name in _SKIPPED_NAMES or entry == layout.chroma:
            continue
        _remove(entry)


def _occupied(layout: _Layout) -> list[Path]:
    places = [layout.data_dir, layout.chroma, layout.files]
    occupied = []
    for place in places:
        if not place.exists():
            continue
        entries = [
            e
            for e in place.iterdir()
            if e.name not in _SKIPPED_NAMES and e.name != CHROMA_LOCK_FILE and e != layout.chroma
        ]
        if entries:
            occupied.append(place)
    return occupied


def restore_backup(
    settings: Settings, source: Path, *, force: bool = False, wait_seconds: float = 0.0
) -> dict[str, Any]:
    """Restore the backup in ``source`` into the configured embedded data directory.

    The store is migrated to this relaygraph's newest revision afterwards. Returns the
    backup's manifest.

    Raises:
        BackupError: the backup fails its manifest check, the data directory is not empty
            and ``force`` is not set, or another process owns the embedded Chroma directory.
    """
    from store.migrate import migrate

    layout = _layout(settings)
    source = source.expanduser().resolve()
    if not source.is_dir():
        raise BackupError(f"{source} is not a directory")
    manifest = read_manifest(source)
    occupied = _occupied(layout)
    if occupied and not force:
        raise BackupError(
            f"{', '.join(map(str, occupied))} is not empty; restore replaces everything in it: "
            "pass --force to do so (stop every relaygraph process using it first)"
        )
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    with _chroma_lock(layout.chroma, wait_seconds):
        if occupied:
            _clear(layout)
        shutil.copy2(source / STORE_FILE, layout.store)
        if (source / CHECKPOINT_FILE).exists():
            shutil.copy2(source / CHECKPOINT_FILE, layout.checkpoints)
        if (source / CHROMA_DIR).exists():
            shutil.copytree(source / CHROMA_DIR, layout.chroma, dirs_exist_ok=True)
        if (source / FILES_DIR).exists():
            shutil.copytree(source / FILES_DIR, layout.files, dirs_exist_ok=True)
        if (source / KEYS_DIR).exists():
            for path in (source / KEYS_DIR).iterdir():
                shutil.copy2(path, layout.data_dir / path.name)
    migrate(settings.store_url)
    return manifest
