"""Public types of the privacy package: what a scan finds and how sensitive the text is."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EntityType(StrEnum):
    """What a finding is. The first group is personal data; ``IBAN`` and ``PAYMENT_CARD`` are
    financial; the rest are GDPR Art. 9 special categories."""

    EMAIL = "email"
    PHONE = "phone"
    NATIONAL_ID = "national_id"
    IP_ADDRESS = "ip_address"
    POSTAL_ADDRESS = "postal_address"
    PERSON = "person"
    IBAN = "iban"
    PAYMENT_CARD = "payment_card"
    HEALTH = "health"
    GENETIC = "genetic"
    BIOMETRIC = "biometric"
    RELIGION = "religion"
    ETHNICITY = "ethnicity"
    SEXUAL_ORIENTATION = "sexual_orientation"
    POLITICAL_OPINION = "political_opinion"
    TRADE_UNION = "trade_union"


class Sensitivity(StrEnum):
    """How carefully text must be handled; ordered ``none < personal < financial < special``."""

    NONE = "none"
    PERSONAL = "personal"
    FINANCIAL = "financial"
    SPECIAL = "special"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def highest(cls, levels: Any) -> Sensitivity:
        """The most sensitive of ``levels`` (``NONE`` when empty)."""
        best = cls.NONE
        for level in levels:
            if _RANK[level] > _RANK[best]:
                best = level
        return best


_RANK = {
    Sensitivity.NONE: 0,
    Sensitivity.PERSONAL: 1,
    Sensitivity.FINANCIAL: 2,
    Sensitivity.SPECIAL: 3,
}

FINANCIAL_TYPES = frozenset({EntityType.IBAN, EntityType.PAYMENT_CARD})
SPECIAL_TYPES = frozenset(
    {
        EntityType.HEALTH,
        EntityType.GENETIC,
        EntityType.BIOMETRIC,
        EntityType.RELIGION,
        EntityType.ETHNICITY,
        EntityType.SEXUAL_ORIENTATION,
        EntityType.POLITICAL_OPINION,
        EntityType.TRADE_UNION,
    }
)


def sensitivity_of(entity_type: EntityType) -> Sensitivity:
    """The sensitivity one finding of ``entity_type`` gives the text it is in."""
    if entity_type in SPECIAL_TYPES:
        return Sensitivity.SPECIAL
    if entity_type in FINANCIAL_TYPES:
        return Sensitivity.FINANCIAL
    return Sensitivity.PERSONAL


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected entity. ``start``/``end`` are character offsets (Python ``str`` indices,
    end exclusive) so ``text[start:end] == finding.text``. ``detail`` narrows the type (e.g.
    ``dk.cpr`` for a national id, ``visa`` for a card, ``DK`` for a phone's region)."""

    type: EntityType
    start: int
    end: int
    text: str
    confidence: float
    detail: str | None = None

    @property
    def sensitivity(self) -> Sensitivity:
        return sensitivity_of(self.type)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type.value,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "confidence": round(self.confidence, 3),
        }
        if self.detail is not None:
            data["detail"] = self.detail
        return data


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Findings of one text in reading order, and the sensitivity they add up to."""

    findings: tuple[Finding, ...] = ()
    sensitivity: Sensitivity = field(default=Sensitivity.NONE)

    @classmethod
    def of(cls, findings: list[Finding] | tuple[Finding, ...]) -> ScanResult:
        ordered = tuple(sorted(findings, key=lambda f: (f.start, f.end)))
        return cls(ordered, Sensitivity.highest(f.sensitivity for f in ordered))

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensitivity": self.sensitivity.value,
            "findings": [f.to_dict() for f in self.findings],
        }
