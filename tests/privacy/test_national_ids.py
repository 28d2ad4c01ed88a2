"""privacy/_national_ids.py: checksummed national identifiers, with and without cue words."""

from __future__ import annotations

import pytest

from privacy._national_ids import detect_national_ids


def _one(text: str) -> tuple[str, str | None]:
    findings = detect_national_ids(text)
    assert findings, text
    best = max(findings, key=lambda f: f.confidence)
    assert text[best.start : best.end] == best.text
    return best.text, best.detail


@pytest.mark.parametrize(
    "text, value, detail",
    [
        ("CPR: 010190-1234 tak", "010190-1234", "dk.cpr"),
        ("mit cpr-nr. er 2512881236", "2512881236", "dk.cpr"),
        ("SSN 536-90-4399.", "536-90-4399", "us.ssn"),
        ("social security number 536904399", "536904399", "us.ssn"),
        ("personnummer 19811218-9876", "19811218-9876", "se.personnummer"),
        ("fødselsnummer 15076500565", "15076500565", "no.fodselsnummer"),
        ("hetu 131052-308T", "131052-308T", "fi.hetu"),
        ("NIR 2 95 10 99 126 111 93", "2 95 10 99 126 111 93", "fr.nir"),
        ("codice fiscale RCCMNL83S18D969H", "RCCMNL83S18D969H", "it.codicefiscale"),
        ("DNI 54362315K", "54362315K", "es.dni"),
        ("NIE X2482300W", "X2482300W", "es.nie"),
        ("BSN 111222333", "111222333", "nl.bsn"),
        ("Steuer-ID 36 574 261 809", "36 574 261 809", "de.idnr"),
        ("PESEL 44051401359", "44051401359", "pl.pesel"),
        ("NHS number 943 476 5919", "943 476 5919", "gb.nhs"),
        ("NI number AB 12 34 56 C", "AB 12 34 56 C", "gb.nino"),
        ("rijksregisternummer 85.07.30-033.28", "85.07.30-033.28", "be.nn"),
    ],
)
def test_national_ids_found(text: str, value: str, detail: str) -> None:
    assert _one(text) == (value, detail)


@pytest.mark.parametrize(
    "text",
    [
        "CPR 320190-1234",  # day 32
        "CPR 011390-1234",  # month 13
        "SSN 666-12-3456",  # area 666 is never issued
        "SSN 900-12-3456",  # 9xx is never issued
        "SSN 123-00-4567",  # group 00
        "SSN 078-05-1120",  # the Woolworth wallet card number, blacklisted
        "fødselsnummer 15076500566",  # wrong check digits
        "hetu 131052-308U",  # wrong check character
        "codice fiscale RCCMNL83S18D969X",
        "DNI 54362315A",
        "BSN 111222334",
        "NI number QQ 12 34 56 C",  # QQ prefix is never issued
    ],
)
def test_invalid_checksums_rejected(text: str) -> None:
    assert detect_national_ids(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "invoice 2512881236",  # undashed 10-digit date needs a CPR cue
        "ref 536904399",  # undashed SSN needs a cue
        "code 111222333",  # mod-11 BSN needs a cue
        "order 44051401359",  # PESEL needs a cue
    ],
)
def test_weak_identifiers_need_a_cue(text: str) -> None:
    assert detect_national_ids(text) == []


def test_cpr_inside_a_longer_number_is_not_a_cpr() -> None:
    assert detect_national_ids("account 40101901234567 and 9010190-12345") == []
