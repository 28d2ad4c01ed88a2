"""Which content sources are trusted: configuration, never a tool's own claim.

A run becomes *tainted* once it has read content from an untrusted source; from
then on :mod:`tools.policy` asks a human before any write or destructive call.
Own workspace records are trusted by default; the web, files, documents, memory
and attached MCP servers are not. Unknown sources are untrusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_SOURCES: dict[str, bool] = {
    "workspace": True,
    "outbox": True,
    "web": False,
    "files": False,
    "documents": False,
    "memory": False,
    "external": False,
}


@dataclass(frozen=True)
class TrustConfig:
    """``sources`` maps a source name to whether its content is trusted. An attached
    server's tools use ``external:<server>``; without an entry of their own they follow
    ``external``."""

    sources: Mapping[str, bool] = field(default_factory=lambda: dict(DEFAULT_SOURCES))

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, bool] | None) -> TrustConfig:
        return cls({**DEFAULT_SOURCES, **(overrides or {})})

    def is_trusted(self, source: str) -> bool:
        if source in self.sources:
            return bool(self.sources[source])
        family = source.split(":", 1)[0]
        return bool(self.sources.get(family, False))
