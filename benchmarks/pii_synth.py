"""A labelled synthetic PII set, generated at run time with Faker (seeded), never stored.

Sentences in nine languages are filled from templates with Faker values of the matching locale
(names, e-mail addresses, phone numbers, IBANs, cards, IP and postal addresses) plus national
identifiers (Faker's, checked with python-stdnum; Danish CPR numbers are made here since Faker's
da_DK provider has none). Each record carries gold spans with character offsets. Special-category
sentences (English and Danish) and PII-free distractors (dates, amounts, order numbers, version
strings, non-personal mentions of "church" or "left") measure precision.

Caveat: person names come from the same Faker lists the name lexicon is built from, so person
recall here is optimistic; the Presidio set gives an independent figure.
"""

from __future__ import annotations

import datetime
import random
import re
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

LOCALES = ("en_US", "en_GB", "da_DK", "de_DE", "fr_FR", "sv_SE", "no_NO", "nl_NL", "es_ES", "it_IT")
_LANG = {loc: loc.split("_")[0] for loc in LOCALES}

# Templates: {kind} placeholders; several per language, with and without cue words.
_TEMPLATES: dict[str, list[str]] = {
    "en": [
        "Hi, I'm {person}, you can reach me at {email} or call {phone}.",
        "Please send the invoice to {person}, {address}.",
        "My card number is {card} and it expires next month.",
        "Transfer the deposit to IBAN {iban} before Friday.",
        "Her SSN is {us_ssn}.",
        "The login came from {ip} at 03:14.",
        "Contact: {person} <{email}>, tel. {phone}",
        "{person} moved to {address} last spring.",
        "Customer {person}\nPhone: {phone}\nE-mail: {email}",
        "Wire it to {iban}, reference {person}.",
        "Charge {card} for the room.",
        "We blocked {ip} after repeated failures.",
        "Text me on {phone} when you arrive.",
        "{phone}",
    ],
    "da": [
        "Hej, jeg hedder {person} og bor på {address}.",
        "Mit CPR-nummer er {dk_cpr}, og min mail er {email}.",
        "Ring til mig på {phone} i morgen.",
        "Overfør beløbet til {iban}.",
        "Betalingskort: {card}",
        "Kontakt {person} på tlf. {phone} eller {email}.",
        "CPR {dk_cpr_compact} er registreret hos kommunen.",
        "Forbindelsen kom fra {ip}.",
        "Send pakken til {person}, {address}.",
        "Du kan skrive til {email} eller sms'e {phone}.",
    ],
    "de": [
        "Mein Name ist {person}, erreichbar unter {phone} oder {email}.",
        "Bitte überweisen Sie an {iban}.",
        "Lieferadresse: {address}",
        "Die Kreditkarte {card} wurde gesperrt.",
        "Zugriff von {ip} protokolliert.",
    ],
    "fr": [
        "Je m'appelle {person}, mon téléphone est le {phone}.",
        "Mon numéro de sécurité sociale est {fr_nir}.",
        "Envoyez le colis à {address}.",
        "Virement sur {iban} avec la carte {card}.",
        "Écrivez-moi à {email}.",
    ],
    "sv": [
        "Jag heter {person} och mitt personnummer är {se_pnr}.",
        "Ring mig på {phone}.",
        "Adress: {address}",
        "Betala till {iban}, mejla kvittot till {email}.",
    ],
    "no": [
        "Jeg heter {person}, fødselsnummer {no_fnr}.",
        "Ring meg på {phone} eller send e-post til {email}.",
        "Adressen er {address}.",
        "Kontonummer {iban}.",
    ],
    "nl": [
        "Mijn naam is {person}, BSN {nl_bsn}.",
        "Bel me op {phone} of mail naar {email}.",
        "Mijn adres is {address}.",
        "Rekeningnummer {iban}.",
    ],
    "es": [
        "Me llamo {person} y mi DNI es {es_dni}.",
        "Llámame al {phone}, mi correo es {email}.",
        "Dirección: {address}",
        "Pague con la tarjeta {card} o a la cuenta {iban}.",
    ],
    "it": [
        "Mi chiamo {person}, codice fiscale {it_cf}.",
        "Chiamami al {phone} o scrivi a {email}.",
        "Indirizzo: {address}",
        "Bonifico su {iban}.",
    ],
}

_SPECIAL: list[tuple[str, str, str]] = [
    # (template with {x}, value, type)
    ("I have had {x} since I was a child.", "diabetes", "health"),
    ("My brother has {x} and can't work.", "schizophrenia", "health"),
    ("She stays at home because of {x}.", "depression", "health"),
    ("Jeg har {x} og skal til kontrol.", "sukkersyge", "health"),
    ("Han er {x} i denne uge.", "sygemeldt", "health"),
    ("Hun fik konstateret {x} i foråret.", "kræft", "health"),
    ("He is a practising {x}.", "Muslim", "religion"),
    ("Jeg er {x} og synger i koret.", "katolik", "religion"),
    ("I have been a {x} member since 2010.", "trade union", "trade_union"),
    ("Han er medlem af en {x}.", "fagforening", "trade_union"),
    ("I vote for the {x} every time.", "Green Party", "political_opinion"),
    ("Jeg stemmer på {x}.", "Enhedslisten", "political_opinion"),
    ("My partner and I are both {x}.", "gay", "sexual_orientation"),
    ("Hun er {x}.", "lesbisk", "sexual_orientation"),
    ("He is {x}.", "of Somali descent", "ethnicity"),
    ("Han er {x}.", "af tyrkisk oprindelse", "ethnicity"),
    ("The app stores my {x}.", "fingerprint", "biometric"),
    ("Vi gemmer medarbejdernes {x}.", "fingeraftryk", "biometric"),
    ("Her {x} results arrived today.", "genetic test", "genetic"),
    ("Min {x} viste en arvelig sygdom.", "gentest", "genetic"),
]

