"""Gaussian noise in a target's raw input space, for randomized smoothing.

Cohen, Rosenfeld and Kolter (ICML 2019) smooth a base classifier ``f`` with isotropic
Gaussian noise: ``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)``.
:class:`GaussianNoise` draws ``x + e`` for a batch, as tensors on the model's device.

Units. ``sigma`` -- and therefore every certified radius -- is in the units of the
budget, as with the evasion probes (:mod:`bastion.attacks.evasion.budget`):

* ``units="raw"`` (default): the target's raw input units. For inputs in ``[0, 1]``
  this is the familiar setting (``sigma = 0.25`` on images scaled to ``[0, 1]``).
* ``units="range"``: each feature's noise is ``sigma * scale_i`` with ``scale_i`` the
  feature's range (declared bounds, else the reference data's range), i.e. isotropic
  noise in range-normalised coordinates ``x_i / scale_i``, and the radius is the L2
  norm of ``delta / scale`` -- the L2 budget of the white-box evasion probes. Use it
  for tabular inputs whose features have different ranges; for images in ``[0, 1]``
  both units agree.

Which features get noise. Only features an attacker may change: immutable features,
integer features and one-hot groups are left exactly as they are (the same features
the white-box evasion probes freeze), so a radius certifies perturbations of the
*mutable* features only.

Bounds. Each noisy point is clipped to the input spec's bounds, so the base
classifier is in effect ``f(clip(.))``: it is never asked about inputs outside its
declared domain. Cohen et al.'s guarantee holds for *any* base classifier, so the
certificates stay valid; clipping is just part of the classifier being smoothed (and
the noise-augmented training of :mod:`bastion.remedies.randomized_smoothing` uses the
same clipped noise, so training and certification agree). Cohen et al. did not clip.

Examples
--------
>>> import torch
>>> from bastion.targets import InputSpec
>>> noise = GaussianNoise.from_spec(InputSpec(shape=(3,), lower=0.0, upper=1.0), 0.5)
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.full((1000, 3), 0.5)
>>> z = noise.sample(x, g)
>>> bool(((z >= 0) & (z <= 1)).all()), round(float((z - x).std()), 1)
(True, 0.4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from bastion.attacks.evasion.budget import Domain
from bastion.errors import DataError, TargetError, UsageError
from bastion.targets.spec import InputSpec

__all__ = ["GaussianNoise", "NoiseUnits", "check_sigma", "torch_dtype"]

#: Units of ``sigma`` and of certified radii (see the module docstring).
NoiseUnits = Literal["raw", "range"]


def check_sigma(sigma: object, who: str) -> float:
    """``sigma`` as a float if it is finite and > 0, else a :class:`UsageError`."""
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, int | float)
        or not math.isfinite(sigma)
        or sigma <= 0
    ):
        raise UsageError(
            f"The 'sigma' parameter of {who} must be a finite number > 0 (the noise's standard "
            f"deviation); got {sigma!r}."
        )
    return float(sigma)


def torch_dtype(spec: InputSpec, who: str) -> torch.dtype:
    """The torch dtype of a spec's rows; :class:`TargetError` unless floating point."""
    if np.dtype(spec.dtype).kind != "f":
        raise TargetError(
            f"{who} adds Gaussian noise to the inputs, but the model takes {spec.dtype} inputs; "
            "it needs a model with floating-point inputs."
        )
    return torch.from_numpy(np.zeros(0, dtype=np.dtype(spec.dtype))).dtype


def _feature_ranges(spec: InputSpec, reference: np.ndarray | None) -> np.ndarray:
    """Flat per-feature ranges: declared bounds, else the reference rows' range, else 1."""
    lo, hi = spec.bounds()
    span = np.where(np.isfinite(lo) & np.isfinite(hi), hi - lo, np.nan)
    if reference is not None and len(reference):
        flat = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
        if flat.shape[1] != spec.n_features:
            raise DataError(
                f"The reference rows have {flat.shape[1]} features but the input spec has "
                f"{spec.n_features}; use data that matches the model."
            )
        span = np.where(np.isnan(span), flat.max(axis=0) - flat.min(axis=0), span)
    span = np.nan_to_num(span, nan=1.0)
    return np.asarray(np.where(span > 0, span, 1.0))


