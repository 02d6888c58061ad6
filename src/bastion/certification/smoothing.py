"""The smoothed classifier and its PREDICT and CERTIFY procedures.

Cohen, Rosenfeld and Kolter, "Certified Adversarial Robustness via Randomized
Smoothing", ICML 2019 (Algorithms "PREDICT" and "CERTIFY", Section 3.2). For a base
classifier ``f`` and noise level ``sigma`` the smoothed classifier is

    g(x) = argmax_c P(f(x + e) = c),   e ~ N(0, sigma^2 I).

* **PREDICT** (``n``, ``alpha``): count ``f`` on ``n`` noisy copies; with ``nA`` and
  ``nB`` the two largest counts, return the top class if the two-sided binomial test
  of ``nA`` in ``nA + nB`` trials against ``p = 1/2`` has p-value at most ``alpha``,
  else abstain. The probability of returning a class other than ``g(x)`` is at most
  ``alpha`` (their Theorem 2).
* **CERTIFY** (``n0``, ``n``, ``alpha``): pick the top class ``cA`` on ``n0``
  selection copies, count it on ``n`` fresh estimation copies, take ``pA``, the
  one-sided ``1 - alpha`` Clopper–Pearson lower bound on its probability, and return
  ``cA`` with radius ``R = sigma * Phi^-1(pA)`` when ``pA > 1/2``, else abstain. With
  probability at least ``1 - alpha``, ``g(x + delta) = cA`` for every
  ``||delta||_2 < R`` (their Theorem 1 and Proposition 2).

Abstentions are reported as :data:`ABSTAIN` (``-1``). Noise, units and the features
that get noise are described in :mod:`bastion.certification.noise`; the base
classifier and query accounting in :mod:`bastion.certification.sampling`.

Examples
--------
>>> import numpy as np
>>> from bastion.targets import FakeTarget
>>> t = FakeTarget.linear(n_features=2, n_classes=2, seed=0)
>>> g = SmoothedClassifier(t, sigma=0.1)
>>> x = np.array([[0.9, 0.1], [0.1, 0.9]], dtype=np.float32)
>>> cert = g.certify(x, n0=20, n=200, alpha=0.01, generator=g.generator(0))
>>> cert.label.tolist() == t.predict(x).tolist(), bool((cert.radius > 0).all())
(True, True)
>>> bool((cert.radius <= max_certifiable_radius(200, 0.01, 0.1) + 1e-12).all())
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bastion.certification.noise import GaussianNoise, NoiseUnits
from bastion.certification.sampling import BaseClassifier, sample_counts
from bastion.certification.stats import (
    binomial_p_value,
    certified_radius,
    clopper_pearson_lower,
    max_certifiable_radius,
)
from bastion.errors import UsageError
from bastion.targets.base import Target

__all__ = [
    "ABSTAIN",
    "Certificate",
    "SmoothedClassifier",
    "check_alpha",
    "check_sample_sizes",
    "max_certifiable_radius",
]

#: The label PREDICT and CERTIFY return when they abstain.
ABSTAIN = -1


def check_alpha(alpha: object, who: str) -> float:
    """``alpha`` as a float if it lies in (0, 1), else a :class:`UsageError`."""
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, int | float)
        or not math.isfinite(alpha)
        or not 0 < alpha < 1
    ):
        raise UsageError(
            f"The 'alpha' parameter of {who} must be a number in (0, 1) (the probability that "
            f"a certificate is wrong); got {alpha!r}."
        )
    return float(alpha)


def _check_count(value: object, name: str, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"The {name!r} parameter of {who} must be an integer >= 1; got {value!r}.")
    return value


def check_sample_sizes(n0: object, n: object, who: str) -> tuple[int, int]:
    """``(n0, n)`` if both are integers >= 1 and ``n0 <= n``, else a :class:`UsageError`."""
    a, b = _check_count(n0, "n0", who), _check_count(n, "n", who)
    if a > b:
        raise UsageError(
            f"The 'n0' parameter of {who} ({a}) must not exceed 'n' ({b}): n0 noisy copies "
            "only select the class, the n estimation copies certify it."
        )
    return a, b


@dataclass(frozen=True)
class Certificate:
    """What CERTIFY returned for a batch of rows (arrays of shape ``(m,)``).

    Attributes
    ----------
    label : numpy.ndarray
        Certified class, or :data:`ABSTAIN`.
    radius : numpy.ndarray
        Certified L2 radius (0 where abstained), in the noise's units.
    p_lower : numpy.ndarray
        Clopper–Pearson lower bound on the selected class's probability under noise.
    top_count : numpy.ndarray
        Estimation copies (of ``n``) on which ``f`` returned the selected class.
    sigma, n0, n, alpha
        The parameters used.
    """

    label: np.ndarray
    radius: np.ndarray
    p_lower: np.ndarray
    top_count: np.ndarray
    sigma: float
    n0: int
    n: int
    alpha: float

    @property
    def abstained(self) -> np.ndarray:
        """Bool ``(m,)``: CERTIFY abstained."""
        return np.asarray(self.label == ABSTAIN)

    def certified_correct(self, y: Any, radius: float = 0.0) -> np.ndarray:
        """Bool ``(m,)``: certified as the true class ``y`` with a radius of at least ``radius``."""
        labels = np.asarray(y)
        return np.asarray((self.label == labels) & (self.radius >= radius))

    def correct_radii(self, y: Any) -> np.ndarray:
        """``(m,)`` radii of rows certified as their true class, 0 elsewhere."""
        return np.where(self.label == np.asarray(y), self.radius, 0.0)


class SmoothedClassifier:
    """``g``: a target smoothed with Gaussian noise (see the module docstring).

    Parameters
    ----------
    base : Target
        The base classifier ``f``; any target that answers with classes.
    sigma : float
        Noise standard deviation, in ``units``.
    units : {"raw", "range"}
        See :mod:`bastion.certification.noise`.
    reference : numpy.ndarray or None
        Rows giving the range of unbounded features (``units="range"``).
    batch_size : int
        Noisy rows per call of the base classifier.
    who : str
        Names the caller in error messages.
    """

    def __init__(
        self,
        base: Target,
        sigma: float,
        *,
        units: NoiseUnits = "raw",
        reference: np.ndarray | None = None,
        batch_size: int = 1000,
        who: str = "Randomized smoothing",
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(
                f"The 'batch_size' parameter of {who} must be an integer >= 1; got {batch_size!r}."
            )
        self.base = base
        self.who = who
        self.batch_size = batch_size
        self.f = BaseClassifier(base, who)
        self.noise = GaussianNoise.from_spec(
            base.input_spec,
            sigma,
            units=units,
            reference=reference,
            device=self.f.device,
            dtype=self.f.dtype,
            who=who,
        )

    @property
    def sigma(self) -> float:
        """Noise standard deviation."""
        return self.noise.sigma

    @property
    def units(self) -> NoiseUnits:
        """Units of ``sigma`` and radii."""
        return self.noise.units

    def generator(self, seed: int) -> torch.Generator:
        """A seeded generator on the base classifier's device."""
        return torch.Generator(device=self.f.device).manual_seed(int(seed))

    def rows(self, x: Any) -> torch.Tensor:
        """Validate a batch against the input spec; as a tensor on the model's device."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        arr = np.asarray(x)
        self.base.input_spec.check(arr, what=f"input to {self.who}")
        return torch.from_numpy(np.ascontiguousarray(arr)).to(self.f.device, self.f.dtype)

    def counts(
        self,
        x: Any,
        num: int,
        generator: torch.Generator,
        on_chunk: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """``(m, n_classes)`` class counts of ``f`` on ``num`` noisy copies of each row."""
        return sample_counts(
            self.f,
            self.noise,
            self.rows(x),
            num,
            batch_size=self.batch_size,
            generator=generator,
            on_chunk=on_chunk,
        )

    @staticmethod
    def decide(counts: torch.Tensor, alpha: float) -> np.ndarray:
        """PREDICT's decision from counts ``(m, K)``: top class or :data:`ABSTAIN`, ``(m,)``."""
        top = torch.topk(counts, 2, dim=1)
        n_a = top.values[:, 0].cpu().numpy()
        n_b = top.values[:, 1].cpu().numpy()
        winner = top.indices[:, 0].cpu().numpy().astype(np.int64)
        p_value = binomial_p_value(n_a, n_a + n_b)
        return np.where(p_value <= alpha, winner, ABSTAIN).astype(np.int64)

    def predict(self, x: Any, *, n: int, alpha: float, generator: torch.Generator) -> np.ndarray:
        """PREDICT for each row of ``x`` ``(m, *shape)``: ``(m,)`` classes or :data:`ABSTAIN`."""
        _check_count(n, "n", self.who)
        a = check_alpha(alpha, self.who)
        return self.decide(self.counts(x, n, generator), a)

    def certify(
        self,
        x: Any,
        *,
        n0: int,
        n: int,
        alpha: float,
        generator: torch.Generator,
        on_chunk: Callable[[int], None] | None = None,
    ) -> Certificate:
        """CERTIFY for each row of ``x`` ``(m, *shape)`` (see the module docstring)."""
        n0, n = check_sample_sizes(n0, n, self.who)
        a = check_alpha(alpha, self.who)
        rows = self.rows(x)
        selection = sample_counts(
            self.f,
            self.noise,
            rows,
            n0,
            batch_size=self.batch_size,
            generator=generator,
            on_chunk=on_chunk,
        )
        chosen = selection.argmax(dim=1)
        estimation = sample_counts(
            self.f,
            self.noise,
            rows,
            n,
            batch_size=self.batch_size,
            generator=generator,
            on_chunk=on_chunk,
        )
        top = estimation.gather(1, chosen[:, None]).squeeze(1).cpu().numpy()
        p_lower = clopper_pearson_lower(top, n, a)
        radius = certified_radius(p_lower, self.sigma)
        label = np.where(p_lower > 0.5, chosen.cpu().numpy(), ABSTAIN).astype(np.int64)
        return Certificate(
            label=label,
            radius=radius,
            p_lower=p_lower,
            top_count=top.astype(np.int64),
            sigma=self.sigma,
            n0=n0,
            n=n,
            alpha=a,
        )
