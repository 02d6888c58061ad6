"""``input.validation``: reject malformed requests before they reach the model.

Checks every request against the target's :class:`~bastion.targets.spec.InputSpec`:
the batch is a list (or array) of rows, not empty and at most ``max_batch`` rows;
its size in the model's dtype is at most ``max_bytes``; every row has the declared
shape and holds numbers (not strings, booleans, objects or nested junk); every value
is finite, inside its declared bounds, integral where the feature is an integer and
one-hot where the feature belongs to a one-hot group. The first problem found is
returned as a denial whose message names the field, e.g.
``inputs[3][7] ('mean radius') = 1e+09 is above the upper bound 40``; sizes give
413, everything else 400 (not a batch) or 422 (a batch with bad values).

Booleans mixed with numbers in a list are read as 0 and 1 (NumPy's rule); a batch of
only booleans is refused. An accepted request is *transformed* into a clean array of
the model's dtype, so the guards after this one and the model see exactly what was
validated. The guard never raises on bad input: whatever arrives ends in a decision
(the property-based tests check that on arbitrary JSON-like values and arrays).

Not an attack: a runtime check. It blocks out-of-range and malformed inputs, a
cheap first filter against crafted inputs (OWASP ML01, CWE-1039) and against
resource abuse through oversized batches (ATLAS AML.T0029, denial of ML service).

Examples
--------
>>> import numpy as np
>>> from bastion.guards.base import GuardRequest
>>> from bastion.targets import InputSpec
>>> spec = InputSpec(shape=(2,), lower=0.0, upper=1.0, feature_names=["age", "income"])
>>> guard = InputValidationGuard(spec, max_batch=4)
>>> ok = guard.before(GuardRequest(principal="p", model="m", inputs=[[0.5, 0.25]]))
>>> ok.action.value, ok.payload.dtype.name
('transform', 'float32')
>>> guard.before(GuardRequest(principal="p", model="m", inputs=[[0.5, 7]])).reason
"inputs[0][1] ('income') = 7 is above the upper bound 1; send values in [0, 1]."
>>> guard.before(GuardRequest(principal="p", model="m", inputs=[[0.5, "x"]])).http_status
422
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from bastion.errors import UsageError
from bastion.findings import CatalogRefs
from bastion.guards.base import Decision, Guard, GuardMeta, GuardRequest
from bastion.targets.base import Target
from bastion.targets.spec import InputSpec

__all__ = ["InputValidationGuard"]

_NUMBER = (int, float, np.integer, np.floating)
_MIN = np.minimum.reduce
_MAX = np.maximum.reduce


class InputValidationGuard(Guard):
    """Checks shape, dtype, size, finiteness, bounds and feature constraints of inputs.

    Not an attack: validation of requests against the model's input spec.

    Parameters
    ----------
    spec : InputSpec
        What one row must look like (use :meth:`for_target` to take the target's).
    max_batch : int
        Most rows per request (413 above).
    max_bytes : int
        Most bytes per request once converted to the model's dtype (413 above).
    """

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="input.validation",
        title="Input validation against the model's input spec",
        catalog=CatalogRefs(
            owasp=["ML01"],
            atlas_techniques=["AML.T0043", "AML.T0029"],
            cwe=["CWE-1039"],
        ),
        order=30,
    )

    def __init__(
        self, spec: InputSpec, *, max_batch: int = 1024, max_bytes: int = 16 * 2**20
    ) -> None:
        if not isinstance(spec, InputSpec):
            raise UsageError(f"InputValidationGuard needs an InputSpec; got {type(spec).__name__}.")
        if max_batch < 1 or max_bytes < 1:
            raise UsageError("max_batch and max_bytes of input.validation must be >= 1.")
        self.spec = spec
        self.max_batch = int(max_batch)
        self.max_bytes = int(max_bytes)
        self._dtype = np.dtype(spec.dtype)
        self._lo, self._hi = spec.bounds()
        self._int_idx = np.flatnonzero(spec.integer_mask())
        self._groups = spec.one_hot_indices()
        self._row_bytes = spec.n_features * self._dtype.itemsize
        # The validation plan: what the fast acceptance test needs, derived once.
        self._shape = tuple(spec.shape)
        self._uniform: tuple[float, float] | None = None
        if len(self._lo) and (self._lo == self._lo[0]).all() and (self._hi == self._hi[0]).all():
            self._uniform = (float(self._lo[0]), float(self._hi[0]))
        self._constrained = bool(len(self._int_idx) or self._groups or self._dtype.kind in "iu")
        # Values inside finite bounds that the dtype can hold cannot overflow the cast.
        self._cast_safe = self._dtype.kind == "f" and bool(
            np.isfinite(self._lo).all()
            and np.isfinite(self._hi).all()
            and max(np.abs(self._lo).max(initial=0.0), np.abs(self._hi).max(initial=0.0))
            <= np.finfo(self._dtype).max
        )

    @classmethod
    def for_target(cls, target: Target, **params: Any) -> InputValidationGuard:
        """A validation guard for ``target``'s input spec."""
        return cls(target.input_spec, **params)

    # -- naming -----------------------------------------------------------------------
    def _field(self, row: int, flat: int) -> str:
        shape = self.spec.shape
        where = "".join(f"[{i}]" for i in np.unravel_index(flat, shape)) if shape else ""
        name = ""
        if self.spec.feature_names is not None:
            name = f" ({self.spec.feature_names[flat]!r})"
        return f"inputs[{row}]{where}{name}"

    def _path(self, path: Sequence[int]) -> str:
        return "inputs" + "".join(f"[{i}]" for i in path)

    # -- the check --------------------------------------------------------------------
    def before(self, request: GuardRequest) -> Decision:
        """Deny malformed inputs (4xx naming the field); transform valid ones to an array."""
        raw = request.inputs
        try:
            arr = self._to_array(raw)
        except _Invalid as bad:
            return Decision.deny(bad.reason, http_status=bad.status)
        problem = self._values(arr)
        if problem is not None:
            return Decision.deny(problem, http_status=422)
        if self._cast_safe:  # checked values fit the dtype: no overflow, no NaN
            return Decision.transform(arr.astype(self._dtype, copy=False))
        with np.errstate(over="ignore", invalid="ignore"):
            clean = arr.astype(self._dtype, copy=False)
        if self._dtype.kind == "f" and not np.isfinite(clean).all():
            row, flat = _first(~np.isfinite(clean.reshape(len(clean), -1)))
            value = arr.reshape(len(arr), -1)[row, flat]
            return Decision.deny(
                f"{self._field(row, flat)} = {value:g} is too large for {self._dtype.name}; "
                "send values the model's dtype can hold.",
                http_status=422,
            )
        return Decision.transform(clean)

    def _to_array(self, raw: Any) -> np.ndarray:
        if raw is None:
            raise _Invalid(400, "'inputs' is missing; send a list of rows.")
        if isinstance(raw, np.ndarray):
            if raw.ndim == 0:
                raise _Invalid(400, "'inputs' is a single number; send a list of rows.")
            n = raw.shape[0]
        elif isinstance(raw, list | tuple):
            n = len(raw)
        else:
            kind = "text" if isinstance(raw, str | bytes) else type(raw).__name__
            raise _Invalid(
                400,
                f"'inputs' must be a list of rows of shape {_shape(self.spec.shape)}; got {kind}.",
            )
        if n == 0:
            raise _Invalid(400, "'inputs' is empty; send at least one row.")
        if n > self.max_batch:
            raise _Invalid(
                413, f"'inputs' has {n} rows; at most {self.max_batch} are allowed per request."
            )
        if n * self._row_bytes > self.max_bytes:
            raise _Invalid(
                413,
                f"'inputs' is {n * self._row_bytes} bytes as {self._dtype.name}; at most "
                f"{self.max_bytes} are allowed per request.",
            )
        if isinstance(raw, np.ndarray):
            arr = raw
        else:
            self._check_rows(raw)
            try:
                arr = np.asarray(raw)
            except (ValueError, TypeError, OverflowError, RecursionError, MemoryError):
                raise _Invalid(422, self._locate(raw)) from None
        if arr.dtype.kind not in "iuf":
            if isinstance(raw, np.ndarray):
                raise _Invalid(
                    422, f"'inputs' has dtype {arr.dtype}; send numbers ({self._dtype.name})."
                )
            raise _Invalid(422, self._locate(raw))
        if arr.shape[1:] != self._shape:
            raise _Invalid(
                422,
                f"'inputs' has rows of shape {_shape(arr.shape[1:])}; each row must have "
                f"shape {_shape(self.spec.shape)}.",
            )
        return arr

    def _check_rows(self, rows: Sequence[Any]) -> None:
        """Cheap first-level check of each row, so a bad row is named before conversion."""
        shape = self.spec.shape
        for i, row in enumerate(rows):
            if not shape:
                if not _is_number(row):
                    raise _Invalid(422, f"inputs[{i}] must be a number.")
                continue
            if isinstance(row, list | tuple):
                if len(row) != shape[0]:
                    raise _Invalid(
                        422,
                        f"inputs[{i}] has {len(row)} values; each row must have shape "
                        f"{_shape(shape)}.",
                    )
            elif isinstance(row, np.ndarray):
                if tuple(row.shape) != tuple(shape):
                    raise _Invalid(
                        422,
                        f"inputs[{i}] has shape {_shape(row.shape)}; each row must have shape "
                        f"{_shape(shape)}.",
                    )
            else:
                raise _Invalid(
                    422, f"inputs[{i}] must be a row of shape {_shape(shape)}, not a single value."
                )

    def _locate(self, raw: Sequence[Any]) -> str:
        """The first element that keeps ``raw`` from being a numeric array of the row shape."""
        shape = tuple(self.spec.shape)
        stack: list[tuple[Any, tuple[int, ...], int]] = [
            (row, (i,), 0) for i, row in reversed(list(enumerate(raw)))
        ]
        while stack:
            node, path, depth = stack.pop()
            if depth == len(shape):
                if isinstance(node, int) and not isinstance(node, bool) and abs(node) >= 2**63:
                    return f"{self._path(path)} is too large; send values the model can hold."
                if not _is_number(node):
                    what = "true/false" if isinstance(node, bool | np.bool_) else "not a number"
                    return f"{self._path(path)} is {what}; send numbers."
                continue
            if isinstance(node, np.ndarray):
                node = node.tolist() if node.ndim else node.item()
            if not isinstance(node, list | tuple) or len(node) != shape[depth]:
                return (
                    f"{self._path(path)} must be a list of {shape[depth]} values (rows have "
                    f"shape {_shape(shape)})."
                )
            stack.extend(
                (child, (*path, j), depth + 1) for j, child in reversed(list(enumerate(node)))
            )
        return f"'inputs' is not an array of numbers of row shape {_shape(shape)}."

    def _values(self, arr: np.ndarray) -> str | None:
        """The first bad value of a numeric batch of the right shape, or None."""
        flat = arr.reshape(len(arr), -1)
        if not self._in_bounds(arr, flat):
            problem = self._bounds_problem(flat)
            if problem is not None:
                return problem
        if not self._constrained:
            return None
        return self._constraint_problem(flat)

    def _in_bounds(self, arr: np.ndarray, flat: np.ndarray) -> bool:
        """True exactly when :meth:`_bounds_problem` finds nothing, in few NumPy calls.

        With the same bounds for every feature this is one min and one max: a NaN
        makes both NaN and fails every comparison, and an infinite value fails the
        finiteness test even when a bound is infinite. Extended-precision floats,
        which ``float()`` would round, and empty rows take the general path.
        """
        if self._uniform is not None and arr.size and arr.dtype.itemsize <= 8:
            lo, hi = self._uniform
            values = arr.ravel()  # 1-D reductions have the least overhead
            low, high = float(_MIN(values)), float(_MAX(values))
            return lo <= low and high <= hi and -math.inf < low and high < math.inf
        if flat.dtype.kind == "f" and not np.isfinite(flat).all():
            return False
        return bool(((flat >= self._lo) & (flat <= self._hi)).all())

    def _bounds_problem(self, flat: np.ndarray) -> str | None:
        """The first NaN, infinite or out-of-bounds value, named."""
        if flat.dtype.kind == "f":
            bad = ~np.isfinite(flat)
            if bad.any():
                row, j = _first(bad)
                what = "NaN" if np.isnan(flat[row, j]) else "infinite"
                return f"{self._field(row, j)} is {what}; send finite numbers."
        with np.errstate(invalid="ignore"):
            below = flat < self._lo
            above = flat > self._hi
        if below.any() or above.any():
            row_b, j_b = _first(below) if below.any() else (len(flat), 0)
            row_a, j_a = _first(above) if above.any() else (len(flat), 0)
            if (row_b, j_b) <= (row_a, j_a):
                row, j, side, bound = row_b, j_b, "below the lower", self._lo[j_b]
            else:
                row, j, side, bound = row_a, j_a, "above the upper", self._hi[j_a]
            return (
                f"{self._field(row, j)} = {flat[row, j]:g} is {side} bound {bound:g}; send "
                f"values in [{self._lo[j]:g}, {self._hi[j]:g}]."
            )
        return None

    def _constraint_problem(self, flat: np.ndarray) -> str | None:
        """The first value breaking an integer or one-hot constraint, named."""
        int_cols = self._int_idx
        if self._dtype.kind in "iu" and flat.dtype.kind == "f":
            int_cols = np.arange(flat.shape[1])
        if len(int_cols) and flat.dtype.kind == "f":
            part = flat[:, int_cols]
            frac = part != np.round(part)
            if frac.any():
                row, k = _first(frac)
                j = int(int_cols[k])
                return f"{self._field(row, j)} = {flat[row, j]:g} must be a whole number."
        for group in self._groups:
            part = flat[:, group]
            binary = (part == 0) | (part == 1)
            ok = binary.all(axis=1) & (part.sum(axis=1) == 1)
            if not ok.all():
                row = int(np.flatnonzero(~ok)[0])
                names = [self._field(row, j) for j in group]
                return (
                    f"{names[0]} .. {names[-1]} form a one-hot group: exactly one must be 1 and "
                    "the others 0."
                )
        return None


class _Invalid(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool | np.bool_)


def _first(mask: np.ndarray) -> tuple[int, int]:
    row, col = np.argwhere(mask)[0]
    return int(row), int(col)


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
