"""The :class:`Dataset` every probe receives.

A dataset is a fixed train/test split of NumPy arrays in the model's *raw* input
space (normalisation belongs to the model), with integer labels ``0..K-1`` and the
class names they stand for.

Examples
--------
>>> import numpy as np
>>> from bastion.data import Dataset
>>> ds = Dataset(name="toy", x_train=np.zeros((4, 2)), y_train=np.array([0, 1, 0, 1]),
...              x_test=np.ones((2, 2)), y_test=np.array([1, 0]), classes=["no", "yes"])
>>> ds.n_classes, ds.row_shape
(2, (2,))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bastion.errors import DataError

__all__ = ["Dataset"]


@dataclass(frozen=True)
class Dataset:
    """A labelled train/test split.

    Parameters
    ----------
    name : str
    x_train, y_train, x_test, y_test : numpy.ndarray
        Inputs ``(n, *row_shape)`` and integer labels ``(n,)``. The training part may
        be empty (0 rows) when only test data is available.
    classes : sequence of str
        Class names; label ``i`` means ``classes[i]``.
    feature_names : sequence of str or None
        Names of flattened features (tabular data).
    description : str
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: Sequence[str]
    feature_names: Sequence[str] | None = None
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x = getattr(self, f"x_{part}")
            y = getattr(self, f"y_{part}")
            if len(x) != len(y):
                raise DataError(
                    f"Dataset {self.name!r}: x_{part} has {len(x)} rows but y_{part} has "
                    f"{len(y)} labels; they must match."
                )
            if y.ndim != 1 or (len(y) and y.dtype.kind not in "iu"):
                raise DataError(
                    f"Dataset {self.name!r}: y_{part} must be a 1-D array of integer labels; "
                    f"got shape {y.shape} and dtype {y.dtype}."
                )
            if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
                raise DataError(
                    f"Dataset {self.name!r}: y_{part} has labels outside 0..{len(self.classes) - 1}"
                    f" ({len(self.classes)} classes); check the label column or class list."
                )
            if x.dtype.kind == "f" and not np.isfinite(x).all():
                raise DataError(
                    f"Dataset {self.name!r}: x_{part} contains NaN or infinite values; clean "
                    "or drop those rows first."
                )
        if len(self.x_test) == 0:
            raise DataError(f"Dataset {self.name!r} has no test rows; probes need some.")
        if len(self.x_train) and self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"Dataset {self.name!r}: train rows have shape {self.x_train.shape[1:]} but "
                f"test rows {self.x_test.shape[1:]}."
            )

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one input row."""
        return tuple(self.x_test.shape[1:])

    def test_sample(self, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` test rows drawn without replacement, stratification-free."""
        if n is None or n >= len(self.x_test):
            return self.x_test, self.y_test
        idx = np.random.default_rng(seed).choice(len(self.x_test), size=n, replace=False)
        idx.sort()
        return self.x_test[idx], self.y_test[idx]
