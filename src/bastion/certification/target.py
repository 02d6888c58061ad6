"""A smoothed classifier behind the :class:`~bastion.targets.base.Target` interface.

:class:`SmoothedTarget` answers every query with Cohen, Rosenfeld and Kolter's PREDICT
(ICML 2019; see :mod:`bastion.certification.smoothing`) on a base target, so a remedy
can return it and every probe, guard and the gateway can use it like any model.

Abstentions. PREDICT may abstain; the target reports that as one extra class,
:data:`ABSTAIN_CLASS` (``"<abstain>"``), appended after the base classes, so

* :meth:`~bastion.targets.base.Target.predict` returns index ``K`` (``n_classes - 1``)
  for an abstention and the base class index otherwise; an abstention never equals a
  true label, so it counts as an error in every accuracy, as in Cohen et al.;
* :meth:`~bastion.targets.base.Target.predict_proba` returns ``(m, K + 1)`` rows: for
  a decided row the Monte Carlo class frequencies of the base classifier under noise
  (``counts / n``) with 0 in the abstain column -- its argmax is PREDICT's class,
  because PREDICT always returns the most frequent class; for an abstained row 1 in
  the abstain column and 0 elsewhere.

Capabilities: labels and probabilities (the smoothed classifier has no gradients;
attack it with the black-box probes, or certify it with ``evasion.certified_radius``,
which certifies the base at this target's ``sigma``).

Queries. This target's budget counts rows asked of ``g``; each costs ``n`` queries
of the base target, charged to the base's own budget. PREDICT draws fresh noise on
every call from one generator seeded at construction, so a sequence of calls is
reproducible, but the same row asked twice may (rarely, near a decision boundary) get
different answers -- that randomness is part of the smoothed classifier.

Examples
--------
>>> import numpy as np
>>> from bastion.targets import FakeTarget
>>> base = FakeTarget.linear(n_features=2, n_classes=2, seed=0)
>>> g = SmoothedTarget(base, sigma=0.1, n=200, seed=0)
>>> g.classes
('class_0', 'class_1', '<abstain>')
>>> x = np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32)
>>> g.predict(x).tolist(), base.predict(x).tolist(), g.queries_used, base.queries_used
([1, 0], [1, 0], 2, 402)
>>> g.predict_proba(np.array([[0.3, 0.4]], dtype=np.float32)).round(2).tolist()
[[0.0, 0.0, 1.0]]
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np
import torch

from bastion.certification.noise import NoiseUnits
from bastion.certification.smoothing import ABSTAIN, SmoothedClassifier, check_alpha
from bastion.errors import TargetError, UsageError
from bastion.targets.base import Capability, Target

__all__ = ["ABSTAIN_CLASS", "SmoothedTarget"]

#: Name of the extra class a :class:`SmoothedTarget` reports for an abstention.
ABSTAIN_CLASS = "<abstain>"


class SmoothedTarget(Target):
    """The smoothed classifier ``g`` of a base target (Cohen et al., ICML 2019).

    Parameters
    ----------
    base : Target
        The base classifier; white-box torch targets are sampled on their device.
    sigma : float
        Noise standard deviation, in ``units`` (see
        :mod:`bastion.certification.noise`).
    n : int
        Noisy copies per PREDICT call.
    alpha : float
        PREDICT's test level: the chance of returning a class other than ``g(x)``.
    units : {"raw", "range"}
    reference : numpy.ndarray or None
        Rows giving the range of unbounded features (``units="range"``).
    batch_size : int
        Noisy rows per call of the base target.
    seed : int
        Seeds the noise generator.
    name : str or None
        Defaults to the base target's name (so ``bastion runs diff`` matches findings).
    query_budget : int or None
        Rows that may be asked of the smoothed classifier.
    """

    kind = "smoothed"
    provides: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LABELS, Capability.PROBABILITIES}
    )

    def __init__(
        self,
        base: Target,
        *,
        sigma: float,
        n: int = 100,
        alpha: float = 0.001,
        units: NoiseUnits = "raw",
        reference: np.ndarray | None = None,
        batch_size: int = 1000,
        seed: int = 0,
        name: str | None = None,
        query_budget: int | None = None,
    ) -> None:
        if not isinstance(base, Target):
            raise UsageError(
                f"SmoothedTarget wraps a bastion Target; got {type(base).__name__}. Wrap the "
                "model in a target adapter first."
            )
        if ABSTAIN_CLASS in base.classes:
            raise TargetError(
                f"Target {base.name!r} already has a class named {ABSTAIN_CLASS!r}, which "
                "SmoothedTarget reserves for abstentions; rename that class."
            )
        super().__init__(
            name=name or base.name,
            input_spec=base.input_spec,
            classes=[*base.classes, ABSTAIN_CLASS],
            query_budget=query_budget,
        )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UsageError(
                f"The 'n' parameter of SmoothedTarget must be an integer >= 1; got {n!r}."
            )
        self.alpha = check_alpha(alpha, "SmoothedTarget")
        self.n = n
        self.seed = int(seed)
        self.base = base
        self.smoothed = SmoothedClassifier(
            base,
            sigma,
            units=units,
            reference=reference,
            batch_size=batch_size,
            who="SmoothedTarget",
        )
        self._generator = self.smoothed.generator(self.seed)
        self._lock = threading.Lock()

    @property
    def sigma(self) -> float:
        """Noise standard deviation."""
        return self.smoothed.sigma

    @property
    def units(self) -> NoiseUnits:
        """Units of ``sigma``."""
        return self.smoothed.units

    @property
    def abstain_index(self) -> int:
        """Class index of an abstention (the last one)."""
        return self.n_classes - 1

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            counts = self.smoothed.counts(x, self.n, self._generator)
        decision = SmoothedClassifier.decide(counts, self.alpha)
        freq = (counts.to("cpu", torch.float64) / self.n).numpy()
        out = np.zeros((len(x), self.n_classes), dtype=np.float64)
        out[:, : self.base.n_classes] = freq
        abstained = decision == ABSTAIN
        out[abstained] = 0.0
        out[abstained, self.abstain_index] = 1.0
        return out

    def verify(self) -> None:
        """Check that the base target answers (no queries charged)."""
        self.base.verify()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            base_kind=self.base.kind,
            sigma=self.sigma,
            units=self.units,
            n=self.n,
            alpha=self.alpha,
            batch_size=self.smoothed.batch_size,
            seed=self.seed,
        )
        return info
