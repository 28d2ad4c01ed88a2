"""privacy/_structured.py: e-mail, IBAN, payment cards, IP addresses (positives, negatives,
exact spans)."""

from __future__ import annotations

import pytest

from privacy import EntityType, scan_text
from privacy._structured import (
    card_brand,
    detect_emails,
    detect_ibans,
    detect_ip_addresses,
    detect_payment_cards,
)


def _spans(findings: list, text: str) -> list[str]:
    for f in findings:
        assert text[f.start : f.end] == f.text
    return [f.text for f in findings]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mail bob.smith+tag@example.co.uk now", ["bob.smith+tag@example.co.uk"]),
        ("skriv til søren@æblegård.dk.", ["søren@æblegård.dk"]),
        ("UPPER@EXAMPLE.ORG", ["UPPER@EXAMPLE.ORG"]),
    ],
)
def test_emails_found_with_exact_span(text: str, expected: list[str]) -> None:
    assert _spans(detect_emails(text), text) == expected


@pytest.mark.parametrize(
    "text", ["user@localhost", "a@b", "@example.com", "x..y@example.com", "price 5@10.00"]
)
def test_not_emails(text: str) -> None:
    assert detect_emails(text) == []


@pytest.mark.parametrize(
    "text, expected, country",
    [
        ("IBAN DK50 0040 0440 1162 43, tak", "DK50 0040 0440 1162 43", "DK"),
        ("to DE89370400440532013000.", "DE89370400440532013000", "DE"),
        ("my iban is gb82west12345698765432", "gb82west12345698765432", "GB"),
        ("FR14 2004 1010 0505 0001 3M02 606 and more", "FR14 2004 1010 0505 0001 3M02 606", "FR"),
    ],
)
def test_ibans_found(text: str, expected: str, country: str) -> None:
    [finding] = detect_ibans(text)
    assert finding.text == expected
    assert finding.detail == country
    assert text[finding.start : finding.end] == expected


@pytest.mark.parametrize(
    "text",
    [
        "DK51 0040 0440 1162 43",  # checksum off by one
        "DE89370400440532013001",
        "XX89370400440532013000",  # no such country
        "DK50 0040 0440 1162",  # too short for DK
    ],
)
def test_invalid_ibans_rejected(text: str) -> None:
    assert detect_ibans(text) == []


@pytest.mark.parametrize(
    "number, brand",
    [
        ("4111111111111111", "visa"),
        ("5555 5555 5555 4444", "mastercard"),
        ("2221-0000-0000-0009", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3530111333300000", "jcb"),
        ("30569309025904", "diners"),
        ("5019717010103742", "dankort"),
    ],
)
def test_payment_cards_found(number: str, brand: str) -> None:
    text = f"Pay with {number}."
    [finding] = detect_payment_cards(text)
    assert (finding.text, finding.detail) == (number, brand)
    assert text[finding.start : finding.end] == number


@pytest.mark.parametrize(
    "text",
    [
        "card 4111111111111112",  # Luhn fails
        "order 1234567890123",  # Luhn fails
        "ref 9999999999999995",  # Luhn passes, no scheme, no cue word
        "4111 1111-1111 1111",  # mixed separators are not how cards are written
        "00000000000000",
    ],
)
def test_invalid_cards_rejected(text: str) -> None:
    assert detect_payment_cards(text) == []


def test_luhn_valid_number_without_known_prefix_needs_a_card_word() -> None:
    number = "9999999999999995"
    assert card_brand(number) is None
    [finding] = detect_payment_cards(f"my card number is {number}")
    assert finding.detail == "unknown"
    assert finding.confidence < 0.8


@pytest.mark.parametrize(
    "text, expected",
    [
        ("from 192.168.1.10, port 22", ["192.168.1.10"]),
        ("client 8.8.8.8.", ["8.8.8.8"]),
        ("v6 2001:db8:85a3::8a2e:370:7334 seen", ["2001:db8:85a3::8a2e:370:7334"]),
        ("link-local fe80::1%eth0", ["fe80::1%eth0"]),
        ("6e40:4041:c617:e898:c11:40d2:c669:2eb4", ["6e40:4041:c617:e898:c11:40d2:c669:2eb4"]),
    ],
)
def test_ip_addresses_found(text: str, expected: list[str]) -> None:
    assert _spans(detect_ip_addresses(text), text) == expected


@pytest.mark.parametrize(
    "text", ["256.1.1.1", "1.2.3", "version 1.2.3.4", "at 12:30:45", "01.02.03.04", "1.2.3.4.5"]
)
def test_not_ip_addresses(text: str) -> None:
    assert detect_ip_addresses(text) == []


def test_loopback_addresses_identify_no_one() -> None:
    assert [f.confidence for f in detect_ip_addresses("127.0.0.1 and ::1")] == [0.3, 0.3]
    assert scan_text("serve on 127.0.0.1:8000 or [::1]").findings == ()


def test_structured_findings_are_typed_in_scan_result() -> None:
    result = scan_text("Send 4111 1111 1111 1111 receipts to ann@example.com from 10.0.0.7")
    assert [f.type for f in result.findings] == [
        EntityType.PAYMENT_CARD,
        EntityType.EMAIL,
        EntityType.IP_ADDRESS,
    ]
