"""LangGraph state graphs, their registry, assistants, limits and prompts."""
