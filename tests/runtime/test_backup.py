"""Backup and restore of the embedded data directory (runtime/backup.py, backup_cli.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from filelock import FileLock

from runtime.backup import BackupError, create_backup, read_manifest, restore_backup
from runtime.settings import Settings
from tests.helpers import json_lines, run_relaygraph, run_until_interrupted


@pytest.mark.slow
def test_restore_then_resume_an_interrupted_thread_from_a_new_process(
    tmp_path: Path, data_dir: Path
) -> None:
    env, summary = run_until_interrupted(tmp_path, data_dir)
    thread_id = summary["thread_id"]

    backup_dir = tmp_path / "backup"
    made = run_relaygraph(["backup", str(backup_dir), "--json"], env)
    assert made.returncode == 0, made.stderr
    manifest = json.loads(made.stdout)
    assert manifest["alembic_revision"] and manifest["versions"]["relaygraph"]
    assert {"relaygraph.db", "checkpoints.db"} <= set(manifest["files"])
    assert "data/relaygraph-secret.key" in manifest["files"]  # stored credentials' key
    assert oct((backup_dir).stat().st_mode & 0o777) == "0o700"

    shutil.rmtree(data_dir)
    restored = run_relaygraph(["restore", str(backup_dir)], env)
    assert restored.returncode == 0, restored.stderr
    assert "restored backup" in restored.stdout

    second = run_relaygraph(["resume", thread_id, "--approve", "--json"], env)
    assert second.returncode == 0, second.stderr
    final = json_lines(second.stdout)[-1]
    assert final["status"] == "success" and final["final_message"] == "finished"
    with sqlite3.connect(data_dir / "relaygraph.db") as connection:
        titles = sorted(row[0] for row in connection.execute("select title from notes"))
    assert titles == ["keep"]

    again = run_relaygraph(["restore", str(backup_dir)], env)
    assert again.returncode == 2 and "--force" in again.stderr
    forced = run_relaygraph(["restore", str(backup_dir), "--force"], env)
    assert forced.returncode == 0, forced.stderr
    with sqlite3.connect(data_dir / "relaygraph.db") as connection:
        titles = sorted(row[0] for row in connection.execute("select title from notes"))
    assert titles == ["bin", "keep"]  # back to the moment of the backup


def _seed(settings: Settings) -> None:
    from store import migrate

    migrate(settings.store_url)
    with sqlite3.connect(settings.checkpoint_path) as connection:
        connection.execute("create table if not exists t (x)")
        connection.execute("insert into t values (1)")
    chroma = settings.chroma_dir
    chroma.mkdir(parents=True)
    (chroma / "segment.bin").write_bytes(b"vectors")
    settings.files_dir.mkdir(parents=True)
    (settings.files_dir / "upload.txt").write_text("hello")


def test_backup_manifest_lists_every_file_and_restore_checks_it(
    tmp_path: Path, settings: Settings
) -> None:
    _seed(settings)
    result = create_backup(settings, tmp_path / "b")
    files = result.manifest["files"]
    assert {"relaygraph.db", "checkpoints.db", "chroma/segment.bin", "files/upload.txt"} <= set(
        files
    )
    assert "chroma/relaygraph.lock" not in files
    assert read_manifest(tmp_path / "b")["alembic_revision"] == result.manifest["alembic_revision"]
    # The snapshot is a self-contained file (no WAL needed beside it).
    with sqlite3.connect(tmp_path / "b" / "checkpoints.db") as connection:
        assert connection.execute("select x from t").fetchall() == [(1,)]
        assert connection.execute("pragma journal_mode").fetchone() == ("delete",)

    (tmp_path / "b" / "files" / "upload.txt").write_text("tampered")
    with pytest.raises(BackupError, match="altered"):
        restore_backup(settings, tmp_path / "b", force=True)


def test_backup_refuses_while_another_process_owns_chroma(
    tmp_path: Path, settings: Settings
) -> None:
    _seed(settings)
    lock = FileLock(settings.chroma_dir / "relaygraph.lock", timeout=0)
    with lock, pytest.raises(BackupError, match="open in another process"):
        create_backup(settings, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert create_backup(settings, tmp_path / "b").path == (tmp_path / "b").resolve()


def test_backup_refuses_a_non_empty_target_and_non_embedded_stores(
    tmp_path: Path, settings: Settings
) -> None:
    _seed(settings)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        create_backup(settings, tmp_path / "full")
    remote = settings.model_copy(update={"chroma_url": "http://127.0.0.1:1"})
    with pytest.raises(BackupError, match="CHROMA_URL"):
        create_backup(remote, tmp_path / "b")


def test_restore_refuses_an_unknown_revision(tmp_path: Path, settings: Settings) -> None:
    _seed(settings)
    create_backup(settings, tmp_path / "b")
    path = tmp_path / "b" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["alembic_revision"] = "9999"
    path.write_text(json.dumps(manifest))
    target = settings.model_copy(update={"data_dir": tmp_path / "fresh"})
    with pytest.raises(BackupError, match="unknown to this relaygraph"):
        restore_backup(target, tmp_path / "b")


def test_embedded_chroma_round_trips(tmp_path: Path, settings: Settings) -> None:
    from memory.types import Scope
    from memory.vectors import VectorStore
    from store import migrate

    migrate(settings.store_url)
    scope = Scope(tenant="acme", user="ann")
    with VectorStore.open_local(settings.chroma_dir) as vectors:
        vectors.index("memory").add(scope, ["m1", "m2"], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    create_backup(settings, tmp_path / "b")

    target = settings.model_copy(update={"data_dir": tmp_path / "fresh", "chroma_path": None})
    restore_backup(target, tmp_path / "b")
    with VectorStore.open_local(target.chroma_dir) as vectors:
        assert vectors.index("memory").count(scope) == 2
