"""Confidence intervals for the rates probes report.

Examples
--------
>>> from bastion.findings.stats import wilson_interval
>>> iv = wilson_interval(45, 50)
>>> round(iv.low, 3), round(iv.high, 3)
(0.786, 0.957)
"""

from __future__ import annotations

import math

from bastion.errors import UsageError
from bastion.findings.finding import Interval

# Two-sided standard normal quantiles for the levels we support.
_Z = {0.90: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion.

    Wilson (1927) keeps its coverage close to the nominal level for small ``n`` and
    for rates near 0 or 1, where the textbook normal interval fails.

    Parameters
    ----------
    successes : int
        Number of successes, ``0 <= successes <= n``.
    n : int
        Number of trials, ``n >= 1``.
    level : float
        Coverage: 0.90, 0.95 or 0.99.

    Returns
    -------
    Interval
        The interval, clipped to [0, 1].
    """
    if n < 1 or not 0 <= successes <= n:
        raise UsageError(f"A rate needs 0 <= successes <= n and n >= 1; got {successes}/{n}.")
    if level not in _Z:
        raise UsageError(f"Confidence level must be one of {sorted(_Z)}; got {level}.")
    z = _Z[level]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low=low, high=high, level=level)
