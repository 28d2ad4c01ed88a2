"""Person names, offline, from a given-name/surname lexicon (``_name_lexicon``) plus cues.

A run of two to four capitalised words counts as a name when it starts with a known given name
and ends with a known surname, or when a title ("Mr", "Dr", "fru") or a phrase such as "my name
is" / "jeg hedder" stands before it. A lone known given name counts only after such a phrase.
This misses names outside the lexicon that have no cue, and it cannot tell "Mark" the name
from "mark" at a sentence start; a statistical NER model would do better at a large cost.
"""

from __future__ import annotations

import re

from privacy._name_lexicon import FIRST_NAMES, LAST_NAMES
from privacy.types import EntityType, Finding

_WORD = (
    r"[A-ZÀ-ÖØ-ÞŁŠŽČŘŚŹĆŃ][a-zß-öø-ÿłšžčřśźćńőűěůýíáéóú'\u2019]+"
    r"(?:-[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ'\u2019]+)?"
)
_INITIAL = r"[A-Z]\."
_PARTICLE = r"(?:van|von|de|der|den|af|la|le|di|da|du|dos|del|ten|ter)\s"
_RUN = re.compile(
    rf"(?<![\w@.])(?:{_WORD})(?:\s(?:{_INITIAL}\s)?(?:{_PARTICLE}){{0,2}}(?:{_WORD})){{0,3}}(?![\w@])"
)
_TITLE = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Lady|Lord|Hr|Fru|Frk|Herr|Frau|Mme|Mlle|M"
    r"|Sig|Sig\.ra|Sra|Sr|Dhr|Mevr|Fr)\.?\s)$"
)
_INTRO = re.compile(
    r"(?:my name is|name is|i am|i'm|this is|call me|signed|regards,?|sincerely,?|name:"
    r"|jeg hedder|mit navn er|jeg er|hilsen|med venlig hilsen|navn:|ich heiße|mein name ist"
    r"|je m'appelle|jag heter|ik heet|me llamo|mi chiamo|contact person:|kontaktperson:)\s*$",
    re.IGNORECASE,
)
_NOT_NAME = frozenset(
    """The This That These Those There Here When Where What Which Who Why How And But Or If
    Dear Hi Hello Thanks Thank Please Yes No Monday Tuesday Wednesday Thursday Friday Saturday
    Sunday January February March April May June July August September October November
    December Street Road Avenue Lane Mail Phone Email Address Name Mobile Office Fax Desk
    Hej Kære Tak Mandag Tirsdag Onsdag Torsdag Fredag Lørdag Søndag Januar Februar Marts Maj
    Juni Juli Oktober Jeg Vi De Den Det Han Hun Min Mit Mine I My Our Your His Her Their""".split()
)


def _known_first(word: str) -> bool:
    return word in FIRST_NAMES or word.split("-")[0] in FIRST_NAMES


def _known_last(word: str) -> bool:
    return word in LAST_NAMES or any(part in LAST_NAMES for part in word.split("-"))


def detect_person_names(text: str) -> list[Finding]:
    """Person names by lexicon and cue (see the module docstring for what this misses)."""
    found = []
    for m in _RUN.finditer(text):
        words = [w for w in m.group().split() if w]
        start = m.start()
        # Drop leading words that cannot start a name ("Dear", "Monday").
        while words and words[0] in _NOT_NAME:
            start += len(words[0]) + 1
            words = words[1:]
        while words and words[-1] in _NOT_NAME:
            words = words[:-1]
        # "I'm John Davis", "Kære Anna Berg": start at the first known given name.
        if words and not _known_first(words[0]):
            later = [i for i, w in enumerate(words[1:], 1) if _known_first(w)]
            if later and len(words) - later[0] >= 2:
                start += sum(len(w) + 1 for w in words[: later[0]])
                words = words[later[0] :]
        if not words:
            continue
        value = " ".join(words)
        if value != text[start : start + len(value)]:
            continue
        before = text[max(0, start - 40) : start]
        cued = bool(_TITLE.search(before) or _INTRO.search(before))
        proper = [w for w in words if not re.fullmatch(_INITIAL, w)]
        if len(proper) >= 2 and _known_first(proper[0]) and _known_last(proper[-1]):
            confidence = 0.9
        elif len(proper) >= 2 and cued and (_known_first(proper[0]) or _known_last(proper[-1])):
            confidence = 0.85
        elif len(proper) >= 2 and _known_first(proper[0]) and start > 0:
            confidence = 0.6
        elif len(proper) >= 2 and _known_last(proper[-1]) and _known_last(proper[0]):
            confidence = 0.55
        elif cued and len(proper) >= 2:
            confidence = 0.7
        elif cued and (_known_first(proper[0]) or _known_last(proper[0])):
            confidence = 0.7
        elif cued and _TITLE.search(before):
            confidence = 0.6
        else:
            continue
        found.append(Finding(EntityType.PERSON, start, start + len(value), value, confidence))
    return found
