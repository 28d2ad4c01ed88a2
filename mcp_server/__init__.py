"""Our tool registry served over MCP (stdio and Streamable HTTP)."""
