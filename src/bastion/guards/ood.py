"""``input.ood``: refuse (or flag) inputs unlike anything the model was built for.

:class:`OODDetector` scores each row by its distance from the reference data and
compares it with a threshold calibrated for a chosen false-positive rate:

* ``"knn"`` — distance to the k-th nearest reference row after standardising each
  feature (scales floored at 1 % of the mean scale, so nearly constant features do
  not dominate) (Sun et al. 2022, "Out-of-Distribution Detection with Deep Nearest
  Neighbors", ICML; there in a network's feature space, here in input space unless
  ``features`` maps rows to embeddings);
* ``"mahalanobis"`` — Mahalanobis distance to the reference mean under a Ledoit-Wolf
  shrunk covariance (Lee et al. 2018, "A Simple Unified Framework for Detecting
  Out-of-Distribution Samples and Adversarial Attacks", NeurIPS, simplified to one
  Gaussian over all classes in one space).

Calibration is split conformal (Vovk et al. 2005): the reference data are split into
a part the detector is fitted on and a held-out part that is only scored; the
threshold is the ``ceil((m + 1)(1 - fpr))``-th smallest of the m held-out scores.
For a new in-distribution row, exchangeable with the reference, the chance of a
score above the threshold is then at most ``fpr`` (and at least ``fpr - 1/(m+1)``).
:meth:`OODDetector.measure_fpr` checks it on data the detector never saw and
reports the rate with a Wilson interval.

The guard treats a batch as out of distribution when any row is, and names the rows.
It protects against inputs from a different population, sensor or pipeline bug
(FM14, distributional shift) and against crude adversarial and fuzzing inputs far
from the data manifold (CWE-1039 asks for detection of such inputs; ATLAS AML.M0015);
it does not catch small adversarial perturbations of in-distribution rows.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(size=(600, 4))
>>> det = OODDetector(method="knn", fpr=0.05, seed=0).fit(reference)
>>> det.is_ood(np.array([[0.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])).tolist()
[False, True]
>>> rate, interval = det.measure_fpr(rng.normal(size=(2000, 4)))
>>> rate <= 0.08
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np

from bastion.errors import DataError, UsageError
from bastion.findings import CatalogRefs, Interval, wilson_interval
from bastion.guards.base import Decision, Guard, GuardMeta, GuardRequest

__all__ = ["OODDetector", "OODGuard", "conformal_threshold"]

Features = Callable[[np.ndarray], np.ndarray]
_CHUNK = 512


def conformal_threshold(scores: np.ndarray, fpr: float) -> float:
    """The ``ceil((m + 1)(1 - fpr))``-th smallest of ``m`` calibration scores.

    Raises
    ------
    UsageError
        When there are too few scores for ``fpr`` (need ``m >= 1/fpr - 1``).

    Examples
    --------
    >>> conformal_threshold(np.arange(1.0, 100.0), 0.05)
    95.0
    """
    m = len(scores)
    rank = math.ceil((m + 1) * (1.0 - fpr))
    if rank > m:
        raise UsageError(
            f"Calibrating for a false-positive rate of {fpr:g} needs at least "
            f"{math.ceil(1 / fpr - 1)} held-out reference rows; got {m}. Give more reference "
            "data or a larger fpr."
        )
    return float(np.sort(scores)[rank - 1])


def _flat(x: Any, features: Features | None) -> np.ndarray:
    arr = np.asarray(x)
    if features is not None:
        arr = np.asarray(features(arr))
    if arr.ndim == 0 or arr.dtype.kind not in "biuf":
        raise DataError("OOD scoring needs a numeric batch of rows.")
    arr = arr.reshape(len(arr), -1)
    return arr if arr.dtype == np.float64 else arr.astype(np.float64)


class OODDetector:
    """Distance-based out-of-distribution scores with a conformal threshold.

    Parameters
    ----------
    method : {"knn", "mahalanobis"}
    k : int
        Neighbour rank for ``"knn"``.
    fpr : float
        Target false-positive rate on in-distribution rows, in (0, 0.5].
    calibration_fraction : float
        Share of the reference data held out to calibrate the threshold.
    max_reference : int
        Largest number of reference rows kept for scoring (a random subset).
    features : callable or None
        Maps a batch to the space to score in (e.g. ``target.embeddings``).
    seed : int
        Seed of the split and subset.
    """

    def __init__(
        self,
        *,
        method: Literal["knn", "mahalanobis"] = "knn",
        k: int = 5,
        fpr: float = 0.01,
        calibration_fraction: float = 0.3,
        max_reference: int = 5000,
        features: Features | None = None,
        seed: int = 0,
    ) -> None:
        if method not in ("knn", "mahalanobis"):
            raise UsageError(f"OOD method must be 'knn' or 'mahalanobis'; got {method!r}.")
        if not 0 < fpr <= 0.5:
            raise UsageError(f"The OOD false-positive rate must be in (0, 0.5]; got {fpr!r}.")
        if not 0 < calibration_fraction < 1:
            raise UsageError("calibration_fraction must be between 0 and 1.")
        if k < 1 or max_reference < 2:
            raise UsageError("k must be >= 1 and max_reference >= 2.")
        self.method = method
        self.k = int(k)
        self.fpr = float(fpr)
        self.calibration_fraction = float(calibration_fraction)
        self.max_reference = int(max_reference)
        self.features = features
        self.seed = int(seed)

    def fit(self, reference: Any) -> OODDetector:
        """Fit on part of ``reference`` and calibrate the threshold on the rest."""
        x = _flat(reference, self.features)
        if not np.isfinite(x).all():
            raise DataError("The OOD reference data hold NaN or infinite values; clean them.")
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(x))
        n_cal = round(len(x) * self.calibration_fraction)
        cal, fit = x[order[:n_cal]], x[order[n_cal:]]
        if len(fit) > self.max_reference:
            fit = fit[: self.max_reference]
        if len(fit) <= self.k:
            raise UsageError(
                f"OOD fitting needs more than k={self.k} reference rows outside the "
                f"calibration split; got {len(fit)}."
            )
        self.mean_ = fit.mean(axis=0)
        std = fit.std(axis=0)
        # Floor each feature's scale at 1 % of the mean scale: a nearly constant feature
        # (a border pixel) must not dominate every distance.
        floor = max(0.01 * float(std.mean()), 1e-12)
        self.scale_ = np.maximum(std, floor)
        if self.method == "knn":
            self.reference_ = (fit - self.mean_) / self.scale_
            self._ref_sq = (self.reference_**2).sum(axis=1)
            self._neg_half_scale = -0.5 * self.scale_
        else:
            from sklearn.covariance import LedoitWolf

            self.precision_ = LedoitWolf().fit(fit).precision_
        self.calibration_scores_ = self._score_flat(cal)
        self.threshold_ = conformal_threshold(self.calibration_scores_, self.fpr)
        self.n_calibration_ = len(cal)
        return self

    def _score_flat(self, x: np.ndarray) -> np.ndarray:
        if self.method == "mahalanobis":
            d = x - self.mean_
            sq = np.einsum("ij,jk,ik->i", d, self.precision_, d)
            return np.asarray(np.sqrt(np.maximum(sq, 0.0)))
        if len(x) == 1:
            return np.array([self._knn_row(x[0])])
        z = (x - self.mean_) / self.scale_
        out = np.empty(len(z))
        for start in range(0, len(z), _CHUNK):
            part = z[start : start + _CHUNK]
            d2 = (
                (part**2).sum(axis=1)[:, None]
                + self._ref_sq[None, :]
                - 2.0 * part @ self.reference_.T
            )
            kth = np.partition(d2, self.k - 1, axis=1)[:, self.k - 1]
            out[start : start + _CHUNK] = np.sqrt(np.maximum(kth, 0.0))
        return out

    def _knn_row(self, x: np.ndarray) -> float:
        """The kNN score of one flat row, in the arithmetic of the batch formula.

        The chunk loop of :meth:`_score_flat` on a batch of one row, in fewer NumPy
        calls and temporaries: ``y = (x - mean) / (-scale / 2)`` is exactly ``-2 z``
        (halving, doubling and negating are exact in binary floating point), so
        ``sum(y * y) / 4`` is the same pairwise ``sum(z ** 2)``, ``reference @ y`` is
        ``-(2 z @ reference.T)`` (one matrix-vector product either way) and the squared
        distances are the same ``(|z|^2 + |r|^2) - 2 z.r``.
        """
        y = (x - self.mean_) / self._neg_half_scale
        d2 = self._ref_sq + float(np.add.reduce(y * y)) * 0.25
        d2 += np.dot(self.reference_, y)
        d2.partition(self.k - 1)
        return math.sqrt(max(float(d2[self.k - 1]), 0.0))

    def _require_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise UsageError("This OODDetector is not fitted; call fit(reference) first.")

    def score(self, x: Any) -> np.ndarray:
        """OOD score per row, shape ``(n,)``; larger is further from the reference."""
        self._require_fitted()
        return self._score_flat(_flat(x, self.features))

    def is_ood(self, x: Any) -> np.ndarray:
        """Boolean per row: score above the calibrated threshold."""
        return np.asarray(self.score(x) > self.threshold_)

    def measure_fpr(self, heldout: Any, level: float = 0.95) -> tuple[float, Interval]:
        """Share of ``heldout`` in-distribution rows flagged, with a Wilson interval."""
        flagged = int(self.is_ood(heldout).sum())
        n = len(np.asarray(heldout))
        return flagged / n, wilson_interval(flagged, n, level)


class OODGuard(Guard):
    """Refuses (or flags) requests with rows outside the reference distribution.

    Detector citations: Sun et al. 2022 (kNN) and Lee et al. 2018 (Mahalanobis); see
    the module docstring for the calibration and what it does not catch.

    Parameters
    ----------
    detector : OODDetector
        A fitted detector.
    action : {"deny", "flag"}
        Refuse with 422, or let through and record an event.
    """

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="input.ood",
        title="Out-of-distribution input detection",
        catalog=CatalogRefs(
            owasp=["ML01"],
            failure_modes=["FM14", "FM16"],
            atlas_techniques=["AML.T0043", "AML.T0015"],
            atlas_mitigations=["AML.M0015", "AML.M0008"],
            cwe=["CWE-1039"],
        ),
        order=40,
    )

    def __init__(self, detector: OODDetector, *, action: Literal["deny", "flag"] = "deny") -> None:
        if action not in ("deny", "flag"):
            raise UsageError(f"input.ood action must be 'deny' or 'flag'; got {action!r}.")
        detector._require_fitted()
        self.detector = detector
        self.action = action

    def before(self, request: GuardRequest) -> Decision:
        """Deny or flag when any row's OOD score is above the calibrated threshold."""
        det = self.detector
        try:
            x = _flat(request.inputs, det.features)
            if len(x) == 1 and det.method == "knn":  # the common case, without batch arrays
                score = det._knn_row(x[0])
                if not score > det.threshold_:
                    return Decision.allow()
                return self._refuse([0], 1, score)
            scores = det._score_flat(x)
        except (DataError, ValueError, TypeError):
            return Decision.deny(
                "The inputs are not a numeric batch the OOD check can score; validate them first.",
                http_status=422,
            )
        bad = np.flatnonzero(scores > det.threshold_)
        if len(bad) == 0:
            return Decision.allow()
        return self._refuse([int(i) for i in bad[:100]], len(bad), float(scores[bad].max()))

    def _refuse(self, rows: list[int], n_bad: int, worst: float) -> Decision:
        """Deny or flag naming the first rows out of distribution and the worst score."""
        threshold = self.detector.threshold_
        named = ", ".join(str(i) for i in rows[:10]) + (" ..." if n_bad > 10 else "")
        reason = (
            f"Row(s) {named} are out of distribution (score {worst:.3g} > threshold "
            f"{threshold:.3g}); the model was not built for such inputs."
        )
        if self.action == "flag":
            return Decision.flag(reason, rows=rows, score=worst, threshold=threshold)
        return Decision.deny(reason, http_status=422)
