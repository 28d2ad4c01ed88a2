"""pass@1 and pass^k against counts worked out by hand."""

from __future__ import annotations

import pytest

from evals.stats import mean_pass_hat_k, pass_curve, pass_hat_k


def test_pass_hat_k_known_counts() -> None:
    assert pass_hat_k(4, 4, 4) == 1.0
    assert pass_hat_k(3, 4, 1) == 0.75
    assert pass_hat_k(3, 4, 2) == pytest.approx(3 / 6)  # C(3,2)/C(4,2)
    assert pass_hat_k(3, 4, 3) == pytest.approx(1 / 4)  # C(3,3)/C(4,3)
    assert pass_hat_k(3, 4, 4) == 0.0
    assert pass_hat_k(0, 5, 1) == 0.0


def test_mean_over_tasks() -> None:
    # task A 2/2, task B 1/2: pass^1 = (1 + 0.5) / 2, pass^2 = (1 + 0) / 2
    counts = [(2, 2), (1, 2)]
    assert mean_pass_hat_k(counts, 1) == 0.75
    assert mean_pass_hat_k(counts, 2) == 0.5
    assert mean_pass_hat_k([], 1) == 0.0


def test_pass_curve_falls_with_k() -> None:
    curve = pass_curve({"a": [True, True, True], "b": [True, False, True]})
    assert curve[1] == pytest.approx((1 + 2 / 3) / 2)
    assert curve[2] == pytest.approx((1 + 1 / 3) / 2)
    assert curve[3] == pytest.approx(0.5)


def test_bad_k_is_refused() -> None:
    with pytest.raises(ValueError, match="k must be"):
        pass_hat_k(1, 2, 3)
    with pytest.raises(ValueError, match="successes"):
        pass_hat_k(3, 2, 1)
