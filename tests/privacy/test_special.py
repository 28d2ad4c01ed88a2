"""privacy/_special.py: GDPR Art. 9 categories in English and Danish, by lexicon and context."""

from __future__ import annotations

import pytest

from privacy import EntityType, ScanOptions, Sensitivity, scan_text
from privacy._special import detect_special_categories


@pytest.mark.parametrize(
    "text, kind, word",
    [
        ("I was diagnosed with diabetes in May.", EntityType.HEALTH, "diabetes"),
        ("She has been on antidepressants for a year.", EntityType.HEALTH, "antidepressants"),
        ("He is HIV positive.", EntityType.HEALTH, "HIV"),
        ("Jeg har sukkersyge.", EntityType.HEALTH, "sukkersyge"),
        ("Hun er sygemeldt med stress.", EntityType.HEALTH, "sygemeldt"),
        ("Han fik kræft sidste år.", EntityType.HEALTH, "kræft"),
        ("My genetic test showed BRCA2.", EntityType.GENETIC, "genetic test"),
        ("Min gentest var negativ.", EntityType.GENETIC, "gentest"),
        ("We store employees' fingerprints.", EntityType.BIOMETRIC, "fingerprints"),
        ("Adgang via ansigtsgenkendelse.", EntityType.BIOMETRIC, "ansigtsgenkendelse"),
        ("He is a practising Muslim.", EntityType.RELIGION, "Muslim"),
        ("Jeg er katolik.", EntityType.RELIGION, "katolik"),
        ("She is of Somali descent.", EntityType.ETHNICITY, "of Somali descent"),
        ("Han er af tyrkisk oprindelse.", EntityType.ETHNICITY, "af tyrkisk oprindelse"),
        ("My brother is gay.", EntityType.SEXUAL_ORIENTATION, "gay"),
        ("Hun er lesbisk.", EntityType.SEXUAL_ORIENTATION, "lesbisk"),
        ("I vote for the Green Party.", EntityType.POLITICAL_OPINION, "Green Party"),
        ("Jeg stemmer på Enhedslisten.", EntityType.POLITICAL_OPINION, "Enhedslisten"),
        ("Jeg stemmer på Venstre.", EntityType.POLITICAL_OPINION, "Venstre"),
        ("I joined the trade union last year.", EntityType.TRADE_UNION, "trade union"),
        ("Han er medlem af 3F.", EntityType.TRADE_UNION, "3F"),
        ("Hun er tillidsrepræsentant.", EntityType.TRADE_UNION, "tillidsrepræsentant"),
    ],
)
def test_special_categories_found(text: str, kind: EntityType, word: str) -> None:
    findings = [f for f in scan_text(text).findings if f.type is kind]
    [f] = [f for f in findings if f.text == word]
    assert text[f.start : f.end] == word
    assert scan_text(text).sensitivity is Sensitivity.SPECIAL


@pytest.mark.parametrize(
    "text",
    [
        "Vi drejer til venstre ved kirken.",  # "left" and a landmark, not beliefs
        "The union of two sets is a set.",
        "We turn left at the church.",
        "The weather is depressing.",
        "Ring til Kristensen i morgen.",  # a surname, not "kristen"
        "The race starts at noon.",
    ],
)
def test_ambiguous_words_without_a_personal_cue_are_not_special(text: str) -> None:
    assert detect_special_categories(text) == []


def test_impersonal_mention_is_reported_with_lower_confidence() -> None:
    [impersonal] = detect_special_categories("Cancer research got more funding.")
    [personal] = detect_special_categories("My mother has cancer.")
    assert impersonal.confidence < personal.confidence
    assert scan_text("Cancer research got more funding.").sensitivity is Sensitivity.SPECIAL
    strict = ScanOptions(min_confidence=0.6)
    assert scan_text("Cancer research got more funding.", strict).sensitivity is Sensitivity.NONE


def test_overlapping_terms_of_one_category_give_one_finding() -> None:
    text = "I have been a trade union member since 2010."
    findings = [f for f in scan_text(text).findings if f.type is EntityType.TRADE_UNION]
    assert [f.text for f in findings] == ["trade union"]
