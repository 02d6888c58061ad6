"""Constrained tabular evasion: every returned row satisfies every constraint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from bastion.attacks.evasion.constrained_pgd import constrained_attack, constrained_pgd
from bastion.attacks.evasion.constraints import FeatureConstraints
from bastion.data.intrusion import intrusion_input_spec
from bastion.errors import DataError, MissingCapabilityError, UsageError
from bastion.targets import InputSpec
from bastion.targets.sklearn_target import SklearnTarget
from tests.attacks.blackbox_models import (
    intrusion,
    intrusion_target,
    label_only,
    one_thread,  # noqa: F401 - autouse fixture
)


def assert_every_constraint(spec: InputSpec, x: np.ndarray, x_adv: np.ndarray, eps: float) -> None:
    """Independent check of each constraint (not using FeatureConstraints.validate)."""
    names = spec.feature_names or []
    lo, hi = spec.bounds()
    assert np.isfinite(x_adv).all()
    assert (x_adv >= lo).all() and (x_adv <= hi).all(), "bounds"
    for name in spec.immutable:
        j = names.index(name)
        np.testing.assert_array_equal(x_adv[:, j], x[:, j], err_msg=f"immutable {name}")
    for name in spec.integer:
        j = names.index(name)
        np.testing.assert_array_equal(x_adv[:, j], np.round(x_adv[:, j]), err_msg=name)
    in_group = set()
    for group in spec.one_hot_groups:
        cols = [names.index(n) for n in group]
        in_group |= set(cols)
        block = x_adv[:, cols]
        assert np.isin(block, [0.0, 1.0]).all() and (block.sum(axis=1) == 1).all(), group
    span = hi - lo
    for j in range(len(names)):
        if j not in in_group and math.isfinite(eps):
            assert (np.abs(x_adv[:, j] - x[:, j]) <= eps * span[j] * (1 + 1e-5) + 1e-3).all()


def _attack_rows(n: int = 150) -> tuple[torch.Tensor, torch.Tensor]:
    data, _ = intrusion()
    attacks = data.y_test == 1
    return torch.from_numpy(data.x_test[attacks][:n]), torch.from_numpy(data.y_test[attacks][:n])


@pytest.mark.parametrize("eps", [0.003, 0.03, math.inf])
def test_constrained_pgd_evades_the_intrusion_detector_with_valid_rows(eps) -> None:
    target = intrusion_target()
    spec = target.input_spec
    fc = FeatureConstraints.from_spec(spec)
    x, y = _attack_rows()
    benign = torch.zeros_like(y)
    r = constrained_attack(target, x, y, fc, eps=eps, steps=30, y_target=benign)
    assert r.method == "constrained-pgd"
    assert r.validity.all_valid and r.fallback_rows == 0
    assert_every_constraint(spec, x.numpy(), r.x_adv.numpy(), eps)
    detected = r.clean_correct.numpy()
    assert detected.mean() > 0.85
    evaded = r.success.numpy() & detected
    assert evaded.sum() / detected.sum() > 0.6  # most detected attacks now pass as benign
    preds = target.predict(r.x_adv.numpy())
    assert (preds[evaded] == 0).all()
    changed = (r.x_adv != x).any(dim=1).numpy()
    assert changed[evaded].all()


def test_categories_switch_only_when_free() -> None:
    target = intrusion_target()
    x, y = _attack_rows(100)
    names = target.input_spec.feature_names or []
    state = [names.index(n) for n in names if n.startswith("state_")]
    for mode, may_change in (("fixed", False), ("free", True)):
        fc = FeatureConstraints.from_spec(target.input_spec, categorical=mode)
        r = constrained_pgd(  # a tiny budget leaves switching the end state as the way out
            target.forward, x, y, fc, eps=1e-4, steps=30, y_target=torch.zeros_like(y)
        )
        moved = (r.x_adv[:, state] != x[:, state]).any(dim=1)
        assert bool(moved.any()) is may_change
        assert r.validity.all_valid


def test_black_box_fallback_for_a_model_without_gradients() -> None:
    data, _ = intrusion()
    model = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression())
    model.fit(data.x_train, data.y_train)
    spec = intrusion_input_spec()
    target = SklearnTarget(model, input_spec=spec, classes=["benign", "attack"])
    fc = FeatureConstraints.from_spec(spec)
    x, y = _attack_rows(60)
    r = constrained_attack(
        target, x, y, fc, eps=0.03, n_queries=150, y_target=torch.zeros_like(y), seed=1
    )
    assert r.method == "constrained-square"
    assert r.validity.all_valid
    assert_every_constraint(spec, x.numpy(), r.x_adv.numpy(), 0.03)
    assert int(r.queries.sum()) == target.queries_used
    assert (r.queries <= 150).all()
    assert (r.success & r.clean_correct).sum() > 0
    with pytest.raises(MissingCapabilityError):
        constrained_attack(label_only(target), x, y, fc, eps=0.03)


def test_validate_counts_every_kind_of_violation() -> None:
    spec = intrusion_input_spec()
    fc = FeatureConstraints.from_spec(spec)
    x, _ = _attack_rows(5)
    bad = x.clone()
    names = spec.feature_names or []
    bad[0, names.index("dst_port")] += 1  # immutable changed
    bad[1, names.index("src_bytes")] += 0.5  # not an integer
    bad[2, names.index("state_reset")] = 1.0 - bad[2, names.index("state_reset")]  # two hot / none
    bad[3, names.index("duration")] = -1.0  # below the lower bound
    port = names.index("src_port")
    bad[4, port] += 1000 if x[4, port] < 60_000 else -1000  # more than 1% of 65,535
    report = fc.validate(bad, x, eps=0.01)
    assert report.violations == {
        "immutable": 1,
        "bounds": 1,
        "integer": 1,
        "one_hot": 1,
        "budget": 1,
    }
    assert not report.valid.any()
    assert fc.validate(bad[4:], x[4:]).all_valid  # without a budget the last row is fine
    assert fc.validate(fc.repair(bad, x, 0.01), x, eps=0.01).all_valid


def test_constraints_refuse_what_they_cannot_handle() -> None:
    with pytest.raises(DataError, match="flat tabular rows"):
        FeatureConstraints.from_spec(InputSpec(shape=(1, 4, 4)))
    with pytest.raises(DataError, match="no finite bounds"):
        FeatureConstraints.from_spec(InputSpec(shape=(3,)))
    with pytest.raises(UsageError, match="'categorical'"):
        FeatureConstraints.from_spec(intrusion_input_spec(), categorical="maybe")  # type: ignore[arg-type]
    fc = FeatureConstraints.from_spec(intrusion_input_spec())
    x, y = _attack_rows(2)
    with pytest.raises(UsageError, match="'eps'"):
        constrained_attack(intrusion_target(), x, y, fc, eps=0.0)
