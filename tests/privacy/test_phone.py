"""privacy/_phone.py: international and national formats for the regions we promise."""

from __future__ import annotations

import pytest

from privacy._phone import detect_phones


@pytest.mark.parametrize(
    "text, value",
    [
        ("ring +45 32 12 34 56 i dag", "+45 32 12 34 56"),
        ("Tel. +49 30 901820", "+49 30 901820"),
        ("appelez +33 1 42 68 53 00", "+33 1 42 68 53 00"),
        ("call +44 20 7946 0958", "+44 20 7946 0958"),
        ("call +1 (415) 555-2671", "+1 (415) 555-2671"),
        ("ring +46 8 123 456 78", "+46 8 123 456 78"),
        ("ring +47 22 12 34 56", "+47 22 12 34 56"),
        ("bel +31 20 123 4567", "+31 20 123 4567"),
        ("llama al +34 912 345 678", "+34 912 345 678"),
        ("chiama +39 06 1234 5678", "+39 06 1234 5678"),
        ("dial 0045 32 12 34 56", "0045 32 12 34 56"),
        ("Desk: +46 (0)8 928 571 38", "+46 (0)8 928 571 38"),
    ],
)
def test_international_numbers(text: str, value: str) -> None:
    [finding] = detect_phones(text)
    assert finding.text == value
    assert text[finding.start : finding.end] == value


@pytest.mark.parametrize(
    "text, value, region",
    [
        ("Skriv eller 32 12 34 56", "32 12 34 56", "DK"),
        ("Büro 030 901820", "030 901820", "DE"),
        ("au 01 42 68 53 00", "01 42 68 53 00", "FR"),
        ("office 020 7946 0958", "020 7946 0958", "GB"),
        ("at (415) 555-2671", "(415) 555-2671", "US"),
        ("växel 08-123 456 78", "08-123 456 78", "SE"),
        ("sentralbord 22 12 34 56", "22 12 34 56", "DK"),  # DK and NO share the shape
        ("centrale 020-123 4567", "020-123 4567", "NL"),
        ("oficina 912 345 678", "912 345 678", "ES"),
        ("ufficio 06 1234 5678", "06 1234 5678", "IT"),
    ],
)
def test_national_numbers(text: str, value: str, region: str) -> None:
    # Found with the default regions (whose reported region is a best guess: a national number
    # can be valid in several plans) and validated by the expected region's plan alone.
    [finding] = detect_phones(text)
    assert finding.text == value
    [own] = detect_phones(text, regions=(region,))
    assert (own.text, own.detail) == (value, region)


def test_region_list_is_configurable() -> None:
    assert detect_phones("kontor 22 12 34 56", regions=("NO",))[0].detail == "NO"


def test_extension_is_part_of_the_number() -> None:
    [finding] = detect_phones("call 415-555-2671 x123 today")
    assert finding.text == "415-555-2671 x123"


def test_unvalidated_number_is_reported_only_near_a_phone_word() -> None:
    assert detect_phones("Phone:\n467 3395")[0].confidence == 0.6
    assert detect_phones("Room 467 3395") == []


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-03-15 at 10:30",
        "born 15.03.2024",
        "20230115",
        "Invoice 32123456 total",
        "2015-12-22 04:34:22",
        "123",
        "version 1.2.3",
    ],
)
def test_not_phone_numbers(text: str) -> None:
    assert detect_phones(text) == []
