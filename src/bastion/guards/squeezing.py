"""``input.feature_squeezing``: detect adversarial inputs by squeezing them.

Xu, Evans and Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks", NDSS 2018. Squeezers remove input detail the task does not need:

* **bit-depth reduction** -- each feature rescaled to its declared ``[lower, upper]``
  and rounded to ``2**bits`` levels;
* **median smoothing** -- a ``k × k`` median filter over each channel of image rows
  ``(c, h, w)`` (edges reflected; even ``k`` pads one more on the bottom/right, as in
  the paper's 2×2 filter).

The detection score of a row is the largest L1 distance between the model's softmax
output on the row and on any squeezed version (the paper's joint detector). Rows
scoring above a threshold are adversarial. :meth:`FeatureSqueezingGuard.calibrated`
sets the threshold to the ``1 - fpr`` quantile of scores on clean in-distribution
rows, so about ``fpr`` of clean traffic is refused; measure it on held-out rows.

A squeezer is not differentiable (rounding has zero gradient, the median picks one
element), which makes naive gradient attacks fail and *looks* like robustness. The
straight-through versions (:func:`squeeze` with ``bpda=True``: forward squeezes,
backward is the identity; Athalye, Carlini and Wagner, "Obfuscated Gradients Give a
False Sense of Security", ICML 2018) let the adaptive evaluation in
:mod:`bastion.probes.evasion.detector_eval` attack the detector properly.

Shapes: ``x`` ``(n, *row_shape)``, scores ``(n,)``.

Examples
--------
>>> import numpy as np, torch
>>> from bastion.guards.base import GuardRequest
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
>>> squeezer = Squeezers(lower=0.0, upper=1.0, bits=2, median=2)
>>> bit_depth(torch.tensor([0.1, 0.4, 0.6, 0.9]), 1).tolist()
[0.0, 0.0, 1.0, 1.0]
>>> median_smooth(torch.arange(9.0).reshape(1, 1, 3, 3), 3)[0, 0, 1, 1].item()
4.0
>>> x = torch.rand(40, 1, 4, 4)
>>> guard = FeatureSqueezingGuard.calibrated(net, x, squeezers=squeezer, fpr=0.1)
>>> guard.before(GuardRequest("p", "m", x[:2].numpy())).action.value in ("allow", "deny")
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bastion.errors import DataError, UsageError
from bastion.findings import CatalogRefs
from bastion.guards.base import Decision, Guard, GuardMeta, GuardRequest

__all__ = [
    "DETECTOR_CATALOG",
    "FeatureSqueezingGuard",
    "Squeezers",
    "bit_depth",
    "calibrate_threshold",
    "median_smooth",
]

#: Catalog ids of the adversarial-input detectors.
DETECTOR_CATALOG = CatalogRefs(
    owasp=["ML01"], failure_modes=["FM1"], atlas_mitigations=["AML.M0015"], cwe=["CWE-1039"]
)

Logits = Callable[[torch.Tensor], torch.Tensor]


def bit_depth(x: torch.Tensor, bits: int, lower: float = 0.0, upper: float = 1.0) -> torch.Tensor:
    """``x`` rounded to ``2**bits`` evenly spaced levels of ``[lower, upper]``."""
    levels = 2**bits - 1
    unit = ((x - lower) / (upper - lower)).clamp(0, 1)
    out: torch.Tensor = torch.round(unit * levels) / levels * (upper - lower) + lower
    return out


def median_smooth(x: torch.Tensor, k: int) -> torch.Tensor:
    """Per-channel ``k × k`` median filter of image rows ``(n, c, h, w)``, shape kept."""
    if x.ndim != 4:
        raise DataError(
            f"Median smoothing needs image rows (c, h, w); got rows of shape {tuple(x.shape[1:])}."
        )
    top, bottom = (k - 1) // 2, k // 2
    mode = "reflect" if max(top, bottom) < min(x.shape[2], x.shape[3]) else "replicate"
    padded = F.pad(x, (top, bottom, top, bottom), mode=mode)
    patches = padded.unfold(2, k, 1).unfold(3, k, 1)  # (n, c, h, w, k, k)
    smoothed: torch.Tensor = patches.reshape(*patches.shape[:4], k * k).median(dim=-1).values
    return smoothed


@dataclass(frozen=True)
class Squeezers:
    """The squeezers of one detector; ``bits``/``median`` None turns one off.

    Calling it returns the bit-depth-reduced batch (or the median-smoothed one when
    only that is on); :meth:`each` returns every squeezed version.
    """

    lower: float = 0.0
    upper: float = 1.0
    bits: int | None = 4
    median: int | None = 2

    def __post_init__(self) -> None:
        if self.bits is None and self.median is None:
            raise UsageError("Feature squeezing needs bits, median or both; got neither.")
        if self.bits is not None and not 1 <= self.bits <= 16:
            raise UsageError(f"bits must be an integer in 1..16; got {self.bits!r}.")
        if self.median is not None and not 2 <= self.median <= 7:
            raise UsageError(f"median must be a window size in 2..7; got {self.median!r}.")
        if (
            not (math.isfinite(self.lower) and math.isfinite(self.upper))
            or self.upper <= self.lower
        ):
            raise UsageError(
                "Feature squeezing needs finite bounds with lower < upper; declare the input "
                "spec's bounds."
            )

    def each(self, x: torch.Tensor, *, bpda: bool = False) -> list[torch.Tensor]:
        """Every squeezed version of ``x``; with ``bpda`` the gradient passes straight through."""
        outs = []
        if self.bits is not None:
            outs.append(bit_depth(x, self.bits, self.lower, self.upper))
        if self.median is not None and x.ndim == 4:
            outs.append(median_smooth(x, self.median))
        if not outs:
            raise DataError("Only median smoothing is on, and it needs image rows (c, h, w).")
        return [x + (s - x).detach() for s in outs] if bpda else outs

    def __call__(self, x: torch.Tensor, *, bpda: bool = False) -> torch.Tensor:
        out = x
        if self.bits is not None:
            out = bit_depth(out, self.bits, self.lower, self.upper)
        if self.median is not None and x.ndim == 4:
            out = median_smooth(out, self.median)
        return x + (out - x).detach() if bpda else out

    def score(self, model: Logits, x: torch.Tensor, *, bpda: bool = False) -> torch.Tensor:
        """Joint detection score ``(n,)``: max L1 distance of softmax outputs."""
        p = F.softmax(model(x), dim=1)
        dists = [(p - F.softmax(model(s), dim=1)).abs().sum(dim=1) for s in self.each(x, bpda=bpda)]
        return torch.stack(dists).amax(dim=0)


def calibrate_threshold(scores: np.ndarray, fpr: float) -> float:
    """The ``1 - fpr`` quantile of clean ``scores`` (rows above it are refused).

    >>> calibrate_threshold(np.arange(100.0), 0.05)
    95.0
    """
    if not 0 < fpr < 0.5:
        raise UsageError(f"The false-positive rate must be in (0, 0.5); got {fpr!r}.")
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1 or len(arr) < math.ceil(1 / fpr):
        raise UsageError(
            f"Calibrating at false-positive rate {fpr:g} needs at least {math.ceil(1 / fpr)} "
            f"clean rows; got {len(arr)}."
        )
    return float(np.quantile(arr, 1 - fpr, method="higher"))


def _as_logits(model: Any) -> Logits:
    module = getattr(model, "module", None)
    if isinstance(module, torch.nn.Module):
        return module  # a TorchTarget: run the module directly (guards are not queries)
    if callable(model):
        return model  # type: ignore[no-any-return]
    raise UsageError(
        f"Feature squeezing needs a torch model or TorchTarget; got {type(model).__name__}."
    )


class FeatureSqueezingGuard(Guard):
    """Refuses inputs whose prediction moves too much when squeezed (Xu et al., NDSS 2018).

    Parameters
    ----------
    model : TorchTarget, torch.nn.Module or callable
        The protected model, ``(n, *shape) -> (n, K)`` logits.
    threshold : float
        Rows whose joint score exceeds it are adversarial.
    squeezers : Squeezers
    device : str or torch.device
    action : {"deny", "flag"}
        Refuse the request (HTTP 422) or let it through and record an event.
    """

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="input.feature_squeezing",
        title="Detect adversarial inputs by feature squeezing",
        catalog=DETECTOR_CATALOG,
        order=40,
    )

    def __init__(
        self,
        model: Any,
        *,
        threshold: float,
        squeezers: Squeezers | None = None,
        device: str | torch.device = "cpu",
        action: str = "deny",
    ) -> None:
        if not (isinstance(threshold, int | float) and math.isfinite(threshold) and threshold >= 0):
            raise UsageError(f"threshold must be a finite number >= 0; got {threshold!r}.")
        if action not in ("deny", "flag"):
            raise UsageError(f"action must be 'deny' or 'flag'; got {action!r}.")
        self.model = _as_logits(model)
        self.threshold = float(threshold)
        self.squeezers = squeezers or Squeezers()
        self.device = torch.device(getattr(model, "device", device))
        self.action = action

    @classmethod
    def calibrated(
        cls,
        model: Any,
        clean: torch.Tensor | np.ndarray,
        *,
        fpr: float = 0.05,
        squeezers: Squeezers | None = None,
        **kwargs: Any,
    ) -> FeatureSqueezingGuard:
        """A guard refusing about ``fpr`` of rows like ``clean`` (``(m, *shape)``)."""
        sq = squeezers or Squeezers()
        guard = cls(model, threshold=0.0, squeezers=sq, **kwargs)
        guard.threshold = calibrate_threshold(guard.scores(clean), fpr)
        return guard

    def scores(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Joint detection scores ``(n,)`` for rows ``x``."""
        t = torch.as_tensor(np.asarray(x, dtype=np.float32) if isinstance(x, np.ndarray) else x)
        with torch.no_grad():
            return self.squeezers.score(self.model, t.to(self.device)).cpu().double().numpy()

    def before(self, request: GuardRequest) -> Decision:
        """Refuse (or flag) the request when any row scores above the threshold."""
        x = np.asarray(request.inputs)
        if x.dtype.kind not in "fiu" or x.ndim < 2:
            return Decision.deny("Inputs must be a numeric batch.", http_status=400)
        try:
            scores = self.scores(x.astype(np.float32))
        except (RuntimeError, DataError) as err:
            return Decision.deny(f"Inputs could not be checked ({err}).", http_status=400)
        rows = np.flatnonzero(scores > self.threshold)
        if len(rows) == 0:
            return Decision.allow()
        reason = (
            f"{len(rows)} of {len(x)} row(s) look adversarial (feature-squeezing score "
            f"{float(scores[rows].max()):.3f} > {self.threshold:.3f})."
        )
        if self.action == "flag":
            return Decision.flag(reason, rows=[int(r) for r in rows])
        return Decision.deny(reason, http_status=422)
