"""The synthetic intrusion dataset and its detector."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from bastion.data.intrusion import INTRUSION_FEATURES, intrusion_input_spec, load_intrusion_dataset


def test_dataset_is_deterministic_valid_and_balanced() -> None:
    a, b = load_intrusion_dataset(seed=3), load_intrusion_dataset(seed=3)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, load_intrusion_dataset(seed=4).x_test)
    spec = intrusion_input_spec()
    x = np.concatenate([a.x_train, a.x_test])
    y = np.concatenate([a.y_train, a.y_test])
    spec.check(x)
    assert x.dtype == np.float32 and list(a.feature_names or []) == INTRUSION_FEATURES
    ints = spec.integer_mask()
    np.testing.assert_array_equal(x[:, ints], np.round(x[:, ints]))
    for group in spec.one_hot_indices():
        assert np.isin(x[:, group], [0, 1]).all() and (x[:, group].sum(axis=1) == 1).all()
    assert 0.35 < y.mean() < 0.45
    assert len(np.unique(x[:, INTRUSION_FEATURES.index("dst_port")])) > 50  # scans spread


def test_classes_overlap_so_the_task_is_not_trivial() -> None:
    data = load_intrusion_dataset()
    stump = DecisionTreeClassifier(max_depth=1).fit(data.x_train, data.y_train)
    assert stump.score(data.x_test, data.y_test) < 0.85  # no single threshold separates them
    logistic = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression())
    logistic.fit(data.x_train, data.y_train)
    assert logistic.score(data.x_test, data.y_test) < 0.95
    deep = DecisionTreeClassifier(max_depth=8, random_state=0).fit(data.x_train, data.y_train)
    assert 0.85 < deep.score(data.x_test, data.y_test) < 0.99  # learnable, noise keeps it < 1


def test_spec_declares_what_an_attacker_controls() -> None:
    spec = intrusion_input_spec()
    assert set(spec.immutable) == {"dst_port", "proto_tcp", "proto_udp", "proto_icmp"}
    assert {"src_packets", "src_port", "dst_port", "syn_count"} <= set(spec.integer)
    assert ["proto_tcp", "proto_udp", "proto_icmp"] in spec.one_hot_groups
    lo, hi = spec.bounds()
    assert np.isfinite(hi).all() and (lo == 0).all()
