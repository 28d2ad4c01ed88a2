"""National identification numbers, validated with python-stdnum.

A number whose checksum (or embedded date) is strong evidence on its own is reported wherever it
appears; a weak one (a 9-digit mod-11 number, an undashed 10-digit date) only near a cue word
such as "CPR" or "BSN", because random digit runs pass those checks too often. The US SSN has no
checksum: its dashed form plus SSA's area/group/serial rules is reported, other forms need a cue.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stdnum.be import nn as be_nn
from stdnum.de import idnr as de_idnr
from stdnum.dk import cpr as dk_cpr
from stdnum.es import dni as es_dni
from stdnum.es import nie as es_nie
from stdnum.fi import hetu as fi_hetu
from stdnum.fr import nir as fr_nir
from stdnum.gb import nhs as gb_nhs
from stdnum.it import codicefiscale as it_cf
from stdnum.nl import bsn as nl_bsn
from stdnum.no import fodselsnummer as no_fnr
from stdnum.pl import pesel as pl_pesel
from stdnum.se import personnummer as se_pnr
from stdnum.us import ssn as us_ssn

from privacy._context import cue_pattern, near
from privacy.types import EntityType, Finding

_D = r"(?<![\w.,/+-])"  # not inside a longer number, word, date or phone number
_E = r"(?![\w]|[.,/-]\d)"


@dataclass(frozen=True, slots=True)
class _IdRule:
    detail: str
    pattern: re.Pattern[str]
    is_valid: Callable[[str], bool]
    confidence: float
    cues: re.Pattern[str] | None = None  # required cue words; None = the checksum suffices
    cued_confidence: float = 0.95


def _cpr_valid(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return len(digits) == 10 and dk_cpr.is_valid(digits)


def _gb_nino_valid(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    return bool(_NINO_RULES.fullmatch(compact))


# HMRC's published rules: first letter not D F I Q U V, second not D F I O Q U V, and the
# prefixes BG GB KN NK NT TN ZZ are never issued. No checksum exists.
_NINO_RULES = re.compile(r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]")


def _rule(
    detail: str,
    pattern: str,
    is_valid: Callable[[str], bool],
    confidence: float,
    cues: list[str] | None = None,
    flags: int = 0,
) -> _IdRule:
    return _IdRule(
        detail,
        re.compile(_D + pattern + _E, flags),
        is_valid,
        confidence,
        cue_pattern(cues) if cues else None,
    )


_CPR_CUES = [
    r"cpr",
    r"cpr-?n(?:umme)?r\.?",
    r"cpr-nummer",
    r"personnummer",
    r"personnr\.?",
    r"civilregistreringsnummer",
    r"personal\s+id(?:entity)?(?:\s+number)?",
]
_SSN_CUES = [r"ssn", r"ss#", r"social\s+security(?:\s+(?:number|no\.?|#))?", r"taxpayer"]

_RULES: tuple[_IdRule, ...] = (
    _rule("se.personnummer", r"(?:\d{2})?\d{6}[-+]\d{4}", se_pnr.is_valid, 0.85),
    _rule("dk.cpr", r"\d{6}-\d{4}", _cpr_valid, 0.85),
    _rule("dk.cpr", r"\d{6} ?\d{4}", _cpr_valid, 0.4, _CPR_CUES),
    _rule(
        "se.personnummer",
        r"(?:19|20)?\d{10}",
        se_pnr.is_valid,
        0.4,
        [r"personnummer", r"personnr\.?", r"person\s?nr"],
    ),
    _rule("fi.hetu", r"\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]", fi_hetu.is_valid, 0.9),
    _rule("no.fodselsnummer", r"\d{6} ?\d{5}", no_fnr.is_valid, 0.85),
    _rule(
        "fr.nir",
        r"[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}",
        fr_nir.is_valid,
        0.9,
        flags=re.IGNORECASE,
    ),
    _rule(
        "it.codicefiscale",
        r"[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-EHLMPRST][0-9LMNPQRSTUV]{2}[A-Z]"
        r"[0-9LMNPQRSTUV]{3}[A-Z]",
        it_cf.is_valid,
        0.95,
        flags=re.IGNORECASE,
    ),
    _rule("es.dni", r"\d{8}-?[A-Z]", es_dni.is_valid, 0.85, flags=re.IGNORECASE),
    _rule("es.nie", r"[XYZ]-?\d{7}-?[A-Z]", es_nie.is_valid, 0.9, flags=re.IGNORECASE),
    _rule("be.nn", r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}", be_nn.is_valid, 0.9),
    _rule(
        "be.nn",
        r"\d{11}",
        be_nn.is_valid,
        0.4,
        [r"rijksregisternummer", r"numéro\s+national", r"national\s+number", r"insz", r"nn"],
    ),
    _rule(
        "nl.bsn",
        r"\d{4}\.?\d{2}\.?\d{3}|\d{9}",
        nl_bsn.is_valid,
        0.4,
        [r"bsn", r"burgerservicenummer", r"sofi-?nummer", r"citizen\s+service\s+number"],
    ),
    _rule(
        "de.idnr",
        r"\d{2} ?\d{3} ?\d{3} ?\d{3}",
        de_idnr.is_valid,
        0.4,
        [
            r"steuer-?id",
            r"steuer-?identifikationsnummer",
            r"idnr",
            r"tax\s+id(?:entification)?",
            r"identifikationsnummer",
        ],
    ),
    _rule("pl.pesel", r"\d{11}", pl_pesel.is_valid, 0.4, [r"pesel"]),
    _rule("gb.nhs", r"\d{3} ?\d{3} ?\d{4}", gb_nhs.is_valid, 0.4, [r"nhs(?:\s+(?:number|no\.?))?"]),
    _rule(
        "gb.nino",
        r"[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]",
        _gb_nino_valid,
        0.75,
        flags=re.IGNORECASE,
    ),
    _rule("us.ssn", r"\d{3}-\d{2}-\d{4}", us_ssn.is_valid, 0.85),
    _rule("us.ssn", r"\d{3} \d{2} \d{4}|\d{9}", us_ssn.is_valid, 0.4, _SSN_CUES),
)


def detect_national_ids(text: str) -> list[Finding]:
    """National identifiers of DK, SE, NO, FI, FR, IT, ES, BE, NL, DE, PL, GB and the US.
    Several rules can fit one span (a dashed 6-4 number may be a CPR and a Swedish personnummer);
    all are returned and the scanner keeps the most confident."""
    found = []
    for rule in _RULES:
        for m in rule.pattern.finditer(text):
            value = m.group()
            if not rule.is_valid(value):
                continue
            confidence = rule.confidence
            if rule.cues is not None:
                if not near(text, m.start(), m.end(), rule.cues):
                    continue
                confidence = rule.cued_confidence
            found.append(
                Finding(EntityType.NATIONAL_ID, m.start(), m.end(), value, confidence, rule.detail)
            )
    return found
