"""Small helpers shared by the target adapters (not public API).

Examples
--------
>>> import numpy as np
>>> from bastion.targets._common import softmax, LabelMapper
>>> softmax(np.array([[0.0, 0.0]])).tolist()
[[0.5, 0.5]]
>>> LabelMapper(["cat", "dog"]).to_indices(["dog", 0, "1"]).tolist()
[1, 0, 1]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import TargetError
from bastion.targets.spec import InputSpec

__all__ = ["LabelMapper", "read_model_bytes", "softmax", "synthetic_rows"]


def read_model_bytes(path: str | os.PathLike[str]) -> bytes:
    """Read a whole model file once, so every check sees the bytes that get loaded.

    Raises
    ------
    TargetError
        If there is no file at ``path`` or it cannot be read.
    """
    p = Path(path)
    if not p.exists():
        raise TargetError(f"No model file at {p}; check the path.")
    if p.is_dir():
        raise TargetError(f"{p} is a folder, not a model file; give the path of the file itself.")
    try:
        return p.read_bytes()
    except OSError as err:
        raise TargetError(
            f"The model file {p} cannot be read ({err.strerror}); check its permissions."
        ) from err


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a 2-D array, computed stably in float64."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def looks_like_probabilities(scores: np.ndarray, *, atol: float = 1e-3) -> bool:
    """True when every row is non-negative, at most one and sums to one."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or not np.isfinite(s).all():
        return False
    in_range = bool((s >= -atol).all() and (s <= 1 + atol).all())
    return in_range and bool(np.allclose(s.sum(axis=1), 1.0, atol=atol))


def synthetic_rows(spec: InputSpec, n: int = 2) -> np.ndarray:
    """``n`` valid rows for a self-test: the bounds' midpoint (0 where unbounded).

    The second and later rows are spread between the lower and upper bounds so a
    model that ignores its input is not mistaken for one that works.
    """
    lo, hi = spec.bounds()
    lo_f = np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), np.minimum(hi, 0.0), 0.0))
    hi_f = np.where(np.isfinite(hi), hi, np.maximum(lo_f, 0.0) + 1.0)
    fractions = np.linspace(0.5, 0.25, n) if n > 1 else np.array([0.5])
    rows = lo_f[None, :] + fractions[:, None] * (hi_f - lo_f)[None, :]
    rows = spec.clip(rows.reshape((n, *spec.shape)))
    return np.asarray(rows, dtype=spec.dtype)


class LabelMapper:
    """Maps labels as a model or API reports them to Bastion's indices ``0..K-1``.

    A label that equals one of the class names maps to that name's position;
    otherwise an integer (or a string of digits) in ``0..K-1`` is taken as the index
    itself. Names win over indices, so classes ``["0", ..., "9"]`` map either way.

    Parameters
    ----------
    classes : sequence of str
        Class names in Bastion's order.
    """

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(str(c) for c in classes)
        self._by_name = {name: i for i, name in enumerate(self.classes)}

    def index(self, value: Any) -> int:
        """Index of one label value; :class:`TargetError` when it is not a class."""
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, str) and value in self._by_name:
            return self._by_name[value]
        if isinstance(value, bool):
            raise self._unknown(value)
        if isinstance(value, int | float) and float(value).is_integer():
            i = int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            i = int(value.strip())
        else:
            raise self._unknown(value)
        if not 0 <= i < len(self.classes):
            raise self._unknown(value)
        return i

    def to_indices(self, values: Iterable[Any]) -> np.ndarray:
        """Indices of many label values, shape ``(n,)``."""
        return np.asarray([self.index(v) for v in values], dtype=np.int64)

    def _unknown(self, value: Any) -> TargetError:
        shown = ", ".join(self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
        return TargetError(
            f"The model answered with label {value!r}, which is neither a class name "
            f"({shown}) nor an index in 0..{len(self.classes) - 1}; check the classes you "
            "declared."
        )
