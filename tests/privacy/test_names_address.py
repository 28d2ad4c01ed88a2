"""privacy/_names.py and privacy/_address.py: offline heuristics, checked on typical forms."""

from __future__ import annotations

import pytest

from privacy import EntityType, redact, scan_text
from privacy._address import detect_addresses
from privacy._name_lexicon import FIRST_NAMES, LAST_NAMES
from privacy._names import detect_person_names


def test_lexicon_covers_danish_and_english_names() -> None:
    assert {"Søren", "Mette", "John", "Emma"} <= FIRST_NAMES
    assert {"Jensen", "Nielsen", "Smith"} <= LAST_NAMES


@pytest.mark.parametrize(
    "text, name",
    [
        ("Hej, jeg hedder Mette Frederiksen og bor i Odense.", "Mette Frederiksen"),
        ("Please forward this to John Smith tomorrow.", "John Smith"),
        ("Kære Søren Jensen", "Søren Jensen"),
        ("Dear Mrs. Okonkwo, thanks", "Okonkwo"),
        ("My name is Toshimi Arata.", "Toshimi Arata"),
        ("Bel Emma van Enschot morgen.", "Emma van Enschot"),
    ],
)
def test_person_names_found(text: str, name: str) -> None:
    findings = detect_person_names(text)
    assert name in [f.text for f in findings]
    f = next(f for f in findings if f.text == name)
    assert text[f.start : f.end] == name


@pytest.mark.parametrize(
    "text",
    ["The Board Meeting is on Monday.", "Vi ses i København.", "Read The Times", "Hello World"],
)
def test_capitalised_words_are_not_names_without_evidence(text: str) -> None:
    assert detect_person_names(text) == []


@pytest.mark.parametrize(
    "before, address, after",
    [
        ("Jeg bor på ", "Nørrebrogade 12, 2. th, 2200 København N", "."),
        ("Send it to ", "221 Baker Street", ", London"),
        ("I live at ", "353 Kathleen Highway Apt. 681\nLake Victoria, VI 39349", "."),
        ("Lieferadresse: ", "Hauptstraße 5, 10115 Berlin", ""),
        ("Adresse : ", "83, rue Arnaude Berthelot\n82202 Lombard", ""),
        ("Indirizzo: ", "Via Roma 12, 00184 Roma", ""),
        ("Adress: ", "Ängsgatan 78, 553 37 Kalmar", ""),
        ("Cím: ", "Andrássy út 60, 1062 Budapest", "."),
        ("Lakás: ", "Váci utca 5", ""),
        ("Heimilisfang: ", "Dalbraut 99", "."),
        ("Osoite: ", "Mannerheimintie 5, 00100 Helsinki", ""),
    ],
)
def test_postal_addresses_found(before: str, address: str, after: str) -> None:
    text = before + address + after
    findings = detect_addresses(text)
    assert address in [f.text for f in findings]
    f = next(f for f in findings if f.text == address)
    assert (f.start, f.end) == (len(before), len(before) + len(address))


@pytest.mark.parametrize(
    "text",
    [
        "During 1971 we moved.",
        "Meeting at 10 in room 4.",
        "About 660,000.",  # "Abo" + "ut" once read as a glued street name, 660 its number
        "About 660,000 people live there.",
        "Throughout 2020 we grew.",
        "The Hauptstraße 12,000 runners came.",  # a number, not a house number
    ],
)
def test_not_addresses(text: str) -> None:
    assert detect_addresses(text) == []


def test_a_population_figure_is_left_alone_by_the_scanner() -> None:
    text = "How many people live in Copenhagen? About 660,000."
    result = scan_text(text)
    assert [f.type for f in result.findings] == []
    assert redact(text, result.findings) == text


def test_street_named_after_a_person_is_an_address_not_a_name() -> None:
    [finding] = scan_text("Vi bor på H.C. Andersens Boulevard 27, 1553 København V").findings
    assert finding.type is EntityType.POSTAL_ADDRESS
