"""Postal addresses by street-name grammar (English house-number-first, continental
street-suffix-then-number, Romance "rue/via/calle" forms, post boxes), extended over a
following postcode-and-city line. Offline heuristics: good on addresses written out in full,
blind to bare city names."""

from __future__ import annotations

import re

from privacy.types import EntityType, Finding

_CAP = r"[A-ZÀ-ÖØ-Þ][\wÀ-ÿ'\u2019.\-]*"
_EN_SUFFIX = (
    r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Court|Ct|Place|Pl"
    r"|Square|Sq|Terrace|Ter|Highway|Hwy|Parkway|Pkwy|Circle|Cir|Close|Crescent|Cres|Gardens"
    r"|Grove|Hill|Park|Row|Walk|Mews|Trail|Plaza|Loop|Pike|Ridge|Heights|Fields?|Forges?"
    r"|Green|Gate|Alley|Bypass|Causeway|Crossing|Expressway|Freeway|Junction|Manor|Meadows?"
    r"|Mill|Orchard|Passage|Path|Point|Port|Roads|Route|Spring|Springs|Station|Stream|Summit"
    r"|Turnpike|Valley|View|Village|Vista|Wells?|Landing|Lock|Lodge|Motorway|Overpass|Plains?"
    r"|Ranch|Rapids?|Rest|Run|Shoals?|Shore|Stravenue|Track|Trafficway|Tunnel|Underpass"
    r"|Union|Ville|Crest|Cove|Creek|Dale|Dam|Divide|Estates?|Extension|Falls|Ferry|Flats?"
    r"|Ford|Forest|Fork|Fort|Harbor|Haven|Island|Isle|Key|Knolls?|Lake|Lakes|Light|Mission"
    r"|Mount|Mountain|Neck|Oval|Pine|Pines|Prairie|Radial|Ramp|Ridge|Shoal|Squares?|Throughway"
    r"|Unions?|Wall|Well|Wharf|Broadway|Lights?|Spurs?|Shores?|Burgs?|Bluffs?|Bottom|Branch"
    r"|Brooks?|Camp|Canyon|Cape|Centers?|Cliffs?|Club|Common|Corners?|Course|Courts|Coves"
    r"|Curve|Drives|Fall|Flat|Fords|Forks|Gardens|Gateway|Glens?|Greens|Groves"
    r"|Harbors|Hills|Hollow|Inlet|Islands|Junctions|Keys|Knoll|Lakes|Loaf|Locks|Mall"
    r"|Mills|Missions|Mounts|Mountains|Parks|Parkways|Pass|Points"
    r"|Ports|Skyway|Streets|Trace|Trailer|Valleys|Viaduct|Views|Villes|Vistas|Walks|Ways)\.?"
)
# A house number is not the head of a larger number ("660,000", "12.5").
_HOUSE_NO_END = r"(?![.,]\d)"
_UNIT = r"(?:,?\s(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Floor|#)\s?[\w-]+)?"
_STREET_EN = rf"(?<!\d[.,])\d{{1,6}}[A-Za-z]?\s(?:{_CAP}\s){{1,4}}{_EN_SUFFIX}{_UNIT}"
_CONT_SUFFIX = (
    r"(?:vej|vejen|gade|gaden|allé|alle|stræde|strædet|plads|pladsen|vænget|torv|torvet|have"
    r"|parken|bakken|straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|gatan|vägen"
    r"|gränd|torget|stigen|backen|veien|vegen|gata|gate|straat|laan|gracht|plein|kade|singel"
    r"|steeg|dreef|tie|katu|kuja|polku|ulica|braut|vegur|stígur)"
)
# Hungarian street words are separate words ("Váci utca 5", "Andrássy út 60"), never glued
# on: glued, "ut" turned English words into streets ("About 660", "Throughout 2020").
_STREET_HU = rf"{_CAP}\s(?:utca|út|tér|körút)\s\d{{1,4}}{_HOUSE_NO_END}"
_STREET_CONT = (
    rf"(?:{_CAP}\s)?[A-ZÀ-ÖØ-Þ][\wÀ-ÿ'\-]{{2,}}{_CONT_SUFFIX}"
    rf"(?:\s\d{{1,4}}{_HOUSE_NO_END}(?:\s?[A-Za-z](?!\w))?(?:[-/]\d{{1,4}})?"
    r"(?:,?\s\d{1,2}\.?\s?(?:th|tv|mf|sal)?\.?)?)"
)
_ROMANCE = (
    r"(?:rue|avenue|boulevard|bd|chemin|place|allée|impasse|quai|route|cours|via|viale|piazza"
    r"|corso|vicolo|largo|contrada|borgo|calle|avenida|plaza|paseo|carrer|camino|ronda|rua"
    r"|travessa|urbanización|callejón|pasaje|glorieta|cuesta)"
)
_STREET_ROMANCE = (
    rf"(?:\d{{1,4}}(?:\s?(?:bis|ter))?,?\s{_ROMANCE}\s(?:[\wÀ-ÿ'\u2019\-]+\s?){{1,5}}"
    rf"|(?<![\w]){_ROMANCE}\s(?:[\wÀ-ÿ'\u2019\-]+\s){{0,4}}[\wÀ-ÿ'\u2019\-]+,?\s\d{{1,4}}[A-Za-z]?{_HOUSE_NO_END})"
)
_PO_BOX = (
    r"(?:P\.?\s?O\.?\s?Box|Postboks|Postfach|Box|Boîte\s+postale)\s\d{1,6}"
    r"|(?:PSC|Unit)\s\d{4},\sBox\s\d{4}"
    r"|(?:USNS|USNV|USS|USCGC)\s[A-Z][a-z]+"
)
_STREET = re.compile(rf"(?<![\w])(?:{_STREET_EN}|{_STREET_CONT}|{_STREET_HU}|{_PO_BOX})(?![\w])")
# Romance street words are lower-case in running text ("83, rue ...") and capitalised at a line
# start ("Via Roma 12"), so they match case-insensitively.
_STREET_ROMANCE_CI = re.compile(rf"(?<![\w])(?:{_STREET_ROMANCE})(?![\w])", re.IGNORECASE)
# A following line (or comma part) with a postcode and place, or a US "City, ST 12345".
_TAIL = re.compile(
    r"(?:,?\s{0,2}\n?\s?|,\s)"
    r"(?:[A-Z]{1,2}-)?(?:\d{4}\s?[A-Z]{2}(?![\w])|\d{4,5}|\d{3}\s\d{2}|\d{2}-\d{3}"
    r"|[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2})"
    rf"(?:\s{_CAP}(?:\s{_CAP}){{0,2}})?"
    rf"|(?:,?\s{{0,2}}\n?\s?){_CAP}(?:\s{_CAP}){{0,2}},\s[A-Z]{{2}}\s\d{{5}}(?:-\d{{4}})?"
    r"|\s?\n?\s?[AFD]PO\sA[AEP]\s\d{5}"
)


def detect_addresses(text: str) -> list[Finding]:
    """Street addresses, optionally with the postcode/city that follows on the same or next
    line."""
    found: dict[int, Finding] = {}
    for pattern in (_STREET, _STREET_ROMANCE_CI):
        for m in pattern.finditer(text):
            end = m.end()
            for _ in range(2):
                tail = _TAIL.match(text, end)
                if tail is None or not tail.group().strip(", \n"):
                    break
                end = tail.end()
            value = text[m.start() : end].rstrip(", \n.")
            end = m.start() + len(value)
            previous = found.get(m.start())
            if previous is None or previous.end < end:
                found[m.start()] = Finding(EntityType.POSTAL_ADDRESS, m.start(), end, value, 0.8)
    return list(found.values())
