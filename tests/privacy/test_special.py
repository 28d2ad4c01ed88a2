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


@pytest.mark.parametrize(
    "text, word",
    [
        ("I am black.", "black"),
        ("I'm a black woman and I work in finance.", "black"),
        ("As a black woman in tech, I get asked this a lot.", "black"),
        ("She is half Arab.", "Arab"),
        ("My ethnicity is white British.", "white"),
        ("My mother is black, my father is Danish.", "black"),
        ("My black neighbour keeps getting stopped by the police.", "black"),
        ("He is a white man in his fifties.", "white"),
        ("I identify as Asian.", "Asian"),
        ("Being black, I notice who gets served first.", "black"),
        ("Anna is black and wants that noted.", "black"),
        ("They are Roma and moved here in 2015.", "Roma"),
        ("Jeg er arabisk og taler også dansk.", "arabisk"),
        ("Min mor er asiatisk.", "asiatisk"),
        ("Som arabisk kvinde bliver jeg ofte spurgt.", "arabisk"),
    ],
)
def test_colour_words_stating_a_persons_ethnicity_are_special(text: str, word: str) -> None:
    findings = [f for f in detect_special_categories(text) if f.type is EntityType.ETHNICITY]
    assert word in [f.text for f in findings]
    assert scan_text(text).sensitivity is Sensitivity.SPECIAL


@pytest.mark.parametrize(
    "text",
    [
        "I drink my coffee black.",
        "My black cat sleeps on the sofa.",
        "My car is white.",
        "I'm wearing my black jacket today.",
        "His white shirt was stained.",
        "I'm white-water rafting with my brother.",
        "My daughter's black belt exam is on Friday.",
        "I love Asian food, especially my mother's.",
        "Send it to my office at Via Roma 12, Milan.",
        "We keep our Arab horses at my uncle's farm.",
        "It is a white car.",
        "I am in the black this quarter.",
        "Jeg kan godt lide asiatisk mad, især min mors.",
    ],
)
def test_colour_words_in_everyday_use_near_my_are_not_special(text: str) -> None:
    assert [f for f in detect_special_categories(text) if f.type is EntityType.ETHNICITY] == []
    assert scan_text(text).sensitivity is not Sensitivity.SPECIAL


def test_other_weak_ethnicity_words_keep_the_personal_cue_rule() -> None:
    # "race" is not a colour word: a personal cue before it still counts.
    assert [f.text for f in detect_special_categories("My race is listed on the form.")] == ["race"]
    assert detect_special_categories("The race starts at noon.") == []
