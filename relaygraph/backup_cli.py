"""``relaygraph backup PATH`` and ``relaygraph restore PATH``: the embedded data directory.

``backup`` writes consistent snapshots of the SQLite store and checkpoints, a copy of the
embedded Chroma directory (under its owner lock), uploaded files, key files and a manifest.
``restore`` checks the manifest, refuses a non-empty data directory unless ``--force``, and
migrates the restored store to this version. Exit codes: 0 done, 2 refused (with the reason).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)
EXIT_OK = 0
EXIT_BAD_INPUT = 2

WaitOpt = Annotated[
    float,
    typer.Option("--wait", min=0, help="Seconds to wait for a process that owns embedded Chroma."),
]


def _fail(message: str) -> typer.Exit:
    _err.print(f"error: {message}", markup=False)
    return typer.Exit(EXIT_BAD_INPUT)


def backup_command(
    path: Annotated[Path, typer.Argument(help="New (or empty) directory for the backup.")],
    wait: WaitOpt = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Back up the embedded data directory (store, checkpoints, Chroma, files) to PATH."""
    from pydantic import ValidationError

    from runtime.backup import BackupError, create_backup
    from runtime.settings import Settings, configuration_error_message

    try:
        result = create_backup(Settings(), path, wait_seconds=wait)
    except ValidationError as exc:
        raise _fail(configuration_error_message(exc)) from None
    except (BackupError, OSError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(result.manifest, indent=2) + "\n")
        return
    manifest = result.manifest
    size = sum(entry["bytes"] for entry in manifest["files"].values())
    _out.print(
        f"backup in {result.path}: {len(manifest['files'])} files, {size:,} bytes, "
        f"store revision {manifest['alembic_revision'] or 'none'}"
    )


def restore_command(
    path: Annotated[Path, typer.Argument(help="A directory written by `relaygraph backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a data directory that is not empty.")
    ] = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Restore a backup into the configured data directory (RELAYGRAPH_DATA_DIR)."""
    from pydantic import ValidationError

    from runtime.backup import BackupError, restore_backup
    from runtime.settings import Settings, configuration_error_message
    from store import StoreError

    try:
        settings = Settings()
        manifest = restore_backup(settings, path, force=force, wait_seconds=wait)
    except ValidationError as exc:
        raise _fail(configuration_error_message(exc)) from None
    except (BackupError, StoreError, OSError) as exc:
        raise _fail(str(exc)) from None
    _out.print(
        f"restored backup of {manifest['created_at']} "
        f"(revision {manifest['alembic_revision'] or 'none'}) into {settings.data_dir}"
    )
