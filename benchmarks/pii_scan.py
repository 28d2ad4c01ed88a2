"""Precision and recall of ``privacy.scan_text`` per entity type, on two labelled sets.

1. A synthetic set generated now with Faker across ten locales (``benchmarks/pii_synth.py``).
2. Presidio's synthetic set, read at run time from ``$RELAYGRAPH_SHARED/datasets/pii_presidio``
   (default ``../shared`` beside the repo; MIT, Microsoft; see its README). It is never copied
   into the repo. Its labels map onto ours as in ``PRESIDIO_TYPES``; labels we do not detect
   (GPE, ORGANIZATION, DATE_TIME, ...) are not scored for recall, but a finding of ours that
   overlaps one of them counts as a false positive.

3. Colour words as ethnicity: hand-written sentences (``COLOUR_WORD_CASES``, English and
   Danish) where "black", "white", "Asian", "Arab" or "Roma" either state a person's ethnicity
   ("I'm a black woman", "min mor er arabisk") or do not ("I drink my coffee black", "my black
   cat", "Via Roma 12"), next to a personal cue in both cases. Scored for ethnicity only, with
   the number of everyday sentences given an ethnicity finding (each would be held).

On Presidio's set, which labels no special category (its NRP label is mostly nationalities,
which Art. 9 does not cover), the special-category findings are counted and, with
``--show-errors``, listed for a reader to judge.

A gold span counts as found when a finding of the same type overlaps it ("overlap"); "exact"
also requires the same start and end. Precision counts a finding as right when it overlaps a
gold span of its type. Also prints throughput against a single-regex baseline run on the same
texts in the same run.

    python -m benchmarks.pii_scan [--per-locale N] [--seed S] [--presidio PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.pii_synth import generate
from privacy import Finding, scan_text

PRESIDIO_TYPES = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "payment_card",
    "IBAN_CODE": "iban",
    "US_SSN": "national_id",
    "IP_ADDRESS": "ip_address",
    "STREET_ADDRESS": "postal_address",
    "PERSON": "person",
}
STRUCTURED = ("email", "payment_card", "iban", "ip_address", "national_id", "phone")
TARGET_RECALL = 0.95
# Diagnostic row: phones found by libphonenumber validation alone, without the cue-word fallback.
STRICT_PHONE_ROW = "phone (libphonenumber-valid)"


@dataclass
class Tally:
    gold: int = 0
    found: int = 0
    exact: int = 0
    predicted: int = 0
    correct: int = 0
    misses: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else float("nan")

    @property
    def exact_recall(self) -> float:
        return self.exact / self.gold if self.gold else float("nan")

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else float("nan")


@dataclass(frozen=True)
class Gold:
    type: str  # our type name, or "other:<label>" for labels we do not detect
    start: int
    end: int
    detail: str | None = None


def _row(gold: Gold, text: str) -> str:
    """The tally row a gold span is counted in (phones split intl/national, ids by kind)."""
    if gold.type == "phone":
        value = text[gold.start : gold.end]
        return "phone (intl)" if value.startswith(("+", "00")) else "phone (national)"
    if gold.type == "national_id" and gold.detail:
        return f"national_id ({gold.detail})"
    return gold.type


@dataclass
class SetScore:
    tallies: dict[str, Tally]
    texts: int
    chars: int
    seconds: float


def score(
    samples: list[tuple[str, list[Gold]]], scored_types: frozenset[str] | None = None
) -> SetScore:
    """Tally recall per gold row and precision per predicted type; predictions of types the
    set has no labels for (``scored_types``) are left out of precision."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    chars = 0
    elapsed = 0.0
    for text, golds in samples:
        chars += len(text)
        t0 = time.perf_counter()
        findings = scan_text(text).findings
        elapsed += time.perf_counter() - t0
        for gold in golds:
            if gold.type.startswith("other:"):
                continue
            for row in {gold.type, _row(gold, text)}:
                tally = tallies[row]
                tally.gold += 1
                hits = [f for f in findings if _same(f, gold)]
                if hits:
                    tally.found += 1
                    tally.exact += any(f.start == gold.start and f.end == gold.end for f in hits)
                else:
                    tally.misses.append(repr(text[gold.start : gold.end]))
            if gold.type == "phone":
                # How much recall libphonenumber validation gives without the cue-word fallback.
                strict = tallies[STRICT_PHONE_ROW]
                strict.gold += 1
                valid = [f for f in findings if _same(f, gold) and f.detail]
                strict.found += bool(valid)
                strict.exact += any(f.start == gold.start and f.end == gold.end for f in valid)
        for finding in findings:
            if scored_types is not None and finding.type.value not in scored_types:
                continue
            tally = tallies[finding.type.value]
            tally.predicted += 1
            if any(_same(finding, gold) for gold in golds):
                tally.correct += 1
            else:
                tally.false_positives.append(repr(finding.text))
    return SetScore(tallies, len(samples), chars, elapsed)


