"""Context windows: weak evidence (a 9-digit number, an ambiguous word) counts only when a cue
word stands near it, the way a person reading the text would decide."""

from __future__ import annotations

import re

BEFORE = 60
AFTER = 30


def cue_pattern(words: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    """A case-insensitive pattern matching any of ``words`` as whole words (regex fragments
    allowed)."""
    return re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE)


def near(
    text: str,
    start: int,
    end: int,
    cues: re.Pattern[str],
    *,
    before: int = BEFORE,
    after: int = AFTER,
) -> bool:
    """True when a cue occurs within ``before`` characters before ``start`` or ``after``
    characters after ``end``."""
    return bool(
        cues.search(text, max(0, start - before), start)
        or cues.search(text, end, min(len(text), end + after))
    )
