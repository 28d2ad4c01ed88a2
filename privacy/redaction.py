"""Redaction and reversible pseudonymisation of scanned text.

``pseudonymise`` replaces each finding with a deterministic token such as ``<EMAIL_1>``: the
same value gets the same token for as long as the caller keeps passing the same
``PseudonymMap``, so a conversation stays coherent for the model while the values stay inside
our boundary. The map is the only way back (``restore``); callers store it, never the provider.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from privacy.types import EntityType, Finding

_TOKEN = re.compile(r"<([A-Z_]+)_(\d+)>")


def _label(entity_type: EntityType) -> str:
    return entity_type.value.upper()


def _non_overlapping(findings: Iterable[Finding]) -> list[Finding]:
    """Findings in reading order with later overlapping ones dropped (a special-category
    word inside a name, say), so replacements never cut into each other."""
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start, -(f.end - f.start))):
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept


def redact(text: str, findings: Iterable[Finding], template: str = "<{label}>") -> str:
    """``text`` with every finding replaced by ``template`` (``{label}`` is e.g. ``EMAIL``).
    Irreversible."""
    parts: list[str] = []
    cursor = 0
    for f in _non_overlapping(findings):
        parts.append(text[cursor : f.start])
        parts.append(template.format(label=_label(f.type)))
        cursor = f.end
    parts.append(text[cursor:])
    return "".join(parts)


@dataclass(slots=True)
class PseudonymMap:
    """Token ↔ original value, per type counters. JSON-able via ``to_dict``/``from_dict`` so
    the caller can keep it with the thread."""

    tokens: dict[str, str] = field(default_factory=dict)  # token -> original
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _counters: dict[str, int] = field(default_factory=dict)

    def token_for(self, entity_type: EntityType, value: str, text: str = "") -> str:
        """The token for ``value``, minting the next free one (skipping any number whose
        token already occurs literally in ``text``, so restoring cannot touch it)."""
        label = _label(entity_type)
        key = (label, value)
        if key in self._by_value:
            return self._by_value[key]
        n = self._counters.get(label, 0)
        while True:
            n += 1
            token = f"<{label}_{n}>"
            if token not in self.tokens and token not in text:
                break
        self._counters[label] = n
        self._by_value[key] = token
        self.tokens[token] = value
        return token

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": dict(self.tokens)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PseudonymMap:
        mapping = cls()
        for token, value in data.get("tokens", {}).items():
            match = _TOKEN.fullmatch(token)
            if match is None:
                raise ValueError(f"not a pseudonym token: {token!r}")
            label, n = match.group(1), int(match.group(2))
            mapping.tokens[token] = value
            mapping._by_value[(label, value)] = token
            mapping._counters[label] = max(mapping._counters.get(label, 0), n)
        return mapping


def pseudonymise(
    text: str, findings: Iterable[Finding], mapping: PseudonymMap | None = None
) -> tuple[str, PseudonymMap]:
    """Replace findings by deterministic tokens; returns the new text and the (updated) map."""
    mapping = mapping if mapping is not None else PseudonymMap()
    parts: list[str] = []
    cursor = 0
    for f in _non_overlapping(findings):
        parts.append(text[cursor : f.start])
        parts.append(mapping.token_for(f.type, text[f.start : f.end], text))
        cursor = f.end
    parts.append(text[cursor:])
    return "".join(parts), mapping


def restore(text: str, mapping: PseudonymMap) -> str:
    """Put the original values back for every token ``mapping`` knows (unknown tokens, e.g.
    ones a model invented, are left as they are)."""
    return _TOKEN.sub(lambda m: mapping.tokens.get(m.group(), m.group()), text)