@dataclass(frozen=True, eq=False)
class GaussianNoise:
    """Clipped Gaussian noise on the mutable features of one input row.

    Build it with :meth:`from_spec`. Tensors have the row shape.

    Attributes
    ----------
    sigma : float
        Standard deviation, in ``units``.
    units : {"raw", "range"}
    lower, upper : Tensor
        Row-shaped bounds (``-inf``/``inf`` where unbounded).
    scale : Tensor
        Row-shaped per-feature multiplier of ``sigma`` (all ones for ``"raw"``).
    mutable : Tensor
        Row-shaped bool: True where noise is added.
    """

    sigma: float
    units: NoiseUnits
    lower: torch.Tensor
    upper: torch.Tensor
    scale: torch.Tensor
    mutable: torch.Tensor

    @classmethod
    def from_spec(
        cls,
        spec: InputSpec,
        sigma: float,
        *,
        units: NoiseUnits = "raw",
        reference: np.ndarray | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
        who: str = "Randomized smoothing",
    ) -> GaussianNoise:
        """The noise for rows of ``spec``.

        Parameters
        ----------
        spec : InputSpec
        sigma : float
            Standard deviation, > 0.
        units : {"raw", "range"}
        reference : numpy.ndarray or None
            Rows ``(m, *shape)`` giving the range of features without two finite
            bounds (``units="range"`` only).
        device, dtype
            Where the tensors live; ``dtype`` defaults to the spec's.
        who : str
            Names the caller in error messages.

        Raises
        ------
        UsageError
            If ``sigma`` or ``units`` is invalid.
        DataError
            If no feature may change, so there is nothing to add noise to.
        """
        sigma = check_sigma(sigma, who)
        if units not in ("raw", "range"):
            raise UsageError(
                f"The 'units' parameter of {who} must be 'raw' or 'range'; got {units!r}."
            )
        dt = dtype if dtype is not None else torch_dtype(spec, who)
        domain = Domain.from_spec(spec, reference=reference, device=device, dtype=dt)
        if not domain.any_mutable:
            raise DataError(
                f"{who} adds noise to the features an attacker may change, but every feature "
                "of this model is immutable, integer or one-hot; check the input spec."
            )
        scale = torch.ones_like(domain.lower)
        if units == "range":
            scale = torch.as_tensor(
                _feature_ranges(spec, reference).reshape(domain.row_shape), device=device, dtype=dt
            )
        return cls(sigma, units, domain.lower, domain.upper, scale, domain.mutable)

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one row."""
        return tuple(self.lower.shape)

    def to(self, like: torch.Tensor) -> GaussianNoise:
        """This noise on ``like``'s device and dtype (itself when already there)."""
        if self.lower.device == like.device and self.lower.dtype == like.dtype:
            return self
        return replace(
            self,
            lower=self.lower.to(like),
            upper=self.upper.to(like),
            scale=self.scale.to(like),
            mutable=self.mutable.to(like.device),
        )

    def sample(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``clip(x + e)`` with ``e ~ N(0, (sigma * scale)^2)`` on mutable features.

        Parameters
        ----------
        x : Tensor
            ``(b, *row_shape)`` rows, inside the bounds.
        generator : torch.Generator
            On ``x``'s device; the only source of randomness.

        Returns
        -------
        Tensor
            ``(b, *row_shape)`` noisy rows, same device and dtype as ``x``.
        """
        if tuple(x.shape[1:]) != self.row_shape:
            raise DataError(
                f"Randomized smoothing got rows of shape {tuple(x.shape[1:])}, but the model's "
                f"rows have shape {self.row_shape}; reshape the data."
            )
        me = self.to(x)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        step = torch.where(me.mutable, z * (me.sigma * me.scale), 0.0)
        return torch.clamp(x + step, me.lower, me.upper)

    def describe(self) -> str:
        """The units of ``sigma`` and of radii, in words."""
        if self.units == "raw":
            return "in the model's raw input units"
        return "in units of each feature's range (L2 norm of delta / range)"