def _same(finding: Finding, gold: Gold) -> bool:
    return finding.type.value == gold.type and finding.start < gold.end and gold.start < finding.end


def synthetic_samples(per_locale: int, seed: int) -> list[tuple[str, list[Gold]]]:
    return [
        (r.text, [Gold(s["type"], s["start"], s["end"], s["detail"]) for s in r.spans])
        for r in generate(per_locale, seed)
    ]


def presidio_samples(path: Path) -> list[tuple[str, list[Gold]]]:
    records: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))
    samples = []
    for record in records:
        golds = [
            Gold(
                PRESIDIO_TYPES.get(span["entity_type"], "other:" + span["entity_type"]),
                span["start_position"],
                span["end_position"],
                "us.ssn" if span["entity_type"] == "US_SSN" else None,
            )
            for span in record["spans"]
        ]
        samples.append((record["full_text"], golds))
    return samples


SPECIAL_TYPES = frozenset(
    {
        "health",
        "genetic",
        "biometric",
        "religion",
        "ethnicity",
        "sexual_orientation",
        "political_opinion",
        "trade_union",
    }
)

# (sentence, the words that state an ethnicity; empty: none does).
COLOUR_WORD_CASES: list[tuple[str, tuple[str, ...]]] = [
    ("I am black and grew up in Leeds.", ("black",)),
    ("I'm Asian, so my parents wanted me to study medicine.", ("Asian",)),
    ("As a black woman in tech, I get asked this a lot.", ("black",)),
    ("She is half Arab and speaks three languages.", ("Arab",)),
    ("My ethnicity is white British.", ("ethnicity is white",)),
    ("He's a proud Black man from Atlanta.", ("Black",)),
    ("We are a white family living in Nairobi.", ("white",)),
    ("My husband is Asian and I am white.", ("Asian", "white")),
    ("I identify as Arab, though I was born in Lyon.", ("Arab",)),
    ("My black neighbour keeps getting stopped by the police.", ("black",)),
    ("They are Roma and moved here in 2015.", ("Roma",)),
    ("I am a white man in my fifties.", ("white",)),
    ("My mother is black, my father is white.", ("black", "white")),
    ("Our son is Asian; we adopted him from Vietnam.", ("Asian",)),
    ("Being black, I notice who gets served first.", ("black",)),
    ("Anna is black and wants that noted in her file.", ("black",)),
    ("Jeg er arabisk og taler også dansk.", ("arabisk",)),
    ("Min mor er asiatisk, min far er dansk.", ("asiatisk",)),
    ("Som arabisk kvinde bliver jeg ofte spurgt om det.", ("arabisk",)),
    ("I drink my coffee black.", ()),
    ("My black cat sleeps on the sofa all day.", ()),
    ("I bought a white dress for my sister's wedding.", ()),
    ("My car is white, the one by the gate.", ()),
    ("I'm wearing my black jacket today.", ()),
    ("She painted her kitchen white last weekend.", ()),
    ("I love Asian food, especially ramen.", ()),
    ("His white shirt was stained with wine.", ()),
    ("I ordered a black coffee and my wife a white wine.", ()),
    ("My phone case is black.", ()),
    ("I'm white-water rafting with my brother next week.", ()),
    ("My daughter's black belt exam is on Friday.", ()),
    ("Her wedding dress was white.", ()),
    ("Send it to my office at Via Roma 12, Milan.", ()),
    ("We keep our Arab horses at my uncle's farm.", ()),
    ("I am in the black this quarter, finally.", ()),
    ("My favourite is white chocolate.", ()),
    ("He reads Arab poetry to his kids.", ()),
    ("Jeg kan godt lide asiatisk mad, især min mors.", ()),
    ("Min bil er hvid og hans er sort.", ()),
]


@dataclass
class ColourScore:
    ethnicity: Tally
    everyday_sentences: int
    everyday_flagged: list[str]


def score_colour_words() -> ColourScore:
    """Ethnicity precision and recall on ``COLOUR_WORD_CASES``."""
    tally = Tally()
    flagged = []
    for text, words in COLOUR_WORD_CASES:
        golds = []
        for word in words:
            start = text.index(word)
            golds.append(Gold("ethnicity", start, start + len(word)))
        result = scan_text(text)
        findings = [f for f in result.findings if f.type.value == "ethnicity"]
        for gold in golds:
            tally.gold += 1
            if any(_same(f, gold) for f in findings):
                tally.found += 1
            else:
                tally.misses.append(repr(text))
        for finding in findings:
            tally.predicted += 1
            if any(_same(finding, gold) for gold in golds):
                tally.correct += 1
            else:
                tally.false_positives.append(repr(text))
        if not words and findings:
            flagged.append(repr(text))
    return ColourScore(tally, sum(1 for _, words in COLOUR_WORD_CASES if not words), flagged)


