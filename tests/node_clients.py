"""Node client scripts that drive relaygraph with the official JS and TypeScript SDKs
(``tests/api/js``, ``tests/mcp_server/js``): Node with the folder's pinned packages, installed
by ``npm ci`` when its lockfile changed, and the one-line JSON summary a script prints, checked.

Without Node or npm a test fails in CI (``CI=true``) and is skipped elsewhere. No fixtures
here: each test module wraps ``node_with_packages`` in its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

LOCK_STAMP = Path("node_modules") / ".relaygraph-lock-sha256"
"""Below a client folder: the sha256 of the package-lock.json that `npm ci` last installed from."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def node_with_packages(folder: Path, *, needed_for: str) -> str:
    """The ``node`` executable, after ``npm ci`` made ``folder/node_modules`` match the
    folder's package-lock.json (skipped when the stamp says it already does).

    Call it before starting any server: a first install can take minutes.

    Raises:
        pytest.skip.Exception: node or npm is missing (outside CI).
        pytest.fail.Exception: node or npm is missing in CI, or ``npm ci`` failed.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        message = f"node and npm are needed for {needed_for}"
        if _in_ci():
            pytest.fail(f"{message} (required in CI)")
        pytest.skip(message)
    stamp = folder / LOCK_STAMP
    digest = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
    if not (stamp.is_file() and stamp.read_text().strip() == digest):
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        stamp.write_text(digest + "\n")
    return node


def run_client(
    node: str, script: Path, *args: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run ``script`` with Node in its folder and return the JSON summary it prints last,
    after checking that the summary says ``"ok": true`` and the script exited 0.

    ``env`` replaces the environment (``None``: this process's). The summary is printed too,
    for ``pytest -rP`` and CI logs.
    """
    done = subprocess.run(
        [node, str(script), *args],
        cwd=script.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no summary (exit {done.returncode}):\n{done.stderr[-4000:]}"
    print(lines[-1])
    summary: dict[str, Any] = json.loads(lines[-1])
    assert summary["ok"] is True, json.dumps(summary, indent=2)[:6000] + done.stderr[-3000:]
    assert done.returncode == 0
    return summary
