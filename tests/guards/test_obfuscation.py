"""output.obfuscation: each mode, per-principal policies, argmax guarantees, measured cost."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bastion.errors import UsageError
from bastion.guards import Guarded, ObfuscationGuard, ObfuscationPolicy, measure_obfuscation_cost
from bastion.guards.obfuscation import reverse_sigmoid
from bastion.targets import FakeTarget

P = np.array([[0.61, 0.27, 0.12], [0.05, 0.15, 0.80]])


def test_modes() -> None:
    assert ObfuscationPolicy(label_only=True).apply(P).tolist() == [0, 2]
    assert ObfuscationPolicy(top_k=2).apply(P).tolist() == [[0.61, 0.27, 0.0], [0.0, 0.15, 0.80]]
    assert ObfuscationPolicy(decimals=1).apply(P).tolist() == [[0.6, 0.3, 0.1], [0.0, 0.2, 0.8]]
    rs = ObfuscationPolicy(reverse_sigmoid=(0.8, 1.0)).apply(P)
    assert np.allclose(rs.sum(axis=1), 1.0) and not np.allclose(rs, P)
    assert rs.argmax(axis=1).tolist() == [0, 2]
    assert ObfuscationPolicy().apply(P).tolist() == P.tolist()
    assert ObfuscationPolicy(top_k=1).apply(np.array([1, 2])).tolist() == [1, 2]  # labels pass


probabilities = hnp.arrays(
    np.float64, st.tuples(st.integers(1, 8), st.integers(2, 6)), elements=st.floats(0.001, 1.0)
).map(lambda a: a / a.sum(axis=1, keepdims=True))


@settings(max_examples=200, deadline=None)
@given(probabilities, st.floats(0.05, 1.0), st.floats(1.0, 5.0))
def test_reverse_sigmoid_keeps_argmax_when_monotone(
    p: np.ndarray, beta: float, gamma: float
) -> None:
    beta = min(beta, 0.99 / gamma)  # the monotone regime: gamma >= 1, beta * gamma < 1
    policy = ObfuscationPolicy(reverse_sigmoid=(beta, gamma))
    assert policy.keeps_argmax
    out = policy.apply(p)
    ranked = np.sort(p, axis=1)
    clear_top = ranked[:, -1] - ranked[:, -2] > 1e-9  # exact ties have no arg-max to keep
    assert (out.argmax(axis=1) == p.argmax(axis=1))[clear_top].all()


def test_reverse_sigmoid_outside_the_guarantee_can_flip_argmax() -> None:
    p = np.array([[0.52, 0.48]])
    flipped = reverse_sigmoid(p, beta=3.0, gamma=1.0)
    assert flipped.argmax() == 1
    assert not ObfuscationPolicy(reverse_sigmoid=(3.0, 1.0)).keeps_argmax
    assert not ObfuscationPolicy(reverse_sigmoid=(1.0, 1.0)).keeps_argmax  # constant output


def test_measured_cost_on_a_model() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 4)) * 2
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.where(rng.random(500) < 0.8, scores.argmax(axis=1), rng.integers(0, 4, 500))
    for policy in [
        ObfuscationPolicy(label_only=True),
        ObfuscationPolicy(top_k=1),
        ObfuscationPolicy(reverse_sigmoid=(0.5, 1.0)),
    ]:
        cost = measure_obfuscation_cost(policy, scores, labels)
        assert cost.guaranteed and cost.argmax_kept == 1.0
        assert cost.accuracy_after == cost.accuracy_before
    rounded = measure_obfuscation_cost(ObfuscationPolicy(decimals=0), scores, labels)
    assert not rounded.guaranteed and rounded.argmax_kept < 1.0  # ties at 0 change the argmax
    assert (
        rounded.argmax_kept_interval.low <= rounded.argmax_kept <= rounded.argmax_kept_interval.high
    )
    assert rounded.mean_l1_change is not None and rounded.mean_l1_change > 0
    with pytest.raises(UsageError):
        measure_obfuscation_cost(ObfuscationPolicy(), scores[:, 0])
    with pytest.raises(UsageError):
        measure_obfuscation_cost(ObfuscationPolicy(), scores, labels[:3])


def test_per_principal_policies_in_pipeline() -> None:
    target = FakeTarget.linear(n_features=2, n_classes=3, seed=1)
    guard = ObfuscationGuard(
        ObfuscationPolicy(label_only=True), {"partner": ObfuscationPolicy(top_k=1, decimals=2)}
    )
    guarded = Guarded(target, [guard])
    x = [[0.2, 0.9]]
    assert guarded.handle_inputs(x, principal="anyone").outputs.shape == (1,)
    partner = guarded.handle_inputs(x, principal="partner").outputs
    assert partner.shape == (1, 3) and (partner > 0).sum() == 1
    with pytest.raises(UsageError):
        ObfuscationPolicy(top_k=0)
    with pytest.raises(UsageError):
        ObfuscationPolicy(reverse_sigmoid=(0.0, 1.0))
    with pytest.raises(UsageError):
        ObfuscationGuard(per_principal={"x": "label"})  # type: ignore[dict-item]


def _top_k_and_round_with_numpy(s: np.ndarray, top_k: int | None, decimals: int | None) -> Any:
    """Top-k then rounding on a whole array, with NumPy's sort and round."""
    s = np.asarray(s, dtype=np.float64)
    if top_k is not None and top_k < s.shape[1]:
        keep = np.argsort(-s, axis=1, kind="stable")[:, :top_k]
        mask = np.zeros_like(s, dtype=bool)
        np.put_along_axis(mask, keep, True, axis=1)
        s = np.where(mask, s, 0.0)
    return s if decimals is None else np.round(s, decimals)


