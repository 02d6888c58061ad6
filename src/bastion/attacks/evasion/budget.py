"""Perturbation budgets in a model's raw input space: the :class:`Domain`.

Budgets are given in the target's *raw* input space (normalisation is part of the
model) and read with the one rule of :mod:`bastion.attacks.evasion.units`
(``units``: ``auto`` = raw units when every feature shares one finite range,
fractions of each feature's range otherwise; ``raw`` and ``range`` force either).
The domain turns that into a per-feature ``scale``:

* L∞ budget ``eps``: every feature ``i`` may move by at most ``eps * scale_i``;
* L2 budget ``eps``: ``|| (x_adv - x) / scale ||_2 <= eps``;

where ``scale_i`` is 1 in raw units, and in range units ``upper_i - lower_i`` from
the input spec, or the range of the reference data where a bound is missing (1
where even that is zero). :meth:`Domain.check_budgets` refuses budgets larger than
the input could ever need (an L∞ budget beyond every feature's whole range).

Every point an attack returns lies inside the declared bounds exactly (``clamp``),
and features that may not change are copied from the clean input bit for bit:
immutable features always, and by default integer features and one-hot groups too
(the generic white-box attacks do not round or repair them; the constrained tabular
attack does).

Examples
--------
>>> import numpy as np, torch
>>> from bastion.targets import InputSpec
>>> spec = InputSpec(shape=(3,), lower=[0.0, 0.0, 0.0], upper=[1.0, 100.0, 10.0],
...                  feature_names=["a", "b", "port"], immutable=["port"])
>>> dom = Domain.from_spec(spec)
>>> dom.units.kind, dom.scale.tolist(), dom.mutable.tolist()
('range', [1.0, 100.0, 10.0], [True, True, False])
>>> x = torch.tensor([[0.5, 50.0, 4.0]])
>>> lo, hi = dom.ball_box(x, 0.1)
>>> lo.tolist(), hi.tolist()
([[0.4000000059604645, 40.0, 4.0]], [[0.6000000238418579, 60.0, 4.0]])
>>> Domain.unit((1, 8, 8)).simple
True
>>> img = Domain.from_spec(InputSpec(shape=(1, 4, 4), lower=0.0, upper=255.0))
>>> img.units.describe(), float(img.scale.max()), img.reach
('raw units, pixels in [0, 255]', 1.0, (255.0, 1020.0))
>>> img.check_budgets([8.0, 300.0], "linf", "evasion.pgd")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bastion.errors.UsageError: The 'budgets' parameter of evasion.pgd has an L∞ budget of 300 ...
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from bastion.attacks.evasion.projections import Norm, lp_norm, scale_to_l2_ball, unit_direction
from bastion.attacks.evasion.units import NORM_NAMES, BudgetUnits, Units
from bastion.errors import DataError, UsageError
from bastion.targets.spec import InputSpec

__all__ = ["BudgetUnits", "Domain", "Units", "check_eps", "check_norm", "check_positive_int"]

_TOL = 1e-6


def check_norm(norm: object, who: str) -> Norm:
    """``norm`` if it is ``"linf"`` or ``"l2"``, else a :class:`UsageError`."""
    if norm not in ("linf", "l2"):
        raise UsageError(f"The 'norm' parameter of {who} must be 'linf' or 'l2'; got {norm!r}.")
    return norm  # type: ignore[return-value]


def check_eps(eps: object, who: str, *, name: str = "eps") -> float:
    """``eps`` as a float if it is finite and > 0, else a :class:`UsageError`."""
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps):
        raise UsageError(f"The {name!r} parameter of {who} must be a float > 0; got {eps!r}.")
    if eps <= 0:
        raise UsageError(f"The {name!r} parameter of {who} must be a float > 0; got {eps!r}.")
    return float(eps)


def check_positive_int(value: object, who: str, name: str, *, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum``, else a :class:`UsageError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(
            f"The {name!r} parameter of {who} must be an integer >= {minimum}; got {value!r}."
        )
    return value


@dataclass(frozen=True, eq=False)
class Domain:
    """Bounds, per-feature scale and mutable mask of one input row.

    Build it with :meth:`from_spec` (from a target's input spec) or :meth:`unit`
    (``[0, 1]``, every feature free). Tensors have the row shape and live on one
    device; :meth:`to` moves them.

    Attributes
    ----------
    lower, upper : Tensor
        Row-shaped bounds (``-inf``/``inf`` where unbounded).
    scale : Tensor
        Row-shaped positive units of the budget.
    mutable : Tensor
        Row-shaped bool: True where an attack may change the feature.
    simple : bool
        Scalar finite bounds, unit scale, every feature mutable: the fast path for
        images in raw units.
    units : BudgetUnits
        How budgets are read (see :mod:`bastion.attacks.evasion.units`).
    reach : tuple of float
        ``(L∞, L2)``: the largest budgets that still mean something -- every mutable
        feature moved across its whole range.
    """

    lower: torch.Tensor
    upper: torch.Tensor
    scale: torch.Tensor
    mutable: torch.Tensor
    simple: bool = False
    units: BudgetUnits = field(default_factory=lambda: BudgetUnits("range"))
    reach: tuple[float, float] = (math.inf, math.inf)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def unit(
        cls,
        shape: Sequence[int],
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Domain:
        """Inputs in ``[0, 1]``, every feature mutable, budgets in raw units."""
        row = tuple(int(s) for s in shape)
        zeros = torch.zeros(row, device=device, dtype=dtype)
        n = math.prod(row)
        return cls(
            zeros,
            zeros + 1,
            zeros + 1,
            torch.ones(row, dtype=torch.bool, device=device),
            simple=True,
            units=BudgetUnits("raw", "auto", (0.0, 1.0), len(row) >= 2),
            reach=(1.0, math.sqrt(n)),
        )

    @classmethod
    def from_spec(
        cls,
        spec: InputSpec,
        *,
        reference: np.ndarray | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        freeze_discrete: bool = True,
        units: Units = "auto",
        who: str = "the attack",
    ) -> Domain:
        """The domain an input spec declares, with budgets read in ``units``.

        Parameters
        ----------
        spec : InputSpec
        reference : numpy.ndarray or None
            Rows ``(m, *shape)`` whose per-feature range is the range of features
            without two finite bounds (1 where the range is zero or no rows are given).
        device, dtype
            Where the tensors live.
        freeze_discrete : bool
            Also freeze integer features and one-hot groups (see the module docstring).
        units : {"auto", "raw", "range"}
            The budget units (:mod:`bastion.attacks.evasion.units`).
        who : str
            Named in the error for bad ``units``.
        """
        resolved = BudgetUnits.resolve(spec, units, who=who)
        lo, hi = spec.bounds()
        n = spec.n_features
        data_range = np.ones(n)
        if reference is not None and len(reference):
            flat = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
            if flat.shape[1] != n:
                raise DataError(
                    f"The reference rows have {flat.shape[1]} features but the input spec has "
                    f"{n}; use data that matches the model."
                )
            data_range = flat.max(axis=0) - flat.min(axis=0)
        bounded = np.isfinite(lo) & np.isfinite(hi)
        span = np.where(bounded, hi - lo, data_range)
        mutable = spec.mutable_mask().copy()
        mutable &= ~(bounded & (span <= 0))  # a feature pinned by its bounds cannot move
        span = np.where(span > 0, span, 1.0)
        if freeze_discrete:
            mutable &= ~spec.integer_mask()
            for group in spec.one_hot_indices():
                mutable[group] = False
        scale = span if resolved.kind == "range" else np.ones(n)
        reach_units = (span / scale)[mutable]
        reach = (
            float(reach_units.max()) if len(reach_units) else 0.0,
            float(np.sqrt(np.sum(reach_units**2))),
        )
        shape = tuple(spec.shape)

        def as_tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a.reshape(shape), device=device, dtype=dtype)

        simple = bool(
            mutable.all()
            and np.all(scale == 1.0)
            and bounded.all()
            and np.all(lo == lo[0])
            and np.all(hi == hi[0])
        )
        mask = torch.as_tensor(mutable.reshape(shape), device=device)
        return cls(
            as_tensor(lo),
            as_tensor(hi),
            as_tensor(scale),
            mask,
            simple=simple,
            units=resolved,
            reach=reach,
        )

    def to(self, like: torch.Tensor) -> Domain:
        """This domain on ``like``'s device and dtype (itself when already there)."""
        if self.lower.device == like.device and self.lower.dtype == like.dtype:
            return self
        return replace(
            self,
            lower=self.lower.to(like),
            upper=self.upper.to(like),
            scale=self.scale.to(like),
            mutable=self.mutable.to(like.device),
        )

    # -- checks -------------------------------------------------------------------------
    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one row."""
        return tuple(self.lower.shape)

    @property
    def any_mutable(self) -> bool:
        """True when at least one feature may change."""
        return bool(self.mutable.any())

    def check_budgets(
        self, budgets: Iterable[float], norm: str, who: str, *, name: str = "budgets"
    ) -> None:
        """Raise :class:`UsageError` if a budget exceeds what the input could ever need.

        An L∞ budget beyond :attr:`reach` lets every feature cross its whole range;
        an L2 budget beyond it is larger than moving every mutable feature across its
        whole range.
        """
        values = list(budgets)
        if not values:
            return
        worst = max(values)
        limit = self.reach[0] if norm == "linf" else self.reach[1]
        if worst <= limit * (1 + 1e-9):
            return
        units = self.units.describe()
        if norm == "linf":
            raise UsageError(
                f"The {name!r} parameter of {who} has an L∞ budget of {worst:g} ({units}), "
                f"more than {limit:g}, which already lets every feature cross its whole range; "
                f"use budgets up to {limit:g} or other units."
            )
        raise UsageError(
            f"The {name!r} parameter of {who} has an {NORM_NAMES['l2']} budget of {worst:g} "
            f"({units}), more than {limit:.3g}, the L2 size of moving every mutable feature "
            "across its whole range; use smaller budgets."
        )

    def check(self, x: torch.Tensor, who: str) -> None:
        """Raise :class:`DataError` unless ``x`` is a finite batch inside the bounds."""
        if x.ndim == 0 or tuple(x.shape[1:]) != self.row_shape:
            raise DataError(
                f"{who} got rows of shape {tuple(x.shape[1:])}, but the domain's rows have "
                f"shape {self.row_shape}; reshape the data or fix the model's input spec."
            )
        if not torch.is_floating_point(x) or not bool(torch.isfinite(x).all()):
            raise DataError(f"{who} needs finite floating-point inputs; clean the data first.")
        if bool((x < self.lower - _TOL).any() or (x > self.upper + _TOL).any()):
            raise DataError(
                f"{who} got inputs outside the declared bounds; rescale the data to the "
                "model's raw input space or correct the bounds."
            )

    # -- boxes --------------------------------------------------------------------------
    def box(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row bounds ``(n, *shape)`` with frozen features pinned to ``x``."""
        lo = torch.where(self.mutable, self.lower, x)
        hi = torch.where(self.mutable, self.upper, x)
        return lo, hi

    def ball_box(self, x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row bounds of the L∞ ball of radius ``eps`` intersected with the box."""
        reach = eps * self.scale if not self.simple else eps
        lo, hi = (self.lower, self.upper) if self.simple else self.box(x)
        return torch.maximum(lo, x - reach), torch.minimum(hi, x + reach)

    # -- geometry -----------------------------------------------------------------------
    def norm(self, delta: torch.Tensor, norm: Norm) -> torch.Tensor:
        """Size ``(n,)`` of perturbations ``(n, *shape)`` in units of the scale."""
        flat = delta if self.simple else delta / self.scale
        return lp_norm(flat.reshape(len(delta), -1), norm)

    def ascent(self, grad: torch.Tensor, norm: Norm) -> torch.Tensor:
        """Steepest-ascent step of unit size (in the budget's metric) for ``grad``.

        L∞: ``scale * sign(g)``; L2: ``scale * u`` with ``u`` the unit vector along
        ``scale * g``. Frozen features get no step.
        """
        if self.simple:
            return unit_direction(grad.reshape(len(grad), -1), norm).reshape(grad.shape)
        g = torch.where(self.mutable, grad * self.scale, 0.0)
        step = unit_direction(g.reshape(len(g), -1), norm).reshape(g.shape)
        return step * self.scale

    def project(
        self,
        x_adv: torch.Tensor,
        x: torch.Tensor,
        eps: float,
        norm: Norm,
        bounds: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """``x_adv`` moved into the ``eps``-ball around ``x`` and into ``bounds``.

        ``bounds`` is :meth:`ball_box` for L∞ (exact projection) and :meth:`box` for
        L2 (shrink onto the sphere, then clip: clipping towards a box that contains
        ``x`` never increases the norm, so the result is feasible).
        """
        if norm == "l2":
            delta = x_adv - x
            flat = (delta if self.simple else delta / self.scale).reshape(len(delta), -1)
            shrunk = scale_to_l2_ball(flat, eps).reshape(delta.shape)
            x_adv = x + (shrunk if self.simple else shrunk * self.scale)
        return torch.clamp(x_adv, bounds[0], bounds[1])

    def random_start(
        self, x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator
    ) -> torch.Tensor:
        """A random point of the ``eps``-ball around ``x`` (before clipping to the box).

        L∞: uniform in the cube. L2: a uniformly random direction with a radius drawn
        uniformly from ``[0, eps]``.
        """
        if norm == "linf":
            u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            noise = (2 * u - 1) * eps
        else:
            g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            g = torch.where(self.mutable, g, 0.0)
            flat = g.reshape(len(g), -1)
            flat = flat / flat.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
            r = torch.rand((len(g), 1), generator=generator, device=x.device, dtype=x.dtype)
            noise = (flat * r * eps).reshape(x.shape)
        return x + (noise if self.simple else noise * self.scale)
