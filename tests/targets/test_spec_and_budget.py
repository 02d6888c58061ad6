import numpy as np
import pytest
from pydantic import ValidationError

from bastion.errors import DataError, MissingCapabilityError, QueryBudgetExceeded, TargetError
from bastion.targets import Capability, FakeTarget, InputSpec, QueryBudget


def tab_spec():
    return InputSpec(
        shape=(5,),
        lower=[0, 0, 0, 0, 0],
        upper=[1, 1, 100, 1, 1],
        feature_names=["port", "bytes", "packets", "tcp", "udp"],
        immutable=["port"],
        integer=["packets"],
        one_hot_groups=[["tcp", "udp"]],
    )


def test_masks_follow_the_feature_names():
    spec = tab_spec()
    assert spec.mutable_mask().tolist() == [False, True, True, True, True]
    assert spec.integer_mask().tolist() == [False, False, True, False, False]
    assert spec.one_hot_indices() == [[3, 4]]
    lo, hi = spec.bounds()
    assert hi[2] == 100 and lo.shape == (5,)


def test_spec_rejects_unknown_features_and_wrong_bound_lengths():
    with pytest.raises(ValidationError, match="immutable names unknown"):
        InputSpec(shape=(2,), feature_names=["a", "b"], immutable=["c"])
    with pytest.raises(ValidationError, match="lower has 3 values"):
        InputSpec(shape=(2,), lower=[0, 0, 0])
    with pytest.raises(ValidationError, match="feature_names has 1"):
        InputSpec(shape=(2,), feature_names=["a"])


def test_check_names_the_problem():
    spec = InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0)
    with pytest.raises(DataError, match=r"rows of shape \(64,\).*expects \(1, 8, 8\)"):
        spec.check(np.zeros((2, 64)))
    bad = np.zeros((3, 1, 8, 8))
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="1 row"):
        spec.check(bad)
    with pytest.raises(DataError, match="outside the model's declared bounds"):
        spec.check(np.full((1, 1, 8, 8), 2.0))
    clipped = spec.clip(np.full((1, 1, 8, 8), 2.0, dtype=np.float32))
    assert clipped.max() == 1.0 and clipped.dtype == np.float32


def test_budget_refuses_before_the_model_sees_rows():
    calls = []

    def score(x):
        calls.append(len(x))
        return np.tile([0.5, 0.5], (len(x), 1))

    t = FakeTarget(score, input_spec=InputSpec(shape=(2,)), classes=["a", "b"], query_budget=5)
    t.predict(np.zeros((3, 2)))
    with pytest.raises(QueryBudgetExceeded, match="budget of 5"):
        t.predict_proba(np.zeros((3, 2)))
    assert calls == [3] and t.queries_used == 3
    assert QueryBudget(None).remaining is None


def test_missing_capability_names_the_adapter_that_has_it():
    t = FakeTarget.linear(n_features=3, n_classes=2, labels_only=True)
    assert t.capabilities == frozenset({Capability.LABELS})
    with pytest.raises(MissingCapabilityError, match="needs probabilities.*torch, sklearn"):
        t.predict_proba(np.zeros((1, 3)))
    with pytest.raises(MissingCapabilityError, match="Gradients come"):
        t.require(Capability.GRADIENTS, who="evasion.pgd")
    assert t.predict(np.zeros((4, 3))).shape == (4,)


def test_malformed_model_output_is_a_target_error():
    nan_model = FakeTarget(
        lambda x: np.full((len(x), 2), np.nan), input_spec=InputSpec(shape=(1,)), classes="ab"
    )
    with pytest.raises(TargetError, match="NaN"):
        nan_model.predict(np.zeros((1, 1)))
    wrong = FakeTarget(
        lambda x: np.zeros((len(x), 3)), input_spec=InputSpec(shape=(1,)), classes="ab"
    )
    with pytest.raises(TargetError, match=r"shape \(1, 3\)"):
        wrong.predict_proba(np.zeros((1, 1)))
    with pytest.raises(TargetError, match="two or more"):
        FakeTarget(lambda x: x, input_spec=InputSpec(shape=(1,)), classes=["only"])


def test_linear_fake_rounding_and_top_k():
    t = FakeTarget.linear(n_features=4, n_classes=5, seed=3, decimals=2, top_k=2)
    p = t.predict_proba(np.random.default_rng(0).uniform(size=(20, 4)))
    assert ((p > 0).sum(axis=1) <= 2).all()
    assert np.allclose(p, p.round(2))
