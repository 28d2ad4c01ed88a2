"""Fixtures of the reliability suite: the API server of tests/api (uvicorn on 127.0.0.1)."""

from __future__ import annotations

from tests.api.conftest import serve

__all__ = ["serve"]
