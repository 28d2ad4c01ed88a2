"""``scan_text``: run every detector, resolve overlaps, and grade the text's sensitivity."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from privacy._address import detect_addresses
from privacy._names import detect_person_names
from privacy._national_ids import detect_national_ids
from privacy._phone import DEFAULT_REGIONS, detect_phones
from privacy._special import detect_special_categories
from privacy._structured import (
    detect_emails,
    detect_ibans,
    detect_ip_addresses,
    detect_payment_cards,
)
from privacy.types import SPECIAL_TYPES, EntityType, Finding, ScanResult

# When spans overlap, the finding with the stronger evidence wins: checksummed identifiers over
# phone numbers (a CPR or card number also parses as a phone); between a phone and an address
# the more confident (a cued phone beats a street grammar match, which beats a bare digit run
# that merely parses as a phone, e.g. a house number); addresses over names (streets are
# often named after people). Special categories never
# compete with identifiers: both are kept, since both change how the text must be handled.
_PRIORITY: dict[EntityType, int] = {
    EntityType.EMAIL: 6,
    EntityType.IBAN: 6,
    EntityType.PAYMENT_CARD: 5,
    EntityType.NATIONAL_ID: 5,
    EntityType.IP_ADDRESS: 4,
    EntityType.PHONE: 3,
    EntityType.POSTAL_ADDRESS: 3,
    EntityType.PERSON: 1,
}


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """What to look for. ``min_confidence`` drops weaker findings (0.5 keeps cue-less
    special-category mentions such as "cancer research", which a reviewer should see);
    ``phone_regions`` are tried in order for numbers written without a country code."""

    min_confidence: float = 0.5
    phone_regions: tuple[str, ...] = DEFAULT_REGIONS
    entity_types: frozenset[EntityType] | None = None
    detect_names: bool = True
    extra_detectors: tuple[Callable[[str], list[Finding]], ...] = field(default=())


DEFAULT_OPTIONS = ScanOptions()


def _candidates(text: str, options: ScanOptions) -> list[Finding]:
    findings = [
        *detect_emails(text),
        *detect_ibans(text),
        *detect_payment_cards(text),
        *detect_national_ids(text),
        *detect_ip_addresses(text),
        *detect_phones(text, options.phone_regions),
        *detect_addresses(text),
        *detect_special_categories(text),
    ]
    if options.detect_names:
        findings.extend(detect_person_names(text))
    for detector in options.extra_detectors:
        findings.extend(detector(text))
    return findings


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Keep, among overlapping identifier findings, the one of highest priority, then
    confidence, then length; special-category findings are resolved only among themselves."""
    ordered = sorted(
        findings,
        key=lambda f: (-_PRIORITY.get(f.type, 0), -f.confidence, -(f.end - f.start), f.start),
    )
    kept: list[Finding] = []
    # Accepted spans per group (identifiers, special categories), sorted and disjoint, so an
    # overlap check is a binary search rather than a scan of everything kept.
    spans: dict[bool, list[tuple[int, int]]] = {False: [], True: []}
    for finding in ordered:
        group = spans[finding.type in SPECIAL_TYPES]
        i = bisect.bisect_left(group, (finding.start, finding.end))
        if i > 0 and group[i - 1][1] > finding.start:
            continue
        if i < len(group) and group[i][0] < finding.end:
            continue
        group.insert(i, (finding.start, finding.end))
        kept.append(finding)
    return sorted(kept, key=lambda f: (f.start, f.end))


def scan_text(text: str, options: ScanOptions = DEFAULT_OPTIONS) -> ScanResult:
    """Find personal data, financial identifiers and special-category mentions in ``text``.

    Offsets are character indices into ``text`` (end exclusive). Pure: no I/O, no state."""
    if not text:
        return ScanResult()
    findings = [
        f
        for f in _candidates(text, options)
        if f.confidence >= options.min_confidence
        and (options.entity_types is None or f.type in options.entity_types)
    ]
    return ScanResult.of(resolve_overlaps(findings))
