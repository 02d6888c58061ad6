"""bastion.certification.stats: Clopper–Pearson bound, binomial test, radius."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from bastion.certification.stats import (
    binomial_p_value,
    certified_radius,
    clopper_pearson_lower,
    max_certifiable_radius,
)


@pytest.mark.parametrize(("k", "n"), [(1, 10), (7, 10), (10, 10), (512, 1000), (99_990, 100_000)])
def test_clopper_pearson_matches_the_exact_interval(k: int, n: int) -> None:
    alpha = 0.01
    # The one-sided 1 - alpha bound is the lower end of the two-sided 1 - 2 alpha interval.
    exact = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact").low
    assert float(clopper_pearson_lower(k, n, alpha)) == pytest.approx(exact, rel=1e-9)


def test_clopper_pearson_edges_and_vectorisation() -> None:
    bounds = clopper_pearson_lower(np.array([0, 50, 100]), 100, 0.001)
    assert bounds[0] == 0.0
    assert bounds[2] == pytest.approx(0.001 ** (1 / 100))
    assert 0 < bounds[1] < 0.5 and np.all(np.diff(bounds) > 0)


def test_the_bound_holds_with_the_stated_probability() -> None:
    rng = np.random.default_rng(0)
    p, n, alpha = 0.8, 200, 0.05
    k = rng.binomial(n, p, size=4000)
    misses = float((clopper_pearson_lower(k, n, alpha) > p).mean())
    assert misses <= alpha  # Clopper–Pearson is conservative


def test_binomial_p_value_matches_scipy() -> None:
    for k, n in [(0, 5), (3, 5), (60, 100), (50, 100), (1000, 1900)]:
        assert float(binomial_p_value(k, n)) == pytest.approx(binomtest(k, n, 0.5).pvalue)


def test_radius_is_sigma_times_the_normal_quantile_and_zero_at_or_below_half() -> None:
    p = np.array([0.3, 0.5, 0.6, 0.99])
    r = certified_radius(p, 0.5)
    assert r[0] == 0.0 and r[1] == 0.0
    assert r[2] == pytest.approx(0.5 * norm.ppf(0.6))
    assert r[3] == pytest.approx(0.5 * norm.ppf(0.99))


def test_max_radius_grows_with_n_and_sigma() -> None:
    assert max_certifiable_radius(100_000, 0.001, 0.25) == pytest.approx(
        0.25 * norm.ppf(0.001**1e-5)
    )
    assert max_certifiable_radius(1000, 0.001, 0.25) < max_certifiable_radius(10_000, 0.001, 0.25)
    assert max_certifiable_radius(1000, 0.001, 0.5) == pytest.approx(
        2 * max_certifiable_radius(1000, 0.001, 0.25)
    )
