"""Feature constraints of tabular inputs: repair any row into a valid one, and prove it.

A tabular adversarial example is only real if the system could receive it: an
immutable field (a destination port, a protocol) unchanged, counts still integers, a
one-hot group with exactly one hot bit, every value inside its declared bounds.
:class:`FeatureConstraints` reads these from an :class:`~bastion.targets.spec.InputSpec`
and offers

:meth:`FeatureConstraints.repair`
    the projection used inside attacks: immutable features reset, each mutable
    feature clamped into ``[lower, upper] ∩ [x0 - eps * scale, x0 + eps * scale]``,
    integer features rounded and then clamped to the integers of that interval, and
    each one-hot group set to the one-hot vector of its largest entry (ties keep the
    original category; groups with an immutable member, or all groups when
    ``categorical="fixed"``, stay as they were). A category switch is not measured
    against ``eps``: a category has no magnitude.
:meth:`FeatureConstraints.validate`
    the final check: one :class:`ConstraintReport` stating, per row, whether every
    constraint holds, and how many rows break each one. Used on Bastion's own output
    and on other tools' output alike (see ``bench/evasion_blackbox.py``).

Relational constraints (``syn_count <= packets``) are outside what an input spec can
declare and are not checked.

Tensors are ``(n, d)`` on any device; ``scale`` is each feature's range (declared
bounds, or the reference data's range where a bound is missing).

Examples
--------
>>> import torch
>>> from bastion.targets.spec import InputSpec
>>> spec = InputSpec(shape=(5,), lower=0.0, upper=[10, 10, 1, 1, 1],
...                  feature_names=["port", "packets", "tcp", "udp", "icmp"],
...                  immutable=["port"], integer=["port", "packets"],
...                  one_hot_groups=[["tcp", "udp", "icmp"]])
>>> fc = FeatureConstraints.from_spec(spec)
>>> x0 = torch.tensor([[3.0, 4.0, 1.0, 0.0, 0.0]])
>>> fc.repair(torch.tensor([[7.0, 5.6, 0.2, 0.9, 0.1]]), x0, eps=1.0).tolist()
[[3.0, 6.0, 0.0, 1.0, 0.0]]
>>> fc.validate(torch.tensor([[3.0, 5.5, 1.0, 1.0, 0.0]]), x0, eps=1.0).violations
{'immutable': 0, 'bounds': 0, 'integer': 1, 'one_hot': 1, 'budget': 0}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from bastion.errors import DataError, UsageError
from bastion.targets.spec import InputSpec

__all__ = ["Categorical", "ConstraintReport", "FeatureConstraints"]

Categorical = Literal["free", "fixed"]
_KINDS = ("immutable", "bounds", "integer", "one_hot", "budget")


@dataclass(frozen=True)
class ConstraintReport:
    """Which rows satisfy every constraint.

    Attributes
    ----------
    valid : Tensor
        ``(n,)`` bool, True where the row satisfies every constraint.
    violations : dict of str to int
        Rows breaking each constraint: ``immutable``, ``bounds``, ``integer``,
        ``one_hot`` and ``budget`` (outside the ε-ball; only checked when ``eps`` is
        given).
    """

    valid: torch.Tensor
    violations: dict[str, int]

    @property
    def n_valid(self) -> int:
        """Rows that satisfy every constraint."""
        return int(self.valid.sum())

    @property
    def all_valid(self) -> bool:
        """True when every row is valid."""
        return bool(self.valid.all())


@dataclass(frozen=True)
class FeatureConstraints:
    """Constraints of ``d`` flat features; build with :meth:`from_spec`.

    Attributes
    ----------
    lower, upper : Tensor
        ``(d,)`` declared bounds (``-inf``/``inf`` where unset).
    scale : Tensor
        ``(d,)`` positive unit of each feature for ε (its range).
    mutable, integer : Tensor
        ``(d,)`` bool masks.
    groups : tuple of Tensor
        Indices of each one-hot group.
    group_free : tuple of bool
        Whether each group may switch category.
    continuous : Tensor
        ``(d,)`` bool: mutable and in no one-hot group (the features ε applies to).
    """

    lower: torch.Tensor
    upper: torch.Tensor
    scale: torch.Tensor
    mutable: torch.Tensor
    integer: torch.Tensor
    groups: tuple[torch.Tensor, ...]
    group_free: tuple[bool, ...]
    continuous: torch.Tensor

    @classmethod
    def from_spec(
        cls,
        spec: InputSpec,
        reference: np.ndarray | None = None,
        *,
        categorical: Categorical = "free",
        device: torch.device | str = "cpu",
    ) -> FeatureConstraints:
        """Constraints of a flat (tabular) spec; ``reference`` rows fill missing ranges.

        Raises
        ------
        DataError
            If the spec is not one-dimensional, or a feature has neither finite bounds
            nor reference data to measure its range.
        """
        if len(spec.shape) != 1:
            raise DataError(
                f"Feature constraints apply to flat tabular rows; this model's rows have "
                f"shape {tuple(spec.shape)}."
            )
        if categorical not in ("free", "fixed"):
            raise UsageError(f"'categorical' must be 'free' or 'fixed'; got {categorical!r}.")
        lo, hi = spec.bounds()
        span = hi - lo
        if reference is not None and len(reference):
            ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
            span = np.where(np.isfinite(span), span, ref.max(axis=0) - ref.min(axis=0))
        if not np.isfinite(span).all():
            raise DataError(
                "Some features have no finite bounds and no reference data to measure their "
                "range; declare lower/upper in the input spec."
            )
        span = np.where(span > 0, span, 1.0)
        mutable = spec.mutable_mask()
        groups, free = [], []
        in_group = np.zeros(spec.n_features, dtype=bool)
        for members in spec.one_hot_indices():
            groups.append(torch.as_tensor(members, dtype=torch.int64, device=device))
            free.append(categorical == "free" and bool(mutable[members].all()))
            in_group[members] = True
            span[members] = 1.0

        def t(a: np.ndarray, dt: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(a, dtype=dt, device=device)

        return cls(
            lower=t(lo),
            upper=t(hi),
            scale=t(span),
            mutable=t(mutable, torch.bool),
            integer=t(spec.integer_mask(), torch.bool),
            groups=tuple(groups),
            group_free=tuple(free),
            continuous=t(mutable & ~in_group, torch.bool),
        )

    @property
    def n_features(self) -> int:
        """Number of features ``d``."""
        return len(self.lower)

    @property
    def free_categorical(self) -> torch.Tensor:
        """``(d,)`` bool: members of one-hot groups that may switch category."""
        mask = torch.zeros_like(self.mutable)
        for members, free in zip(self.groups, self.group_free, strict=True):
            if free:
                mask[members] = True
        return mask

    def box(self, x0: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row interval of the continuous features: bounds ∩ ε-ball (L∞, in ``scale``)."""
        radius = eps * self.scale if math.isfinite(eps) else torch.full_like(self.scale, math.inf)
        low = torch.maximum(self.lower, x0 - radius)
        high = torch.minimum(self.upper, x0 + radius)
        return torch.minimum(low, x0), torch.maximum(high, x0)

    def repair(
        self,
        cand: torch.Tensor,
        x0: torch.Tensor,
        eps: float = math.inf,
        *,
        rounding: Literal["nearest", "toward_original"] = "nearest",
    ) -> torch.Tensor:
        """The valid row closest in spirit to ``cand`` (see the module docstring).

        ``rounding="toward_original"`` rounds integer features towards ``x0`` (never
        away), so the change of no feature grows -- any norm bound ``cand`` met, the
        repaired row meets too.
        """
        low, high = self.box(x0, eps)
        out = torch.clamp(cand.to(x0.dtype), low, high)
        ints = self.integer & self.continuous
        if bool(ints.any()):
            lo_i, hi_i = torch.ceil(low), torch.floor(high)
            toward = rounding == "toward_original"
            rounded = x0 + torch.trunc(out - x0) if toward else torch.round(out)
            rounded = torch.clamp(rounded, lo_i, hi_i)
            rounded = torch.where(lo_i <= hi_i, rounded, x0)
            out = torch.where(ints, rounded, out)
        out = torch.where(self.continuous, out, x0)
        for members, free in zip(self.groups, self.group_free, strict=True):
            if not free:
                continue
            scores = cand[:, members].to(x0.dtype) + 1e-3 * x0[:, members]
            hot = torch.zeros_like(scores).scatter_(1, scores.argmax(dim=1, keepdim=True), 1.0)
            out[:, members] = hot
        return out

    def validate(
        self, x_adv: torch.Tensor, x0: torch.Tensor, eps: float | None = None
    ) -> ConstraintReport:
        """Check every constraint on every row of ``x_adv`` against its original ``x0``."""
        a = x_adv.to(torch.float64)
        b = x0.to(torch.float64)
        lo, hi = self.lower.to(a), self.upper.to(a)
        tol = 1e-6 + 1e-6 * b.abs()
        bad: dict[str, torch.Tensor] = {
            "immutable": ((a != b) & ~self.mutable).any(dim=1),
            "bounds": ((a < lo - tol) | (a > hi + tol)).any(dim=1),
            "integer": ((a != torch.round(a)) & self.integer).any(dim=1),
        }
        one_hot = torch.zeros(len(a), dtype=torch.bool, device=a.device)
        for members in self.groups:
            g = a[:, members]
            one_hot |= ~(((g == 0) | (g == 1)).all(dim=1) & (g.sum(dim=1) == 1))
        bad["one_hot"] = one_hot
        if eps is not None:
            radius = eps * self.scale.to(a) * (1 + 1e-5) + tol
            bad["budget"] = (((a - b).abs() > radius) & self.continuous).any(dim=1)
        else:
            bad["budget"] = torch.zeros_like(one_hot)
        valid = ~torch.stack([bad[k] for k in _KINDS]).any(dim=0)
        return ConstraintReport(valid=valid, violations={k: int(bad[k].sum()) for k in _KINDS})
