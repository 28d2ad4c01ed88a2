"""privacy/redaction.py: redaction, deterministic pseudonyms, and the round trip."""

from __future__ import annotations

import json

import pytest

from privacy import PseudonymMap, pseudonymise, redact, restore, scan_text

TEXT = (
    "Hej, jeg hedder Søren Jensen, CPR 010190-1234, mail soren@example.dk. "
    "Jeg har sukkersyge. Svar til soren@example.dk eller +45 32 12 34 56."
)


def test_redact_replaces_every_finding() -> None:
    redacted = redact(TEXT, scan_text(TEXT).findings)
    assert redacted == (
        "Hej, jeg hedder <PERSON>, CPR <NATIONAL_ID>, mail <EMAIL>. "
        "Jeg har <HEALTH>. Svar til <EMAIL> eller <PHONE>."
    )
    assert scan_text(redacted).sensitivity.value == "none"


def test_pseudonymise_is_deterministic_and_round_trips() -> None:
    text, mapping = pseudonymise(TEXT, scan_text(TEXT).findings)
    assert text == (
        "Hej, jeg hedder <PERSON_1>, CPR <NATIONAL_ID_1>, mail <EMAIL_1>. "
        "Jeg har <HEALTH_1>. Svar til <EMAIL_1> eller <PHONE_1>."
    )
    assert restore(text, mapping) == TEXT
    again, _ = pseudonymise(TEXT, scan_text(TEXT).findings)
    assert again == text


def test_mapping_carries_across_messages_and_through_json() -> None:
    first, mapping = pseudonymise("a@example.com", scan_text("a@example.com").findings)
    stored = json.loads(json.dumps(mapping.to_dict()))
    mapping = PseudonymMap.from_dict(stored)
    second_text = "b@example.com and a@example.com"
    second, mapping = pseudonymise(second_text, scan_text(second_text).findings, mapping)
    assert first == "<EMAIL_1>"
    assert second == "<EMAIL_2> and <EMAIL_1>"
    # A model's answer using the tokens is restored inside our boundary.
    assert restore("Mail <EMAIL_2>, not <EMAIL_9>", mapping) == "Mail b@example.com, not <EMAIL_9>"


def test_tokens_never_collide_with_literal_text() -> None:
    text = "literal <EMAIL_1> and real x@example.com"
    out, mapping = pseudonymise(text, scan_text(text).findings)
    assert out == "literal <EMAIL_1> and real <EMAIL_2>"
    assert restore(out, mapping).endswith("real x@example.com")


def test_bad_mapping_is_rejected() -> None:
    with pytest.raises(ValueError, match="EMAIL-1"):
        PseudonymMap.from_dict({"tokens": {"EMAIL-1": "x"}})
