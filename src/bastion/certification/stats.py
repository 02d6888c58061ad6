"""The statistics of randomized-smoothing certification (Cohen, Rosenfeld & Kolter 2019).

Cohen, Rosenfeld and Kolter, "Certified Adversarial Robustness via Randomized
Smoothing", ICML 2019. With ``pA`` a lower bound on the probability that the base
classifier returns the top class under Gaussian noise ``N(0, sigma^2 I)``, the
smoothed classifier is constant within the L2 ball of radius
``R = sigma * Phi^-1(pA)`` (their Theorem 1 with ``pB = 1 - pA``), so:

* :func:`clopper_pearson_lower` is the one-sided ``1 - alpha`` Clopper–Pearson lower
  bound on a binomial proportion, the ``LowerConfBound`` of their CERTIFY;
* :func:`certified_radius` turns it into a radius (0 where ``pA <= 1/2``, an
  abstention);
* :func:`binomial_p_value` is the two-sided test of ``H0: p = 1/2`` that PREDICT uses
  to decide between the two most frequent classes;
* :func:`max_certifiable_radius` is the largest radius CERTIFY can ever return with
  ``n`` samples: the radius when all ``n`` noisy copies agree, where the bound is
  ``alpha ** (1 / n)``.

All functions take NumPy arrays (or scalars) and return float64 arrays.

Examples
--------
>>> import numpy as np
>>> bool(np.isclose(clopper_pearson_lower(100, 100, 0.001), 0.001 ** (1 / 100)))
True
>>> round(float(certified_radius(np.array(0.8413447460685429), 0.5)), 6)
0.5
>>> float(certified_radius(np.array(0.5), 0.5))
0.0
>>> round(float(binomial_p_value(60, 100)), 4)
0.0569
>>> round(max_certifiable_radius(1000, 0.001, 0.25), 3)
0.616
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import beta, binom, norm

__all__ = [
    "binomial_p_value",
    "certified_radius",
    "clopper_pearson_lower",
    "max_certifiable_radius",
]


def clopper_pearson_lower(successes: Any, n: Any, alpha: float) -> np.ndarray:
    """One-sided ``1 - alpha`` Clopper–Pearson lower bound on ``successes / n``.

    The ``alpha`` quantile of ``Beta(k, n - k + 1)``; exactly 0 when ``k = 0``.

    Parameters
    ----------
    successes : int or array of int
        ``k``, with ``0 <= k <= n``.
    n : int or array of int
        Trials, ``n >= 1``.
    alpha : float
        In (0, 1): the bound holds with probability at least ``1 - alpha``.

    Returns
    -------
    numpy.ndarray
        float64 bounds, the shape of ``successes`` broadcast with ``n``.
    """
    k = np.asarray(successes, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    safe_k = np.maximum(k, 1.0)  # Beta(0, .) is undefined; those entries are set to 0 below
    bound = beta.ppf(alpha, safe_k, total - safe_k + 1.0)
    return np.asarray(np.where(k > 0, bound, 0.0), dtype=np.float64)


def certified_radius(p_lower: Any, sigma: float) -> np.ndarray:
    """``sigma * Phi^-1(p_lower)`` where ``p_lower > 1/2``, else 0 (abstain).

    Parameters
    ----------
    p_lower : float or array of float
        Lower confidence bounds on the top class's probability under noise.
    sigma : float
        Standard deviation of the noise; the radius is in the same units.
    """
    p = np.asarray(p_lower, dtype=np.float64)
    radius = sigma * norm.ppf(np.clip(p, 0.5, 1.0))
    return np.asarray(np.where(p > 0.5, radius, 0.0), dtype=np.float64)


def binomial_p_value(successes: Any, n: Any) -> np.ndarray:
    """Two-sided p-value of ``successes`` in ``n`` trials under ``H0: p = 1/2``.

    For ``p = 1/2`` the distribution is symmetric, so the p-value is
    ``min(1, 2 * P(X <= min(k, n - k)))`` (the same number as ``scipy.stats.binomtest``).
    """
    k = np.asarray(successes, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    tail = binom.cdf(np.minimum(k, total - k), total, 0.5)
    return np.asarray(np.minimum(1.0, 2.0 * tail), dtype=np.float64)


def max_certifiable_radius(n: int, alpha: float, sigma: float) -> float:
    """The largest radius CERTIFY can return with ``n`` estimation samples."""
    return float(certified_radius(np.asarray(alpha ** (1.0 / n)), sigma))
