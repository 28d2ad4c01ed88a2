"""privacy/scanner.py: overlap resolution, sensitivity levels, exact character spans."""

from __future__ import annotations

import pytest

from privacy import (
    EntityType,
    Finding,
    ScanOptions,
    Sensitivity,
    resolve_overlaps,
    scan_text,
)


@pytest.mark.parametrize(
    "text, level",
    [
        ("The meeting moved to Thursday.", Sensitivity.NONE),
        ("", Sensitivity.NONE),
        ("Write to ann@example.com.", Sensitivity.PERSONAL),
        ("CPR 010190-1234", Sensitivity.PERSONAL),
        ("IBAN DK50 0040 0440 1162 43", Sensitivity.FINANCIAL),
        ("ann@example.com pays with 4111 1111 1111 1111", Sensitivity.FINANCIAL),
        ("ann@example.com has diabetes and card 4111 1111 1111 1111", Sensitivity.SPECIAL),
        ("Jeg er medlem af en fagforening.", Sensitivity.SPECIAL),
    ],
)
def test_sensitivity_levels(text: str, level: Sensitivity) -> None:
    assert scan_text(text).sensitivity is level


def test_levels_are_ordered() -> None:
    assert Sensitivity.highest([Sensitivity.PERSONAL, Sensitivity.SPECIAL]) is Sensitivity.SPECIAL
    assert Sensitivity.highest([]) is Sensitivity.NONE
    assert Sensitivity.NONE.rank < Sensitivity.PERSONAL.rank < Sensitivity.FINANCIAL.rank
    assert Sensitivity.FINANCIAL.rank < Sensitivity.SPECIAL.rank


def test_cpr_is_not_also_a_phone_number() -> None:
    # "010190-1234" also parses as a French phone number; the checksummed id wins.
    result = scan_text("ring 010190-1234 eller skriv")
    assert [(f.type, f.text) for f in result.findings] == [(EntityType.NATIONAL_ID, "010190-1234")]


def test_card_number_is_not_a_phone_number() -> None:
    result = scan_text("call me about card 4111 1111 1111 1111")
    assert [f.type for f in result.findings] == [EntityType.PAYMENT_CARD]


def test_digits_inside_a_longer_number_are_not_reported() -> None:
    assert scan_text("tracking 123401019012345678901").findings == ()


def test_spans_are_exact_character_offsets_with_non_ascii_text() -> None:
    text = "Ærø → 💡 Søren Jensen, søren@æblegård.dk, +45 32 12 34 56"
    result = scan_text(text)
    assert [f.text for f in result.findings] == [
        "Søren Jensen",
        "søren@æblegård.dk",
        "+45 32 12 34 56",
    ]
    for f in result.findings:
        assert text[f.start : f.end] == f.text


def test_findings_are_in_reading_order_and_serialisable() -> None:
    result = scan_text("b@example.com then a 10.0.0.1")
    assert [f.start for f in result.findings] == sorted(f.start for f in result.findings)
    data = result.to_dict()
    assert data["sensitivity"] == "personal"
    assert set(data["findings"][0]) >= {"type", "start", "end", "text", "confidence"}


def test_resolution_prefers_priority_then_confidence() -> None:
    phone = Finding(EntityType.PHONE, 0, 11, "01019012345", 0.9)
    national = Finding(EntityType.NATIONAL_ID, 0, 10, "0101901234", 0.6)
    health = Finding(EntityType.HEALTH, 0, 5, "x", 0.9)
    kept = resolve_overlaps([phone, national, health])
    assert {f.type for f in kept} == {EntityType.NATIONAL_ID, EntityType.HEALTH}


def test_options_filter_types_and_names() -> None:
    text = "John Smith, john@example.com"
    only_email = ScanOptions(entity_types=frozenset({EntityType.EMAIL}))
    assert [f.type for f in scan_text(text, only_email).findings] == [EntityType.EMAIL]
    no_names = ScanOptions(detect_names=False)
    assert EntityType.PERSON not in {f.type for f in scan_text(text, no_names).findings}
