"""What a target accepts: the :class:`InputSpec`.

The spec is what lets a probe build *valid* inputs: image pixels stay inside their
bounds, immutable tabular features are left alone, integer features stay integers
and a one-hot group keeps exactly one hot bit.

Examples
--------
>>> import numpy as np
>>> from bastion.targets.spec import InputSpec
>>> spec = InputSpec(shape=(3,), lower=0.0, upper=1.0, feature_names=["a", "b", "c"],
...                  immutable=["a"])
>>> spec.mutable_mask().tolist()
[False, True, True]
>>> spec.check(np.array([[0.2, 0.5, 1.0]], dtype=np.float32))
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bastion.errors import DataError

__all__ = ["InputSpec"]


class InputSpec(BaseModel):
    """Shape, dtype, bounds and feature constraints of one input row.

    Parameters
    ----------
    shape : tuple of int
        Shape of one row, without the batch axis, e.g. ``(1, 8, 8)`` or ``(30,)``.
    dtype : str
        NumPy dtype name the model expects, e.g. ``"float32"``.
    lower, upper : float, list of float or None
        Value bounds in the model's *raw* input space, one number for all features or
        one per feature (flattened order). None means unbounded.
    feature_names : list of str or None
        Names of the flattened features (tabular models).
    immutable : list of str
        Features an attacker cannot change (e.g. a destination port).
    integer : list of str
        Features that must stay integers.
    one_hot_groups : list of list of str
        Groups of features of which exactly one is 1 and the others 0.
    """

    model_config = ConfigDict(frozen=True)

    shape: tuple[int, ...]
    dtype: str = "float32"
    lower: float | list[float] | None = None
    upper: float | list[float] | None = None
    feature_names: list[str] | None = None
    immutable: list[str] = Field(default_factory=list)
    integer: list[str] = Field(default_factory=list)
    one_hot_groups: list[list[str]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        n = self.n_features
        if self.feature_names is not None and len(self.feature_names) != n:
            raise ValueError(
                f"feature_names has {len(self.feature_names)} names but the shape "
                f"{self.shape} has {n} features"
            )
        named = set(self.feature_names or [])
        for field in ("immutable", "integer"):
            unknown = [f for f in getattr(self, field) if f not in named]
            if unknown:
                raise ValueError(f"{field} names unknown features: {unknown}")
        for group in self.one_hot_groups:
            unknown = [f for f in group if f not in named]
            if unknown:
                raise ValueError(f"one_hot_groups names unknown features: {unknown}")
        for side in ("lower", "upper"):
            bound = getattr(self, side)
            if isinstance(bound, list) and len(bound) != n:
                raise ValueError(f"{side} has {len(bound)} values; expected {n}")
        return self

    @property
    def n_features(self) -> int:
        """Number of scalar features in one row."""
        return int(np.prod(self.shape)) if self.shape else 1

    def _index(self, names: list[str]) -> list[int]:
        assert self.feature_names is not None or not names
        position = {name: i for i, name in enumerate(self.feature_names or [])}
        return [position[name] for name in names]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds as flat float arrays (``-inf``/``inf`` if unset)."""
        n = self.n_features
        lo = (
            np.full(n, -np.inf)
            if self.lower is None
            else np.broadcast_to(np.asarray(self.lower, dtype=np.float64), (n,)).copy()
        )
        hi = (
            np.full(n, np.inf)
            if self.upper is None
            else np.broadcast_to(np.asarray(self.upper, dtype=np.float64), (n,)).copy()
        )
        return lo, hi

    def mutable_mask(self) -> np.ndarray:
        """Boolean mask over flattened features: True where an attacker may change it."""
        mask = np.ones(self.n_features, dtype=bool)
        mask[self._index(self.immutable)] = False
        return mask

    def integer_mask(self) -> np.ndarray:
        """Boolean mask over flattened features: True where values must be integers."""
        mask = np.zeros(self.n_features, dtype=bool)
        mask[self._index(self.integer)] = True
        return mask

    def one_hot_indices(self) -> list[list[int]]:
        """Flattened feature indices of each one-hot group."""
        return [self._index(group) for group in self.one_hot_groups]

    def clip(self, x: np.ndarray) -> np.ndarray:
        """Clip a batch into the declared bounds (returns a new array)."""
        lo, hi = self.bounds()
        flat = x.reshape(len(x), -1)
        return np.asarray(np.clip(flat, lo, hi).reshape(x.shape).astype(x.dtype, copy=False))

    def check(self, x: Any, *, what: str = "input") -> None:
        """Raise :class:`~bastion.errors.DataError` unless ``x`` is a valid batch.

        Checks the row shape, that values are finite, and the declared bounds.
        """
        arr = np.asarray(x)
        if arr.ndim == 0 or tuple(arr.shape[1:]) != tuple(self.shape):
            raise DataError(
                f"The {what} has rows of shape {tuple(arr.shape[1:])}, but the model expects "
                f"{tuple(self.shape)}; reshape the data or fix the model's input spec."
            )
        if arr.dtype.kind not in "biuf":
            raise DataError(
                f"The {what} has dtype {arr.dtype}; the model expects numbers ({self.dtype})."
            )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).sum())
            raise DataError(
                f"The {what} has {bad} row(s) with NaN or infinite values; "
                "clean or drop them first."
            )
        lo, hi = self.bounds()
        flat = arr.reshape(len(arr), -1)
        tol = 1e-6
        if (flat < lo - tol).any() or (flat > hi + tol).any():
            raise DataError(
                f"The {what} has values outside the model's declared bounds "
                f"[{np.min(lo):g}, {np.max(hi):g}]; rescale the data to the model's raw "
                "input space or correct the bounds."
            )