def special_findings(samples: list[tuple[str, list[Gold]]]) -> tuple[int, dict[str, list[str]]]:
    """Texts held as special-category data, and the special findings by type (in context)."""
    held = 0
    found: dict[str, list[str]] = defaultdict(list)
    for text, _ in samples:
        result = scan_text(text)
        held += result.sensitivity.value == "special"
        for f in result.findings:
            if f.type.value in SPECIAL_TYPES:
                found[f.type.value].append(repr(text[max(0, f.start - 30) : f.end + 20]))
    return held, found


def _baseline_chars_per_second(texts: list[str]) -> float:
    """One e-mail regex over the same texts: a floor that shows what the full scan costs."""
    pattern = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
    t0 = time.perf_counter()
    for text in texts:
        pattern.findall(text)
    return sum(map(len, texts)) / (time.perf_counter() - t0)


def _fmt(value: float) -> str:
    return "   -  " if value != value else f"{value:6.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-locale", type=int, default=60)
    parser.add_argument("--seed", type=int, default=20261125)
    shared = Path(
        os.environ.get("RELAYGRAPH_SHARED", Path(__file__).resolve().parents[2] / "shared")
    )
    parser.add_argument(
        "--presidio", type=Path, default=shared / "datasets/pii_presidio/synth_dataset_v2.json"
    )
    parser.add_argument("--show-errors", type=int, default=0, help="examples per type and set")
    args = parser.parse_args(argv)

    sets: dict[str, SetScore] = {}
    synth = synthetic_samples(args.per_locale, args.seed)
    sets["synthetic"] = score(synth)
    texts = [t for t, _ in synth]
    if args.presidio.is_file():
        presidio = presidio_samples(args.presidio)
        sets["presidio"] = score(presidio, frozenset(PRESIDIO_TYPES.values()))
        texts += [t for t, _ in presidio]
    else:
        print(f"presidio set not found at {args.presidio}; only the synthetic set is scored")

    names = list(sets)
    rows = sorted({row for s in sets.values() for row in s.tallies})
    header = f"{'type':34}" + "".join(f" | {name:^36}" for name in names)
    print(header)
    print(f"{'':34}" + " | gold   recall  exact   precision  " * len(names))
    failed = []
    for row in rows:
        line = f"{row:34}"
        for name in names:
            t = sets[name].tallies.get(row, Tally())
            line += (
                f" | {t.gold:5d} {_fmt(t.recall)} {_fmt(t.exact_recall)}  {_fmt(t.precision)}    "
            )
            base = row.split(" ")[0]
            if (
                base in STRUCTURED
                and row != STRICT_PHONE_ROW
                and t.gold
                and t.recall < TARGET_RECALL
            ):
                failed.append(f"{name}/{row} recall {t.recall:.3f}")
        print(line)
    for name in names:
        result = sets[name]
        tallies = result.tallies
        print(
            f"{name}: {result.texts} texts, {result.chars:,} chars, "
            f"scan {result.chars / result.seconds:,.0f} chars/s"
        )
        if args.show_errors:
            for row in rows:
                errors = tallies.get(row)
                if errors and (errors.misses or errors.false_positives):
                    print(f"  {row}: misses {errors.misses[: args.show_errors]}")
                    print(f"  {row}: false positives {errors.false_positives[: args.show_errors]}")
    colour = score_colour_words()
    t = colour.ethnicity
    print(
        f"colour words as ethnicity ({len(COLOUR_WORD_CASES)} hand-written sentences): "
        f"gold {t.gold}, recall {_fmt(t.recall).strip()}, precision {_fmt(t.precision).strip()}; "
        f"everyday sentences given an ethnicity finding: {len(colour.everyday_flagged)} of "
        f"{colour.everyday_sentences}"
    )
    if args.show_errors:
        print(f"  misses {t.misses[: args.show_errors]}")
        print(f"  false positives {t.false_positives[: args.show_errors]}")
    if args.presidio.is_file():
        held, found = special_findings(presidio)
        counts = ", ".join(f"{kind} {len(items)}" for kind, items in sorted(found.items()))
        print(
            f"presidio (no special-category labels): {held} texts held as special; "
            f"findings: {counts or 'none'}"
        )
        if args.show_errors:
            for kind, items in sorted(found.items()):
                print(f"  {kind}: {items[: args.show_errors]}")
    scan_cps = sum(s.chars for s in sets.values()) / sum(s.seconds for s in sets.values())
    base_cps = _baseline_chars_per_second(texts)
    print(
        f"throughput: scan_text {scan_cps:,.0f} chars/s; single e-mail regex baseline "
        f"{base_cps:,.0f} chars/s; ratio {base_cps / scan_cps:,.0f}x slower than the baseline"
    )
    if failed:
        print(f"below the {TARGET_RECALL} recall target: " + "; ".join(failed))
    else:
        print(f"every structured identifier meets the {TARGET_RECALL} recall target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
