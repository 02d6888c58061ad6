"""bastion.certification.target: the smoothed classifier as a Target."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.certification import ABSTAIN_CLASS, SmoothedTarget
from bastion.errors import TargetError, UsageError
from bastion.targets import Capability, FakeTarget, InputSpec
from bastion.testing import check_target_adapter
from tests.certification.linear import at_distance, fake_linear, torch_linear


def test_keeps_the_target_adapter_contract() -> None:
    assert check_target_adapter(SmoothedTarget) == []


def test_predicts_the_smoothed_class_and_reports_abstentions_as_an_extra_class() -> None:
    base = torch_linear()
    g = SmoothedTarget(base, sigma=0.5, n=500, alpha=0.001, seed=0)
    assert g.classes == ("neg", "pos", ABSTAIN_CLASS) and g.abstain_index == 2
    assert g.capabilities == frozenset({Capability.LABELS, Capability.PROBABILITIES})
    x = np.concatenate([at_distance(np.array([-1.5, 1.5])), at_distance(np.zeros(3), seed=1)])
    assert g.predict(x).tolist() == [0, 1, 2, 2, 2]
    proba = g.predict_proba(x)
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert proba[0, 0] > 0.99 and proba[0, 2] == 0.0
    assert np.array_equal(proba[2:], np.tile([0.0, 0.0, 1.0], (3, 1)))
    # Queries: two calls of 5 rows to g, each costing n = 500 base queries per row.
    assert g.queries_used == 10 and base.queries_used == 10 * 500


def test_works_on_a_label_only_base_and_is_reproducible() -> None:
    x = at_distance(np.array([-1.0, 0.05, 1.0]))
    a = SmoothedTarget(fake_linear(labels_only=True), sigma=0.5, n=100, seed=3)
    b = SmoothedTarget(fake_linear(labels_only=True), sigma=0.5, n=100, seed=3)
    assert a.predict(x).tolist() == b.predict(x).tolist()
    assert a.predict(x)[[0, 2]].tolist() == [0, 1]


def test_keeps_the_base_name_and_spec_and_describes_itself() -> None:
    base = torch_linear()
    g = SmoothedTarget(base, sigma=0.25, n=10, units="range", seed=2)
    assert g.name == base.name and g.input_spec == base.input_spec and g.kind == "smoothed"
    info = g.describe()
    assert info["sigma"] == 0.25 and info["units"] == "range" and info["base_kind"] == "torch"
    assert SmoothedTarget(base, sigma=0.25, name="other").name == "other"
    g.verify()


def test_own_query_budget_counts_smoothed_queries() -> None:
    g = SmoothedTarget(torch_linear(), sigma=0.5, n=10, query_budget=3)
    g.predict(at_distance(np.array([1.0, 2.0])))
    with pytest.raises(TargetError, match="query budget"):
        g.predict(at_distance(np.array([1.0, 2.0])))


def test_bad_arguments() -> None:
    with pytest.raises(UsageError, match="'sigma'"):
        SmoothedTarget(torch_linear(), sigma=-1.0)
    with pytest.raises(UsageError, match="'alpha'"):
        SmoothedTarget(torch_linear(), sigma=1.0, alpha=1.5)
    with pytest.raises(UsageError, match="'n' parameter"):
        SmoothedTarget(torch_linear(), sigma=1.0, n=0)
    with pytest.raises(UsageError, match="wraps a bastion Target"):
        SmoothedTarget(object(), sigma=1.0)  # type: ignore[arg-type]
    clash = FakeTarget(
        lambda x: np.ones((len(x), 2)) / 2,
        input_spec=InputSpec(shape=(2,)),
        classes=["a", ABSTAIN_CLASS],
    )
    with pytest.raises(TargetError, match="reserves"):
        SmoothedTarget(clash, sigma=1.0)
