"""pass@1 and pass^k over repeated trials.

tau-bench defines pass^k as the probability that all k of k i.i.d. trials of a task succeed,
estimated per task from ``n`` trials with ``c`` successes as ``C(c, k) / C(n, k)`` and averaged
over tasks. pass@1 is the same with k = 1 (the mean success rate).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import comb


def pass_hat_k(successes: int, trials: int, k: int) -> float:
    """``C(c, k) / C(n, k)`` for one task.

    Raises:
        ValueError: ``k`` is not in 1..n, or ``c`` is not in 0..n.
    """
    if not 1 <= k <= trials:
        raise ValueError(f"k must be between 1 and the number of trials ({trials}), got {k}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be between 0 and {trials}, got {successes}")
    return comb(successes, k) / comb(trials, k)


def mean_pass_hat_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """pass^k averaged over tasks given ``(successes, trials)`` per task (0.0 for none)."""
    values = [pass_hat_k(c, n, k) for c, n in counts]
    return sum(values) / len(values) if values else 0.0


def pass_curve(results: Mapping[str, list[bool]]) -> dict[int, float]:
    """pass^k for k = 1..n, where n is the fewest trials any task had."""
    if not results:
        return {}
    n = min(len(trials) for trials in results.values())
    counts = [(sum(trials[:n]), n) for trials in results.values()]
    return {k: mean_pass_hat_k(counts, k) for k in range(1, n + 1)}
