"""Tests for the bundled demo datasets."""

from __future__ import annotations

import numpy as np

from bastion.data.demo import DEMO_DATASETS, load_breast_cancer_dataset, load_digits_dataset


def test_digits_shape_scale_classes_and_split() -> None:
    ds = load_digits_dataset()
    assert ds.name == "digits"
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.row_shape == (1, 8, 8)
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert len(ds.x_test) == 451
    lo = min(ds.x_train.min(), ds.x_test.min())
    hi = max(ds.x_train.max(), ds.x_test.max())
    assert lo == 0.0 and hi == 1.0
    # Raw intensities are integers 0..16, so every value is a multiple of 1/16.
    assert np.allclose(ds.x_test * 16, np.round(ds.x_test * 16))
    assert list(ds.classes) == [str(i) for i in range(10)]
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert test_counts.min() >= 43 and test_counts.max() <= 46


def test_digits_split_depends_only_on_seed() -> None:
    a, b, c = load_digits_dataset(0), load_digits_dataset(0), load_digits_dataset(1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_breast_cancer_raw_features_and_names() -> None:
    ds = load_breast_cancer_dataset(seed=0)
    assert ds.name == "breast_cancer"
    assert ds.row_shape == (30,)
    assert ds.x_test.dtype == np.float32
    assert list(ds.classes) == ["malignant", "benign"]
    assert ds.feature_names is not None and len(ds.feature_names) == 30
    assert ds.feature_names[0] == "mean radius"
    assert len(ds.x_train) + len(ds.x_test) == 569
    # Raw (unscaled) measurements: mean area is in the hundreds.
    area = list(ds.feature_names).index("mean area")
    assert ds.x_train[:, area].max() > 1000
    # Stratified: both parts keep the 212/357 class balance to within a row.
    share = np.bincount(ds.y_test)[0] / len(ds.y_test)
    assert abs(share - 212 / 569) < 0.01


def test_registry_of_demo_datasets() -> None:
    assert set(DEMO_DATASETS) == {"digits", "breast_cancer", "intrusion"}
    ds = DEMO_DATASETS["breast_cancer"](3)
    assert ds.n_classes == 2
    assert DEMO_DATASETS["digits"](0).n_classes == 10
