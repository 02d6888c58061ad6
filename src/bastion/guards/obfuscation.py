"""``output.obfuscation``: give each caller no more of the scores than it needs.

Model stealing, inversion and membership inference feed on confidence scores
(Tramèr et al. 2016, "Stealing Machine Learning Models via Prediction APIs"). An
:class:`ObfuscationPolicy` coarsens them, per principal:

* ``label_only`` — only the predicted class index, shape ``(n,)``;
* ``top_k`` — keep the k highest scores, zero the rest;
* ``decimals`` — round to n decimal places;
* ``reverse_sigmoid=(beta, gamma)`` — the deceptive perturbation of Lee, Edwards,
  Molloy and Su (2019), "Defending Against Neural Network Model Stealing Attacks
  Using Deceptive Perturbations" (IEEE S&P Workshops):
  ``r = p - beta * (sigmoid(gamma * logit(p)) - 1/2)``, clipped at 0 and renormalised,
  which poisons the gradients a stealing attack reads off the scores.

Steps apply in that order (reverse sigmoid, then top-k, then rounding); label-only
replaces them all. **Argmax**: label-only and top-k keep it by construction;
reverse sigmoid keeps it whenever ``gamma >= 1`` and ``beta * gamma < 1`` (then
``r`` is strictly increasing in ``p``: ``dr/dp >= 1 - beta*gamma > 0``; at
``beta = gamma = 1`` it is constant), and may change it outside that range;
rounding can create ties that change the arg-max index.
:func:`measure_obfuscation_cost` measures the accuracy cost and the share of
arg-max kept on given data, with a Wilson interval; :attr:`ObfuscationPolicy.keeps_argmax`
says whether it is guaranteed.

Not an attack: ATLAS AML.M0002 (passive ML output obfuscation).

Examples
--------
>>> import numpy as np
>>> p = np.array([[0.7, 0.2, 0.1]])
>>> ObfuscationPolicy(top_k=1, decimals=1).apply(p).tolist()
[[0.7, 0.0, 0.0]]
>>> ObfuscationPolicy(label_only=True).apply(p).tolist()
[0]
>>> rs = ObfuscationPolicy(reverse_sigmoid=(0.5, 1.0))
>>> rs.keeps_argmax, int(rs.apply(p).argmax())
(True, 0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bastion.errors import UsageError
from bastion.findings import CatalogRefs, Interval, wilson_interval
from bastion.guards.base import Decision, Guard, GuardMeta, GuardRequest, GuardResponse

__all__ = [
    "ObfuscationCost",
    "ObfuscationGuard",
    "ObfuscationPolicy",
    "measure_obfuscation_cost",
    "reverse_sigmoid",
]

_EPS = 1e-7
_FEW_VALUES = 256  # up to this many scores, top-k and rounding run on Python floats


def _top_k_and_round(
    rows: list[list[float]], top_k: int | None, decimals: int | None
) -> list[list[float]] | None:
    """Top-k and rounding of a few rows of floats, value for value as the NumPy path.

    Keeps the ``top_k`` largest of each row (ties to the lower index, as a stable
    sort of ``-s``) and zeroes the rest, then rounds as ``np.round`` does: multiply by
    ``10**decimals``, round half to even, divide (the sign of zero kept). None when a
    value is not finite (NaN orders differently here); the caller then uses NumPy.
    """
    scale = float(10**decimals) if decimals is not None else 1.0
    out = []
    for row in rows:
        for v in row:
            if v - v != 0.0:  # NaN or infinite
                return None
        if top_k is not None and top_k < len(row):
            keep = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:top_k]
            kept = [0.0] * len(row)
            for i in keep:
                kept[i] = row[i]
            row = kept
        if decimals is not None:
            row = [_round_half_even(v, scale) for v in row]
        out.append(row)
    return out


def _round_half_even(v: float, scale: float) -> float:
    """``np.round(v, decimals)`` for one finite float, with ``scale = 10**decimals``."""
    y = v * scale
    if y - y != 0.0:  # overflowed: rint keeps inf, and inf / scale is inf
        return y / scale
    return math.copysign(round(y) / scale, v)


def reverse_sigmoid(p: np.ndarray, beta: float, gamma: float) -> np.ndarray:
    """Lee et al. (2019) reverse-sigmoid perturbation of probabilities ``(n, c)``.

    Examples
    --------
    >>> out = reverse_sigmoid(np.array([[0.9, 0.1]]), beta=0.5, gamma=1.0)
    >>> round(float(out.sum()), 6), bool(out[0, 0] > out[0, 1])
    (1.0, True)
    """
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    z = np.log(q) - np.log1p(-q)
    r = np.maximum(q - beta * (1.0 / (1.0 + np.exp(-gamma * z)) - 0.5), 0.0)
    total = r.sum(axis=1, keepdims=True)
    uniform = np.full_like(r, 1.0 / r.shape[1])
    return np.asarray(np.where(total > 0, r / np.where(total > 0, total, 1.0), uniform))


@dataclass(frozen=True)
class ObfuscationPolicy:
    """How much of the scores one caller gets (see the module docstring)."""

    label_only: bool = False
    top_k: int | None = None
    decimals: int | None = None
    reverse_sigmoid: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"top_k must be >= 1; got {self.top_k}.")
        if self.decimals is not None and not 0 <= self.decimals <= 15:
            raise UsageError(f"decimals must be between 0 and 15; got {self.decimals}.")
        if self.reverse_sigmoid is not None:
            beta, gamma = self.reverse_sigmoid
            if not (beta > 0 and gamma > 0):
                raise UsageError("reverse_sigmoid needs beta > 0 and gamma > 0.")

    @property
    def keeps_argmax(self) -> bool:
        """True when the returned arg-max is guaranteed to be the model's."""
        if self.label_only:
            return True
        if self.decimals is not None:
            return False
        if self.reverse_sigmoid is not None:
            beta, gamma = self.reverse_sigmoid
            return gamma >= 1 and beta * gamma < 1
        return True

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """The obfuscated outputs for scores ``(n, c)``; labels ``(n,)`` when label-only."""
        s = np.asarray(scores)
        if s.dtype != np.float32:  # float32 is read exactly as float64 (tolist, argmax)
            s = np.asarray(s, dtype=np.float64)
        if s.ndim != 2:
            return np.asarray(s, dtype=np.float64)  # labels already
        if self.label_only:
            return np.asarray(s.argmax(axis=1), dtype=np.int64)
        if self.reverse_sigmoid is not None:
            s = reverse_sigmoid(s, *self.reverse_sigmoid)
        if s.size <= _FEW_VALUES and (self.top_k is not None or self.decimals is not None):
            rows = _top_k_and_round(s.tolist(), self.top_k, self.decimals)
            if rows is not None:
                out = np.array(rows, dtype=np.float64)
                return out if out.ndim == 2 else out.reshape(s.shape)
        s = np.asarray(s, dtype=np.float64)
        if self.top_k is not None and self.top_k < s.shape[1]:
            keep = np.argsort(-s, axis=1, kind="stable")[:, : self.top_k]
            mask = np.zeros_like(s, dtype=bool)
            np.put_along_axis(mask, keep, True, axis=1)
            s = np.where(mask, s, 0.0)
        if self.decimals is not None:
            s = np.round(s, self.decimals)
        return s


