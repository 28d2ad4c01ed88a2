"""relaygraph's tool registry served over MCP (stdio and Streamable HTTP).

Every call goes through ``tools.executor``; this package adds caller authentication,
per-caller tool lists, the reserved ``approval_id`` argument and the transports.
"""

from mcp_server.config import McpConfig
from mcp_server.http import McpHttpEndpoint, standalone_app
from mcp_server.server import McpToolService, build_server, error_details
from mcp_server.stdio import McpStartupError, serve_stdio, stdio_principal

__all__ = [
    "McpConfig",
    "McpHttpEndpoint",
    "McpStartupError",
    "McpToolService",
    "build_server",
    "error_details",
    "serve_stdio",
    "standalone_app",
    "stdio_principal",
]
