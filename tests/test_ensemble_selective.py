"""Selective ensembles: the exact binomial test, the n <= 5 edge case, and the alpha guarantee in simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from checkers.ensemble import ABSTAIN, binomial_p, min_members
from checkers.ensemble.selective import decide
from spec.errors import UsageError

ALPHA = 0.05


def test_binomial_p_is_the_exact_two_sided_test() -> None:
    assert binomial_p(5, 0) == 2 / 32
    assert binomial_p(6, 0) == 2 / 64
    assert binomial_p(3, 3) == 1.0
    assert binomial_p(0, 4) == binomial_p(4, 0)
    assert binomial_p(8, 2) == pytest.approx(2 * sum(math.comb(10, i) for i in range(8, 11)) / 1024)
    scipy_stats = pytest.importorskip("scipy.stats")
    for a, b in itertools.product(range(12), repeat=2):
        if a + b:
            assert binomial_p(a, b) == pytest.approx(scipy_stats.binomtest(a, a + b, 0.5).pvalue, rel=1e-12)


def test_p_value_falls_when_the_lead_grows_or_the_runner_up_shrinks() -> None:
    """The monotonicity the selective certificate rests on."""
    for a, b in itertools.product(range(1, 15), range(14)):
        if a > b:
            assert binomial_p(a + 1, b) <= binomial_p(a, b)
            if b:
                assert binomial_p(a, b - 1) <= binomial_p(a, b)


def test_two_sided_test_with_five_or_fewer_members_always_abstains() -> None:
    """The documented edge case: at alpha 0.05 no vote of n <= 5 members passes (5-0 gives 0.0625)."""
    assert min_members(ALPHA) == 6
    for n in range(1, 6):
        for votes in itertools.product(range(4), repeat=n):  # every vote of n members over 4 labels
            counts = torch.tensor(np.bincount(votes, minlength=4)[None], dtype=torch.float64)
            assert decide(counts, ALPHA).item() == ABSTAIN
    assert decide(torch.tensor([[6.0, 0, 0]]), ALPHA).item() == 0  # six unanimous members do predict
    assert decide(torch.tensor([[5.0, 1, 0]]), ALPHA).item() == ABSTAIN  # 5-1: p = 0.22


def _outcomes(probs: np.ndarray, n: int, trials: int, rng: np.random.Generator, alpha: float | None) -> tuple[float, float]:
    """(rate of predictions that are neither the mode nor an abstention, abstention rate) over simulated ensembles;
    alpha None: plain plurality (no test), the control."""
    votes = rng.choice(len(probs), size=(trials, n), p=probs)
    counts = np.stack([np.bincount(v, minlength=len(probs)) for v in votes])
    counts_t = torch.tensor(counts, dtype=torch.float64)
    label = counts_t.argmax(dim=1) if alpha is None else decide(counts_t, alpha)
    mode = int(np.argmax(probs))
    wrong = (label != ABSTAIN) & (label != mode)
    return float(wrong.float().mean()), float((label == ABSTAIN).float().mean())


DISTRIBUTIONS = [
    np.array([0.5, 0.5 - 1e-9, 1e-9]),  # nearly tied top two: the hardest case for the guarantee
    np.array([0.52, 0.48]),
    np.array([0.4, 0.35, 0.25]),
    np.array([0.3, 0.25, 0.25, 0.2]),
    np.array([0.9, 0.1]),
]


@pytest.mark.parametrize("n", [6, 10, 25, 50])
@pytest.mark.parametrize("probs", DISTRIBUTIONS, ids=lambda p: "/".join(f"{v:.2f}" for v in p))
def test_wrong_prediction_rate_stays_below_alpha(probs: np.ndarray, n: int) -> None:
    """P(prediction is neither the mode nor an abstention) <= alpha, in 4,000 simulated ensembles each.

    Sampling slack: 4 standard errors of a Bernoulli(alpha) mean (0.014 at 4,000 trials)."""
    probs = probs / probs.sum()
    rng = np.random.default_rng(1000 * n + int(1000 * probs[0]))
    trials = 4000
    wrong, _ = _outcomes(probs, n, trials, rng, ALPHA)
    assert wrong <= ALPHA + 4 * math.sqrt(ALPHA * (1 - ALPHA) / trials)


def test_plain_plurality_breaks_the_bound() -> None:
    """The control: without the test, a near tie makes the non-mode win about half the time."""
    rng = np.random.default_rng(7)
    wrong, _ = _outcomes(DISTRIBUTIONS[0] / DISTRIBUTIONS[0].sum(), 25, 4000, rng, None)
    assert wrong > 0.3


def test_exact_wrong_rate_on_two_labels() -> None:
    """Exact (no sampling) for two labels: sum over the binomial outcomes, for n up to 40 and p near 1/2."""
    for n in (6, 7, 10, 21, 40):
        for p in (0.5 + 1e-12, 0.51, 0.55, 0.6, 0.75):
            wrong = sum(math.comb(n, k) * p**k * (1 - p) ** (n - k)  # k votes for the mode, n - k for the other
                        for k in range(n + 1) if n - k > k and binomial_p(n - k, k) <= ALPHA)
            assert wrong <= ALPHA


def test_bad_arguments_are_named() -> None:
    with pytest.raises(UsageError, match=r"alpha=1\.5"):
        decide(torch.zeros(1, 3), 1.5)
    with pytest.raises(UsageError, match="n_a=-1"):
        binomial_p(-1, 2)
    with pytest.raises(UsageError, match="alpha=0"):
        min_members(0)
