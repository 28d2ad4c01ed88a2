"""Phone numbers: candidates by shape, validated with Google's libphonenumber data.

International numbers (``+`` or ``00``) are parsed without a region. National numbers are tried
against a list of regions and must start with that region's trunk prefix when it has one (a
German national number starts with 0), which keeps dates and amounts from parsing as phones.
A number no region validates is still reported near a phone cue word ("tel", "ring", "call me
at"), since people write numbers from countries outside the list, and numbering plans change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers
from phonenumbers import NumberParseException

from privacy._context import cue_pattern, near
from privacy.types import EntityType, Finding

# Order decides only the reported region when several validate a national number; Germany's
# open numbering plan validates the most, so it comes after its neighbours.
DEFAULT_REGIONS: tuple[str, ...] = (
    "DK", "GB", "US", "SE", "NO", "NL", "FR", "ES", "IT", "DE",
    "CA", "BE", "CH", "AT", "FI", "IE", "PT", "PL", "AU",
)  # fmt: skip

_BODY = r"\d(?:[ .\-/]?\d| ?\(\d{1,4}\)[ .\-]?\d)*"
_CANDIDATE = re.compile(
    r"(?<![\w@/.+\-])(?:\+ ?)?(?:\(\+?\d{1,5}\) ?[.\-]?)?"
    + _BODY
    + r"(?P<ext> ?(?:x|ext\.?|extension|#) ?\d{1,6})?(?!\w|[.\-/,:]\d)",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"(?:19|20)\d{2}[-./ ]?(?:0[1-9]|1[0-2])[-./ ]?(?:0[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-./ ](?:0?[1-9]|1[0-2])[-./ ](?:19|20)?\d{2}"
)
_PHONE_CUES = cue_pattern(
    [r"phone", r"tel", r"tel\.", r"telephone", r"mobile", r"mob", r"cell(?:phone)?", r"fax",
     r"call", r"calling", r"ring", r"sms", r"text(?:\s+me)?", r"whats\s?app", r"contact",
     r"reach", r"answering", r"messages?", r"dial", r"office", r"desk", r"direct", r"hotline",
     r"erreichbar", r"træffes", r"telefon\w*", r"tlf\.?", r"mobil\w*", r"opkald",
     r"ringe?", r"handy", r"rufnummer", r"anrufen", r"t[ée]l[ée]phone", r"t[ée]l\.?",
     r"portable", r"appele[rz]", r"telefoon", r"bel(?:len)?", r"mobiel", r"tel[ée]fono",
     r"m[óo]vil", r"llam\w+", r"cellulare", r"chiam\w+"]
)  # fmt: skip
_NOT_PHONE_CUES = cue_pattern(
    [r"order", r"invoice", r"faktura\w*", r"ordre\w*", r"account", r"konto(?:nummer|nr\.?)?",
     r"ref\.?", r"reference", r"id", r"kr\.?", r"dkk", r"eur", r"usd", r"sek", r"nok", r"gbp",
     r"amount", r"total", r"bel[øo]b", r"price", r"pris", r"version", r"isbn", r"serial",
     r"licen[cs]e", r"passport", r"date", r"dato", r"datum"]
)  # fmt: skip
_NANP = frozenset({"US", "CA"})


def _national_prefix(region: str) -> str | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return None if metadata is None else metadata.national_prefix


def _parse(number: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(number, region)
    except NumberParseException:
        return None


def detect_phones(text: str, regions: Iterable[str] = DEFAULT_REGIONS) -> list[Finding]:
    """Phone numbers in international or national format (``regions`` are ISO 3166 codes
    tried in order for national numbers; the first that validates is the finding's detail)."""
    regions = tuple(regions)
    found = []
    for m in _CANDIDATE.finditer(text):
        value = m.group()
        main = value[: m.start("ext") - m.start()] if m.group("ext") else value
        digits = re.sub(r"\D", "", main)
        if not 7 <= len(digits) <= 15:
            continue
        cued = near(text, m.start(), m.end(), _PHONE_CUES)
        if not cued and _DATE.fullmatch(main.strip("()")):
            continue
        detail: str | None = None
        confidence = 0.0
        international = main.startswith("+") or (main.startswith("00") and len(digits) > 9)
        if international:
            number = _parse("+" + digits[2:] if main.startswith("00") else main, None)
            if number is not None and phonenumbers.is_valid_number(number):
                detail = phonenumbers.region_code_for_number(number)
                confidence = 0.9
            elif number is not None and phonenumbers.is_possible_number(number):
                confidence = 0.85 if cued else 0.65
        if not confidence:
            stripped = main.lstrip("(")
            for region in regions:
                prefix = _national_prefix(region)
                if prefix and region not in _NANP and not stripped.startswith(prefix):
                    continue
                number = _parse(main, region)
                if number is not None and phonenumbers.is_valid_number(number):
                    detail, confidence = region, (0.9 if cued else 0.75)
                    break
        if not confidence and cued and 7 <= len(digits) <= 13:
            confidence = 0.6
        if not confidence:
            continue
        if not cued and near(text, m.start(), m.end(), _NOT_PHONE_CUES, before=25, after=10):
            continue
        found.append(Finding(EntityType.PHONE, m.start(), m.end(), value, confidence, detail))
    return found
