"""Deterministic workflows: graphs whose control flow is fixed in code, where models only
fill in content (classify, draft) and humans decide (approve, edit, reject)."""
