"""Fixtures of the security suite: the MCP servers of tests/mcp_server (HTTP on
127.0.0.1 and stdio subprocesses) and the API server of tests/api, with keys for alice,
bob (tenant b), rita (reviewer of a), ada (admin of a)."""

from __future__ import annotations

from tests.api.conftest import serve
from tests.mcp_server.conftest import mcp_http, stdio_setup

__all__ = ["mcp_http", "serve", "stdio_setup"]
