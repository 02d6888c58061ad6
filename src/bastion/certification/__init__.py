"""Certified robustness by randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019).

* :mod:`.stats` -- Clopper–Pearson bounds, the binomial test, radius from a bound;
* :mod:`.noise` -- clipped Gaussian noise in a target's raw input space, and its units;
* :mod:`.sampling` -- the base classifier (tensor fast path for white-box torch
  targets, ``Target.predict`` otherwise) and Monte Carlo class counts;
* :mod:`.smoothing` -- the smoothed classifier with PREDICT and CERTIFY;
* :mod:`.target` -- :class:`SmoothedTarget`, the smoothed classifier as a target.

The remedy ``evasion.randomized_smoothing`` (:mod:`bastion.remedies.randomized_smoothing`)
returns a :class:`SmoothedTarget`; the probe ``evasion.certified_radius``
(:mod:`bastion.probes.evasion.certified`) reports certified accuracy per L2 radius.

Examples
--------
>>> from bastion.certification import max_certifiable_radius
>>> round(max_certifiable_radius(100_000, 0.001, 0.25), 2)
0.95
"""

from __future__ import annotations

from bastion.certification.noise import GaussianNoise, NoiseUnits
from bastion.certification.sampling import BaseClassifier, sample_counts
from bastion.certification.smoothing import (
    ABSTAIN,
    Certificate,
    SmoothedClassifier,
    check_alpha,
    check_sample_sizes,
)
from bastion.certification.stats import (
    binomial_p_value,
    certified_radius,
    clopper_pearson_lower,
    max_certifiable_radius,
)
from bastion.certification.target import ABSTAIN_CLASS, SmoothedTarget

__all__ = [
    "ABSTAIN",
    "ABSTAIN_CLASS",
    "BaseClassifier",
    "Certificate",
    "GaussianNoise",
    "NoiseUnits",
    "SmoothedClassifier",
    "SmoothedTarget",
    "binomial_p_value",
    "certified_radius",
    "check_alpha",
    "check_sample_sizes",
    "clopper_pearson_lower",
    "max_certifiable_radius",
    "sample_counts",
]
