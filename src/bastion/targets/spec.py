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

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bastion.errors import DataError

__all__ = ["InputSpec"]

_TOL = 1e-6
"""Slack of :meth:`InputSpec.check` on the declared bounds (float rounding in transforms)."""

_MIN = np.minimum.reduce
_MAX = np.maximum.reduce


@dataclass(frozen=True, eq=False)
class _Derived:
    """Constants derived once from a spec's shape and bounds (read-only arrays).

    ``shape``, ``lower`` and ``upper`` are the field objects they were derived from, so
    a copy made with ``model_copy(update=...)`` (which copies cached values too) is
    noticed and rebuilt. Compared by identity (``eq=False``): pydantic's ``==`` first
    compares the whole instance dicts, cache included, and arrays have no truth value.
    """

    shape: tuple[int, ...]
    lower: float | list[float] | None
    upper: float | list[float] | None
    lo: np.ndarray
    hi: np.ndarray
    lo_tol: np.ndarray
    hi_tol: np.ndarray
    uniform: tuple[float, float] | None
    """``(lo - tol, hi + tol)`` as floats when every feature has the same bounds."""

    @classmethod
    def of(cls, spec: InputSpec) -> _Derived:
        n = spec.n_features
        lo = np.full(n, -np.inf) if spec.lower is None else _flat_bound(spec.lower, n)
        hi = np.full(n, np.inf) if spec.upper is None else _flat_bound(spec.upper, n)
        lo_tol, hi_tol = lo - _TOL, hi + _TOL
        uniform = None
        if n and (lo_tol == lo_tol[0]).all() and (hi_tol == hi_tol[0]).all():
            uniform = (float(lo_tol[0]), float(hi_tol[0]))
        for arr in (lo, hi, lo_tol, hi_tol):
            arr.flags.writeable = False
        return cls(
            shape=spec.shape,
            lower=spec.lower,
            upper=spec.upper,
            lo=lo,
            hi=hi,
            lo_tol=lo_tol,
            hi_tol=hi_tol,
            uniform=uniform,
        )


def _flat_bound(bound: float | list[float], n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(bound, dtype=np.float64), (n,)).copy()


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
        return math.prod(self.shape) if self.shape else 1

    @cached_property
    def _derived_cache(self) -> _Derived:
        return _Derived.of(self)

    @property
    def _derived(self) -> _Derived:
        """The derived constants, rebuilt if a field was swapped by ``model_copy``."""
        derived = self._derived_cache
        if not (
            derived.shape is self.shape
            and derived.lower is self.lower
            and derived.upper is self.upper
        ):
            derived = _Derived.of(self)
            self.__dict__["_derived_cache"] = derived
        return derived

    def _index(self, names: list[str]) -> list[int]:
        assert self.feature_names is not None or not names
        position = {name: i for i, name in enumerate(self.feature_names or [])}
        return [position[name] for name in names]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds as flat float arrays (``-inf``/``inf`` if unset).

        The arrays are fresh copies the caller may change.
        """
        derived = self._derived
        return derived.lo.copy(), derived.hi.copy()

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
        derived = self._derived
        flat = x.reshape(len(x), -1)
        lo, hi = derived.lo, derived.hi
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
        if not self._values_ok(arr):
            self._explain(arr, what)

    def _values_ok(self, arr: np.ndarray) -> bool:
        """True when a numeric batch of the right shape is finite and inside the bounds.

        Exactly the condition :meth:`_explain` rejects, in as few NumPy calls as
        possible: with the same bounds for every feature, one min and one max (a NaN
        makes both NaN and every comparison false). Empty batches take the slow path,
        and so do extended-precision floats, which ``float()`` would round.
        """
        if not arr.size:
            return False
        derived = self._derived
        if derived.uniform is not None and arr.dtype.itemsize <= 8:
            lo, hi = derived.uniform
            values = arr.ravel()  # 1-D reductions have the least overhead
            low, high = float(_MIN(values)), float(_MAX(values))
            return lo <= low and high <= hi and -math.inf < low and high < math.inf
        flat = arr.reshape(len(arr), -1)
        if arr.dtype.kind == "f" and not np.isfinite(flat).all():
            return False
        return bool(((flat >= derived.lo_tol) & (flat <= derived.hi_tol)).all())

    def _explain(self, arr: np.ndarray, what: str) -> None:
        """Raise the :class:`DataError` naming why ``arr`` fails the value checks."""
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).sum())
            raise DataError(
                f"The {what} has {bad} row(s) with NaN or infinite values; "
                "clean or drop them first."
            )
        derived = self._derived
        lo, hi = derived.lo, derived.hi
        flat = arr.reshape(len(arr), -1)
        if (flat < derived.lo_tol).any() or (flat > derived.hi_tol).any():
            raise DataError(
                f"The {what} has values outside the model's declared bounds "
                f"[{np.min(lo):g}, {np.max(hi):g}]; rescale the data to the model's raw "
                "input space or correct the bounds."
            )
