"""Health and server information (no authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

import relaygraph

router = APIRouter(tags=["meta"])


@router.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}


@router.get("/info")
async def info() -> dict[str, Any]:
    return {
        "version": relaygraph.__version__,
        "langgraph_py_version": _version("langgraph"),
        "flags": {"assistants": True, "crons": False, "langsmith": False},
        "host": {"kind": "relaygraph", "project_id": None, "revision_id": None},
    }


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
