"""The HTTP API: LangGraph-Server-compatible paths under /api/v1."""
