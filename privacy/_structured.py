"""Detectors for identifiers with a fixed shape: e-mail, IBAN, payment cards, IP addresses.

Each candidate found by a pattern is validated (IBAN mod-97, Luhn plus issuer prefixes,
``ipaddress``) so that random digit runs are not reported.
"""

from __future__ import annotations

import ipaddress
import re

from stdnum import iban as _iban
from stdnum import luhn as _luhn

from privacy._context import cue_pattern, near
from privacy.types import EntityType, Finding

_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
)


def detect_emails(text: str) -> list[Finding]:
    """E-mail addresses (Unicode letters allowed in the local part and domain)."""
    found = []
    for m in _EMAIL.finditer(text):
        value = m.group()
        if value.startswith(".") or ".." in value:
            continue
        found.append(Finding(EntityType.EMAIL, m.start(), m.end(), value, 0.95))
    return found


_IBAN_COMPACT = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}[A-Za-z0-9]{11,30}(?![\w])")
_IBAN_SPACED = re.compile(
    r"(?<![\w])[A-Za-z]{2}\d{2}(?:[ \-][A-Za-z0-9]{4}){2,7}(?:[ \-][A-Za-z0-9]{1,3})?(?![\w])"
)


def detect_ibans(text: str) -> list[Finding]:
    """IBANs, compact or in groups of four, validated by country length and mod-97 checksum.
    A spaced candidate that runs into a following word is shortened group by group."""
    found: dict[tuple[int, int], Finding] = {}
    for pattern in (_IBAN_COMPACT, _IBAN_SPACED):
        for m in pattern.finditer(text):
            start, value = m.start(), m.group()
            while len(value) >= 15:
                if _iban.is_valid(value.upper()):
                    span = (start, start + len(value))
                    found[span] = Finding(EntityType.IBAN, *span, value, 0.97, value[:2].upper())
                    break
                cut = max(value.rfind(" "), value.rfind("-"))
                if cut <= 4:
                    break
                value = value[:cut]
    return list(found.values())


# Issuer identification number ranges (public scheme rules), longest prefix first.
_CARD_BRANDS: tuple[tuple[str, tuple[tuple[int, int], ...], tuple[int, ...]], ...] = (
    ("dankort", ((5019, 5019),), (16,)),
    ("visa", ((4, 4),), (13, 16, 19)),
    ("mastercard", ((51, 55), (2221, 2720)), (16,)),
    ("amex", ((34, 34), (37, 37)), (15,)),
    ("discover", ((6011, 6011), (644, 649), (65, 65), (622126, 622925)), (16, 17, 18, 19)),
    ("diners", ((300, 305), (3095, 3095), (36, 36), (38, 39)), (14, 15, 16, 17, 18, 19)),
    ("jcb", ((3528, 3589),), (16, 17, 18, 19)),
    ("jcb", ((1800, 1800), (2131, 2131)), (15,)),
    ("unionpay", ((62, 62),), (16, 17, 18, 19)),
    ("mir", ((2200, 2204),), (16, 17, 18, 19)),
    ("maestro", ((50, 50), (56, 69)), (12, 13, 14, 15, 16, 17, 18, 19)),
)
_CARD = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){11,18}(?![\w]|[.,-]\d)")
_CARD_CUES = cue_pattern(
    [r"cards?", r"cc", r"credit", r"debit", r"visa", r"master\s?card", r"amex", r"kort\w*",
     r"betalingskort", r"kreditkort", r"karte", r"kreditkarte", r"carte", r"tarjeta", r"carta",
     r"kaart", r"pan", r"charged?", r"pay(?:ment)?", r"paid", r"betal\w*"]
)  # fmt: skip


def card_brand(digits: str) -> str | None:
    """The scheme whose IIN range and length fit ``digits``, or ``None``."""
    for brand, ranges, lengths in _CARD_BRANDS:
        if len(digits) not in lengths:
            continue
        for low, high in ranges:
            width = len(str(low))
            if low <= int(digits[:width]) <= high:
                return brand
    return None


def detect_payment_cards(text: str) -> list[Finding]:
    """Card numbers of 12-19 digits (single spaces or dashes between groups) passing Luhn.
    A known scheme prefix gives high confidence; a Luhn-valid number without one is reported
    only when a card word stands near it."""
    found = []
    for m in _CARD.finditer(text):
        value = m.group()
        separators = set(re.sub(r"\d", "", value))
        if len(separators) > 1:
            continue
        digits = re.sub(r"\D", "", value)
        if len(set(digits)) < 2 or not _luhn.is_valid(digits):
            continue
        brand = card_brand(digits)
        if brand is not None:
            confidence = 0.95 if near(text, m.start(), m.end(), _CARD_CUES) else 0.85
        elif near(text, m.start(), m.end(), _CARD_CUES):
            brand, confidence = "unknown", 0.7
        else:
            continue
        found.append(Finding(EntityType.PAYMENT_CARD, m.start(), m.end(), value, confidence, brand))
    return found


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:|:){1,7}(?::|(?::?[0-9A-Fa-f]{1,4}))"
    r"(?:(?::[0-9A-Fa-f]{1,4})*|(?::\d{1,3}(?:\.\d{1,3}){3}))(?:%[\w.]+)?(?![\w:])"
)
_VERSION_CUE = re.compile(r"(?:\bv|version|release|ver\.?)\s*$", re.IGNORECASE)


def _ip_confidence(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> float:
    """Loopback and unspecified addresses (127.0.0.1, ::1, 0.0.0.0) identify no one: they are
    returned below the default threshold so configuration snippets do not read as personal."""
    return 0.3 if address.is_loopback or address.is_unspecified else 0.9


def detect_ip_addresses(text: str) -> list[Finding]:
    """IPv4 (dotted quad, each octet 0-255, no leading-zero octets) and IPv6 (any valid
    ``ipaddress`` form with at least two colons and a hex group)."""
    found = []
    for m in _IPV4.finditer(text):
        value = m.group()
        if any(len(o) > 1 and o[0] == "0" for o in value.split(".")):
            continue
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(value)
        except ValueError:
            continue
        if _VERSION_CUE.search(text, max(0, m.start() - 12), m.start()):
            continue
        found.append(
            Finding(EntityType.IP_ADDRESS, m.start(), m.end(), value, _ip_confidence(address), "v4")
        )
    for m in _IPV6.finditer(text):
        value = m.group()
        if value.count(":") < 2 or not re.search(r"[0-9A-Fa-f]", value):
            continue
        try:
            address = ipaddress.IPv6Address(value)
        except ValueError:
            continue
        # "12:30:45"-like times are not valid IPv6; short all-digit forms are still too risky.
        if value.count(":") < 3 and "::" not in value:
            continue
        found.append(
            Finding(EntityType.IP_ADDRESS, m.start(), m.end(), value, _ip_confidence(address), "v6")
        )
    return found
