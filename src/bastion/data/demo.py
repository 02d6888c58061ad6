"""Built-in demo datasets, read from the copies bundled with scikit-learn (no downloads).

Two small, well-known datasets let every example, test and tutorial run offline:

``digits``
    1,797 handwritten digits, 8x8 grey-scale images, as float32 ``(n, 1, 8, 8)``
    scaled to ``[0, 1]`` (the raw 0..16 intensities divided by 16); classes
    ``"0"`` to ``"9"``.
``breast_cancer``
    569 tumours described by 30 real-valued measurements (Wisconsin Diagnostic
    Breast Cancer), raw float32 ``(n, 30)`` in their own units; classes
    ``"malignant"`` (0) and ``"benign"`` (1).

Both come with a fixed stratified 75/25 train/test split chosen by ``seed``.

Examples
--------
>>> from bastion.data.demo import DEMO_DATASETS, load_digits_dataset
>>> ds = load_digits_dataset()
>>> ds.row_shape, ds.n_classes, float(ds.x_test.max()) <= 1.0
((1, 8, 8), 10, True)
>>> sorted(DEMO_DATASETS)
['breast_cancer', 'digits', 'intrusion']
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bastion.data.dataset import Dataset
from bastion.data.intrusion import load_intrusion_dataset
from bastion.data.loaders import stratified_split

__all__ = ["DEMO_DATASETS", "load_breast_cancer_dataset", "load_digits_dataset"]

_TEST_SIZE = 0.25


def load_digits_dataset(seed: int = 0) -> Dataset:
    """scikit-learn's bundled handwritten digits as 8x8 images in ``[0, 1]``.

    Parameters
    ----------
    seed : int
        Seed of the stratified 75/25 train/test split.

    Returns
    -------
    Dataset
        ``x`` float32 ``(n, 1, 8, 8)`` in ``[0, 1]``, labels ``0..9``, classes
        ``"0".."9"``; 1,346 training and 451 test rows.

    Examples
    --------
    >>> ds = load_digits_dataset(seed=1)
    >>> len(ds.x_train), len(ds.x_test), list(ds.classes)[:3]
    (1346, 451, ['0', '1', '2'])
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = stratified_split(y, test_size=_TEST_SIZE, seed=seed)
    return Dataset(
        name="digits",
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        classes=[str(i) for i in range(10)],
        description=(
            "UCI optical recognition of handwritten digits as bundled with scikit-learn: "
            "8x8 grey-scale images, intensities 0..16 divided by 16 to lie in [0, 1]."
        ),
        metadata={"source": "sklearn.datasets.load_digits", "seed": str(seed), "split": "75/25"},
    )


def load_breast_cancer_dataset(seed: int = 0) -> Dataset:
    """scikit-learn's bundled Wisconsin breast-cancer data, 30 raw features.

    Parameters
    ----------
    seed : int
        Seed of the stratified 75/25 train/test split.

    Returns
    -------
    Dataset
        ``x`` float32 ``(n, 30)`` in the measurements' own units (not scaled),
        labels 0 = ``"malignant"`` and 1 = ``"benign"``, ``feature_names`` from
        scikit-learn.

    Examples
    --------
    >>> ds = load_breast_cancer_dataset()
    >>> ds.row_shape, list(ds.classes), ds.feature_names[0]
    ((30,), ['malignant', 'benign'], 'mean radius')
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = stratified_split(y, test_size=_TEST_SIZE, seed=seed)
    return Dataset(
        name="breast_cancer",
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        classes=[str(c) for c in bunch.target_names],
        feature_names=[str(f) for f in bunch.feature_names],
        description=(
            "Wisconsin Diagnostic Breast Cancer as bundled with scikit-learn: 30 real-valued "
            "measurements of cell nuclei per tumour, in their own units."
        ),
        metadata={
            "source": "sklearn.datasets.load_breast_cancer",
            "seed": str(seed),
            "split": "75/25",
        },
    )


DEMO_DATASETS: dict[str, Callable[[int], Dataset]] = {
    "digits": load_digits_dataset,
    "breast_cancer": load_breast_cancer_dataset,
    "intrusion": load_intrusion_dataset,
}
"""Demo dataset loaders by name; each takes the split seed."""
