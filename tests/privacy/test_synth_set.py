"""benchmarks/pii_synth.py: the generated evaluation set is reproducible and its labels line up."""

from __future__ import annotations

from collections import Counter

from stdnum.dk import cpr

from benchmarks.pii_synth import LOCALES, generate


def test_same_seed_same_set_and_spans_match_values() -> None:
    first = generate(n_per_locale=12, seed=7)
    assert [r.text for r in first] == [r.text for r in generate(n_per_locale=12, seed=7)]
    assert [r.text for r in first] != [r.text for r in generate(n_per_locale=12, seed=8)]
    kinds: Counter[str] = Counter()
    for record in first:
        for span in record.spans:
            assert 0 <= span["start"] < span["end"] <= len(record.text)
            kinds[span["type"]] += 1
            if span["detail"] == "dk.cpr":
                assert cpr.is_valid(record.text[span["start"] : span["end"]].replace("-", ""))
    assert {"da_DK", "en_US"} <= set(LOCALES)
    assert {"email", "phone", "iban", "payment_card", "national_id", "ip_address"} <= set(kinds)