_DISTRACTORS = [
    "The meeting is on 2024-03-15 at 10:30 in room 4.",
    "Order 58213 shipped on 12.03.2024, total 1.249,00 kr.",
    "Version 2.4.1 fixes the login bug.",
    "We turn left at the church and park by the river.",
    "Vi drejer til venstre ved kirken.",
    "Invoice 20230115 is due in 30 days, amount 12345678 DKK.",
    "The union of two sets is a set.",
    "Møde den 15/03/2024 kl. 14.00 i lokale 2.",
    "The report has 1,234,567 rows and 89 columns.",
    "Cancer research received more funding this year.",
]


_US = Faker("en_US")  # SSNs for every English template (en_GB's ssn() is a NINO)


@dataclass
class Record:
    text: str
    spans: list[dict[str, Any]] = field(default_factory=list)
    locale: str = ""


def _cpr(rng: random.Random) -> str:
    day = datetime.date(1940, 1, 1) + datetime.timedelta(days=rng.randrange(365 * 60))
    # Digit 7 with the year decides the century (CPR rules): 0-3 for 1900-1999.
    return f"{day:%d%m%y}-{rng.randrange(0, 4)}{rng.randrange(1000):03d}"


def _value(kind: str, fake: Faker, rng: random.Random) -> tuple[str, str, str | None]:
    """(text, type, detail) for one placeholder."""
    if kind == "person":
        return f"{fake.first_name()} {fake.last_name()}", "person", None
    if kind == "email":
        return fake.email(), "email", None
    if kind == "phone":
        number = fake.phone_number()
        detail = "intl" if number.startswith(("+", "00")) else "national"
        return number, "phone", detail
    if kind == "iban":
        return fake.iban(), "iban", None
    if kind == "card":
        brand = rng.choice(["visa", "mastercard", "amex", "discover", "jcb16", "diners", "maestro"])
        number = fake.credit_card_number(brand)
        if rng.random() < 0.3 and len(number) == 16:
            number = " ".join(number[i : i + 4] for i in range(0, 16, 4))
        return number, "payment_card", brand
    if kind == "ip":
        choice = rng.random()
        if choice < 0.4:
            return fake.ipv4_public(), "ip_address", "v4"
        if choice < 0.6:
            return fake.ipv4_private(), "ip_address", "v4"
        return fake.ipv6(), "ip_address", "v6"
    if kind == "address":
        return fake.address(), "postal_address", None
    if kind == "dk_cpr":
        return _cpr(rng), "national_id", "dk.cpr"
    if kind == "dk_cpr_compact":
        return _cpr(rng).replace("-", ""), "national_id", "dk.cpr"
    if kind == "us_ssn":
        return _US.ssn(), "national_id", "us.ssn"
    ids = {
        "fr_nir": ("ssn", "fr.nir"),
        "se_pnr": ("ssn", "se.personnummer"),
        "no_fnr": ("ssn", "no.fodselsnummer"),
        "nl_bsn": ("ssn", "nl.bsn"),
        "es_dni": ("nif", "es.dni"),
        "it_cf": ("ssn", "it.codicefiscale"),
    }
    method, detail = ids[kind]
    return getattr(fake, method)(), "national_id", detail


def _fill(template: str, fake: Faker, rng: random.Random, locale: str) -> Record:
    record = Record("", [], locale)
    parts: list[str] = []
    cursor = 0
    offset = 0
    for m in re.finditer(r"\{(\w+)\}", template):
        literal = template[cursor : m.start()]
        parts.append(literal)
        offset += len(literal)
        value, kind, detail = _value(m.group(1), fake, rng)
        parts.append(value)
        record.spans.append(
            {"type": kind, "start": offset, "end": offset + len(value), "detail": detail}
        )
        offset += len(value)
        cursor = m.end()
    parts.append(template[cursor:])
    record.text = "".join(parts)
    return record


def generate(n_per_locale: int = 60, seed: int = 20261125) -> list[Record]:
    """Records for every locale, special-category sentences and distractors, reproducible
    for a given seed."""
    rng = random.Random(seed)
    _US.seed_instance(seed)
    records: list[Record] = []
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(rng.randrange(2**32))
        templates = _TEMPLATES[_LANG[locale]]
        for i in range(n_per_locale):
            records.append(_fill(templates[i % len(templates)], fake, rng, locale))
        if locale == "en_US":  # US SSNs need the US provider
            for _ in range(n_per_locale // 2):
                records.append(_fill("His social security number is {us_ssn}.", fake, rng, locale))
        if locale == "da_DK":  # CPR numbers in both forms, more of them
            for i in range(n_per_locale // 2):
                template = "CPR-nr.: {dk_cpr}" if i % 2 else "Mit cpr er {dk_cpr_compact}."
                records.append(_fill(template, fake, rng, locale))
    for template, value, kind in _SPECIAL:
        start = template.index("{x}")
        text = template.replace("{x}", value)
        records.append(
            Record(
                text, [{"type": kind, "start": start, "end": start + len(value), "detail": None}]
            )
        )
    records.extend(Record(text) for text in _DISTRACTORS)
    return records
