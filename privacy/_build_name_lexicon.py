"""Regenerate ``privacy/_name_lexicon.py`` from Faker's person providers.

Run by hand (``python -m privacy._build_name_lexicon``) after changing the locale list; Faker is a
test/benchmark dependency only, so the runtime reads the generated module and never imports
Faker. The lexicon is derived data (given names and surnames, MIT-licensed in Faker), not code.
Caveat recorded in the benchmark: the synthetic evaluation set draws its names from the same
lists, so its person recall overstates recall on real text.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

LOCALES = (
    "en_US", "en_GB", "en_IE", "da_DK", "de_DE", "fr_FR", "sv_SE", "no_NO", "nl_NL",
    "es_ES", "it_IT", "fi_FI", "pl_PL", "pt_PT", "cs_CZ", "hu_HU",
)  # fmt: skip
_OUT = Path(__file__).with_name("_name_lexicon.py")


def _names(locale: str) -> tuple[set[str], set[str]]:
    module = importlib.import_module(f"faker.providers.person.{locale}")
    provider = module.Provider
    first: set[str] = set()
    for attr in ("first_names", "first_names_male", "first_names_female"):
        value = getattr(provider, attr, None) or ()
        first.update(value.keys() if isinstance(value, dict) else value)
    last_value = getattr(provider, "last_names", None) or ()
    last = set(last_value.keys() if isinstance(last_value, dict) else last_value)
    return first, last


def _block(name: str, words: set[str]) -> str:
    body = " ".join(sorted(w for w in words if " " not in w and len(w) > 1))
    lines = textwrap.wrap(body, width=84, break_on_hyphens=False)
    quoted = "\n".join(f'        "{line} "' for line in lines)
    return f"{name} = frozenset(\n    (\n{quoted}\n    ).split()\n)\n"


def main() -> int:
    first: set[str] = set()
    last: set[str] = set()
    for locale in LOCALES:
        f, la = _names(locale)
        first |= f
        last |= la
    command = "python -m privacy._build_name_lexicon"
    header = (
        '"""Given names and surnames for offline person-name detection (generated, do not edit).'
        "\n\n"
        f"Built by ``{command}`` from Faker's person providers for\n"
        + "\n".join(textwrap.wrap(f"the locales {', '.join(LOCALES)}.", width=90))
        + "\n"
        '"""\n\n'
    )
    _OUT.write_text(
        header + _block("FIRST_NAMES", first) + "\n" + _block("LAST_NAMES", last), "utf-8"
    )
    print(f"{len(first)} first names, {len(last)} last names -> {_OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