def _awkward_scores(rng: np.random.Generator, i: int) -> np.ndarray:
    n, c = int(rng.integers(0, 20)), int(rng.integers(1, 12))
    kind = i % 5
    if kind == 0:
        return rng.dirichlet(np.ones(c), size=n)
    if kind == 1:  # ties
        return np.round(rng.dirichlet(np.ones(c), size=n), int(rng.integers(0, 3)))
    if kind == 2:  # signs and magnitudes
        return rng.normal(size=(n, c)) * 10 ** rng.uniform(-8, 8)
    if kind == 3:  # exactly half-way at 3 decimals
        return (rng.integers(-2000, 2000, size=(n, c)) + 0.5) / 1000
    special = [0.0, -0.0, 5e-4, -5e-4, 1.5e-3, 2.5e-3, 1e300, -1e300, np.inf, np.nan]
    return rng.choice(special, size=(n, c))


def test_few_row_path_matches_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(3000):
            s = _awkward_scores(rng, i)
            if i % 3 == 0:
                s = s.astype(np.float32)
            top_k = int(rng.integers(1, 12)) if rng.random() < 0.8 else None
            decimals = int(rng.integers(0, 16)) if rng.random() < 0.8 else None
            out = ObfuscationPolicy(top_k=top_k, decimals=decimals).apply(s)
            expected = _top_k_and_round_with_numpy(s, top_k, decimals)
            assert out.dtype == np.float64 and out.shape == expected.shape
            assert out.tobytes() == expected.tobytes(), (s, top_k, decimals)


def test_many_rows_and_other_modes_keep_their_dtype_and_shape() -> None:
    rng = np.random.default_rng(1)
    s = rng.dirichlet(np.ones(10), size=40).astype(np.float32)  # past the few-row path
    policy = ObfuscationPolicy(top_k=3, decimals=3)
    assert policy.apply(s).tobytes() == _top_k_and_round_with_numpy(s, 3, 3).tobytes()
    assert ObfuscationPolicy().apply(s).dtype == np.float64
    assert ObfuscationPolicy(label_only=True).apply(s).dtype == np.int64
    labels = ObfuscationPolicy(top_k=1).apply(np.array([1, 2], dtype=np.int32))
    assert labels.dtype == np.float64 and labels.tolist() == [1.0, 2.0]
    both = ObfuscationPolicy(reverse_sigmoid=(0.5, 1.0), top_k=2, decimals=2).apply(s[:2])
    expected = _top_k_and_round_with_numpy(reverse_sigmoid(s[:2], 0.5, 1.0), 2, 2)
    assert both.tobytes() == expected.tobytes()