@dataclass(frozen=True)
class ObfuscationCost:
    """What a policy costs on given data (argmax-based accuracy before and after)."""

    n: int
    accuracy_before: float | None
    accuracy_after: float | None
    argmax_kept: float
    argmax_kept_interval: Interval
    mean_l1_change: float | None
    guaranteed: bool


def measure_obfuscation_cost(
    policy: ObfuscationPolicy, scores: Any, labels: Any | None = None
) -> ObfuscationCost:
    """Accuracy before/after, share of arg-max kept (Wilson 95 %) and mean L1 change.

    Parameters
    ----------
    policy : ObfuscationPolicy
    scores : array-like, shape (n, c)
        The model's unobfuscated scores.
    labels : array-like, shape (n,), or None
        True labels; accuracies are None without them.

    Examples
    --------
    >>> s = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    >>> cost = measure_obfuscation_cost(ObfuscationPolicy(top_k=1), s, [0, 0, 1])
    >>> cost.accuracy_before == cost.accuracy_after, cost.argmax_kept
    (True, 1.0)
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or len(s) == 0:
        raise UsageError(f"Obfuscation cost needs scores of shape (n, n_classes); got {s.shape}.")
    out = policy.apply(s)
    before = s.argmax(axis=1)
    after = out if out.ndim == 1 else out.argmax(axis=1)
    kept = int((before == after).sum())
    acc_b = acc_a = None
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (len(s),):
            raise UsageError(f"labels must have shape ({len(s)},); got {y.shape}.")
        acc_b, acc_a = float((before == y).mean()), float((after == y).mean())
    l1 = None if out.ndim == 1 else float(np.abs(out - s).sum(axis=1).mean())
    return ObfuscationCost(
        n=len(s),
        accuracy_before=acc_b,
        accuracy_after=acc_a,
        argmax_kept=kept / len(s),
        argmax_kept_interval=wilson_interval(kept, len(s)),
        mean_l1_change=l1,
        guaranteed=policy.keeps_argmax,
    )


class ObfuscationGuard(Guard):
    """Coarsens returned scores with a per-principal :class:`ObfuscationPolicy`.

    Citations: Lee et al. 2019 (reverse sigmoid), Tramèr et al. 2016; see the module
    docstring.

    Parameters
    ----------
    default : ObfuscationPolicy
        Policy for principals without their own.
    per_principal : mapping of str to ObfuscationPolicy
        Policies by principal.
    """

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="output.obfuscation",
        title="Output obfuscation: label only, top-k, rounding, reverse sigmoid",
        catalog=CatalogRefs(
            owasp=["ML05", "ML03", "ML04"],
            failure_modes=["FM5", "FM3", "FM4"],
            atlas_techniques=["AML.T0024", "AML.T0024.002", "AML.T0005"],
            atlas_mitigations=["AML.M0002"],
        ),
        order=80,
    )

    def __init__(
        self,
        default: ObfuscationPolicy | None = None,
        per_principal: Mapping[str, ObfuscationPolicy] | None = None,
    ) -> None:
        self.default = default or ObfuscationPolicy(label_only=True)
        self.per_principal = dict(per_principal or {})
        policies = [self.default, *self.per_principal.values()]
        if not all(isinstance(p, ObfuscationPolicy) for p in policies):
            raise UsageError("output.obfuscation policies must be ObfuscationPolicy objects.")

    def policy_for(self, principal: str) -> ObfuscationPolicy:
        """The policy that applies to ``principal``."""
        return self.per_principal.get(principal, self.default)

    def after(self, request: GuardRequest, response: GuardResponse) -> Decision:
        """Replace the outputs with their obfuscated form."""
        policy = self.policy_for(request.principal)
        return Decision.transform(policy.apply(response.outputs))
