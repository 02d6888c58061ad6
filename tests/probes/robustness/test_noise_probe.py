"""Tests for the robustness.noise probe and its noise model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.data import Dataset
from bastion.errors import DataError, UsageError
from bastion.findings import Finding, Severity, Status
from bastion.probes import ProbeContext
from bastion.probes.robustness.noise import NoiseModel, NoiseRobustnessProbe
from bastion.targets import FakeTarget, InputSpec

# -- the noise model -----------------------------------------------------------------------


def _tabular_spec() -> InputSpec:
    return InputSpec(
        shape=(6,),
        lower=[0.0, 0.0, 0.0, 0.0, 0.0, -1.0],
        upper=[10.0, 1.0, 1.0, 1.0, 100.0, 1.0],
        feature_names=["age", "port", "hot_a", "hot_b", "count", "score"],
        immutable=["port"],
        integer=["count"],
        one_hot_groups=[["hot_a", "hot_b"]],
    )


def _tabular_rows(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hot = rng.integers(0, 2, n)
    return np.column_stack(
        [
            rng.uniform(2, 8, n),
            rng.integers(0, 2, n),
            hot,
            1 - hot,
            rng.integers(10, 90, n),
            rng.uniform(-0.5, 0.5, n),
        ]
    ).astype(np.float32)


@pytest.mark.parametrize("kind", ["gaussian", "uniform", "salt_pepper"])
def test_noise_respects_the_input_spec(kind: Any) -> None:
    spec = _tabular_spec()
    x = _tabular_rows()
    model = NoiseModel.build(spec, x)
    noisy = model.apply(x, kind, 0.3, np.random.default_rng(1))
    assert noisy.shape == x.shape and noisy.dtype == x.dtype
    lo, hi = spec.bounds()
    assert (noisy >= lo).all() and (noisy <= hi).all()
    np.testing.assert_array_equal(noisy[:, 1], x[:, 1])  # immutable
    np.testing.assert_array_equal(noisy[:, 2:4], x[:, 2:4])  # one-hot group
    np.testing.assert_array_equal(noisy[:, 4], np.round(noisy[:, 4]))  # integer
    assert not np.array_equal(noisy[:, 0], x[:, 0])  # mutable features do change
    assert not np.array_equal(noisy[:, 4], x[:, 4])


def test_gaussian_sigma_is_a_fraction_of_each_features_range() -> None:
    spec = InputSpec(shape=(2,), lower=[0.0, 0.0], upper=[1.0, 100.0])
    x = np.full((20000, 2), [0.5, 50.0], dtype=np.float64)
    noisy = NoiseModel.build(spec, x).apply(x, "gaussian", 0.05, np.random.default_rng(0))
    delta = noisy - x
    assert delta[:, 0].std() == pytest.approx(0.05, rel=0.03)
    assert delta[:, 1].std() == pytest.approx(5.0, rel=0.03)
    assert abs(delta.mean(axis=0)).max() < 0.1


def test_uniform_noise_stays_within_its_amplitude() -> None:
    spec = InputSpec(shape=(1,), lower=-10.0, upper=10.0)
    x = np.zeros((5000, 1))
    noisy = NoiseModel.build(spec, x).apply(x, "uniform", 0.1, np.random.default_rng(0))
    assert np.abs(noisy).max() <= 2.0 + 1e-9  # 0.1 x range 20
    assert np.abs(noisy).max() > 1.9


def test_salt_and_pepper_replaces_the_given_share_with_range_ends() -> None:
    spec = InputSpec(shape=(50,), lower=0.0, upper=1.0)
    x = np.full((400, 50), 0.5)
    noisy = NoiseModel.build(spec, x).apply(x, "salt_pepper", 0.2, np.random.default_rng(0))
    changed = noisy != 0.5
    assert changed.mean() == pytest.approx(0.2, abs=0.01)
    assert set(np.unique(noisy[changed]).tolist()) == {0.0, 1.0}
    assert (noisy[changed] == 1.0).mean() == pytest.approx(0.5, abs=0.03)


def test_unbounded_features_use_the_data_range_and_are_not_clipped() -> None:
    spec = InputSpec(shape=(2,))  # no bounds at all
    ref = np.array([[0.0, 100.0], [10.0, 300.0]])
    model = NoiseModel.build(spec, ref)
    np.testing.assert_allclose(model.scale, [10.0, 200.0])
    x = np.array([[5.0, 200.0]] * 5000)
    noisy = model.apply(x, "gaussian", 0.5, np.random.default_rng(0))
    assert noisy[:, 0].min() < 0.0  # not clipped: no declared bound
    assert (noisy[:, 1] - 200).std() == pytest.approx(100.0, rel=0.05)


def test_half_bounded_feature_scales_by_data_but_clips_at_declared_bound() -> None:
    spec = InputSpec(shape=(1,), lower=0.0)
    ref = np.array([[0.0], [4.0]])
    model = NoiseModel.build(spec, ref)
    assert model.scale.tolist() == [4.0]
    noisy = model.apply(np.zeros((1000, 1)), "gaussian", 0.5, np.random.default_rng(0))
    assert noisy.min() == 0.0 and noisy.max() > 1.0


def test_image_shaped_input_is_preserved() -> None:
    spec = InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0)
    x = np.random.default_rng(0).random((10, 1, 8, 8)).astype(np.float32)
    noisy = NoiseModel.build(spec, x).apply(x, "gaussian", 0.1, np.random.default_rng(0))
    assert noisy.shape == (10, 1, 8, 8) and noisy.dtype == np.float32


def test_data_that_does_not_match_the_spec_is_a_data_error() -> None:
    with pytest.raises(DataError, match="features"):
        NoiseModel.build(InputSpec(shape=(3,)), np.zeros((4, 5)))


# -- the probe -----------------------------------------------------------------------------


def _threshold_data(margin: float, n: int = 600, seed: int = 0) -> Dataset:
    """Label = x0 > 0.5; every x0 lies at least ``margin`` from the boundary."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4)).astype(np.float32)
    side = rng.integers(0, 2, n)
    x[:, 0] = np.where(side == 1, 0.5 + margin, 0.5 - margin) + rng.uniform(0, 0.01, n) * (
        2 * side - 1
    )
    y = side.astype(np.int64)
    return Dataset("threshold", x[: n // 2], y[: n // 2], x[n // 2 :], y[n // 2 :], ["lo", "hi"])


def _threshold_target(*, labels_only: bool = False, budget: int | None = None) -> FakeTarget:
    def scores(x: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-200 * (x[:, 0].astype(np.float64) - 0.5)))
        return np.column_stack([1 - p, p])

    return FakeTarget(
        scores,
        input_spec=InputSpec(shape=(4,), lower=0.0, upper=1.0),
        classes=["lo", "hi"],
        labels_only=labels_only,
        name="threshold",
        query_budget=budget,
    )


def _by_kind(findings: list[Finding]) -> dict[str, Finding]:
    return {f.variant: f for f in findings}


def test_fragile_model_is_vulnerable_with_curve_and_intervals() -> None:
    probe = NoiseRobustnessProbe(n_samples=300, kinds=["gaussian", "uniform"])
    found = _by_kind(probe.run(_threshold_target(), _threshold_data(0.01), ProbeContext(seed=0)))
    assert set(found) == {"gaussian", "uniform"}
    g = found["gaussian"]
    assert g.status is Status.VULNERABLE
    assert g.severity is Severity.MODERATE
    assert g.severity_rationale and "Degradation" in g.severity_rationale[0]
    assert g.metric("clean_accuracy").value == 1.0  # type: ignore[union-attr]
    acc = g.metric("accuracy@0.05")
    assert acc is not None and acc.interval is not None and acc.n == 300
    assert acc.interval.low <= float(acc.value) <= acc.interval.high  # type: ignore[arg-type]
    assert float(acc.value) < 0.9  # type: ignore[arg-type]
    [series] = g.series
    assert series.x == [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]
    assert series.y[0] == 1.0 and series.y[-1] < 0.8
    assert series.y_low is not None and series.y_high is not None
    assert all(
        lo <= y <= hi for lo, y, hi in zip(series.y_low, series.y, series.y_high, strict=True)
    )
    assert g.catalog.failure_modes == ["FM16", "FM14"]
    assert g.remedies == ["AML.M0003"]
    assert g.title.endswith("(Gaussian)")
    assert g.metric("breaking_level").value == 0.02  # type: ignore[union-attr]


def test_robust_model_is_not_vulnerable() -> None:
    probe = NoiseRobustnessProbe(n_samples=300)
    findings = probe.run(_threshold_target(), _threshold_data(0.4), ProbeContext(seed=0))
    assert len(findings) == 3
    for f in findings:
        assert f.status is Status.NOT_VULNERABLE, f.summary
        assert f.severity is Severity.NONE and f.remedies == []
        drop = f.metric("max_drop_within_tolerance")
        assert drop is not None and float(drop.value) <= 0.1  # type: ignore[arg-type]


def test_label_only_target_works_and_query_count_is_exact() -> None:
    target = _threshold_target(labels_only=True)
    probe = NoiseRobustnessProbe(
        n_samples=100, kinds=["salt_pepper"], levels=[0.05, 0.1], repeats=3
    )
    [f] = probe.run(target, _threshold_data(0.2), ProbeContext())
    assert f.variant == "salt_pepper"
    assert target.queries_used == 100 * (1 + 2 * 3)
    assert "averaged over 3 noise draws" in f.metric("accuracy@0.1").definition  # type: ignore[union-attr]


def test_security_decision_raises_severity() -> None:
    data = _threshold_data(0.01)
    kw: dict[str, Any] = {"n_samples": 200, "kinds": ["gaussian"]}
    [plain] = NoiseRobustnessProbe(**kw).run(_threshold_target(), data, ProbeContext(seed=0))
    [secure] = NoiseRobustnessProbe(**kw).run(
        _threshold_target(), data, ProbeContext(seed=0, security_decision=True)
    )
    assert plain.status is Status.VULNERABLE and secure.status is Status.VULNERABLE
    assert plain.severity is Severity.MODERATE
    assert secure.severity is Severity.IMPORTANT
    assert "security decision" in secure.severity_rationale[0]


def test_same_seed_same_result_different_seed_different_noise() -> None:
    data = _threshold_data(0.03)
    kw: dict[str, Any] = {"n_samples": 200, "kinds": ["gaussian"]}
    [a] = NoiseRobustnessProbe(**kw).run(_threshold_target(), data, ProbeContext(seed=5))
    [b] = NoiseRobustnessProbe(**kw).run(_threshold_target(), data, ProbeContext(seed=5))
    [c] = NoiseRobustnessProbe(**kw).run(_threshold_target(), data, ProbeContext(seed=6))
    assert a.metrics == b.metrics and a.series == b.series
    assert a.series[0].y != c.series[0].y
    assert a.reproduction.seed == 5
    assert a.reproduction.parameters["levels"] == [0.02, 0.05, 0.1, 0.2, 0.3]


def test_near_chance_model_is_inconclusive() -> None:
    data = _threshold_data(0.3)
    flipped = Dataset(
        "flipped", data.x_train, data.y_train, data.x_test, 1 - data.y_test, ["lo", "hi"]
    )
    findings = NoiseRobustnessProbe(n_samples=100).run(_threshold_target(), flipped, ProbeContext())
    assert all(f.status is Status.INCONCLUSIVE for f in findings)
    assert "close to chance" in findings[0].summary


def test_nothing_mutable_is_inconclusive_without_queries() -> None:
    spec = InputSpec(
        shape=(2,), lower=0.0, upper=1.0, feature_names=["a", "b"], immutable=["a", "b"]
    )
    target = FakeTarget(
        lambda x: np.column_stack([x[:, 0], 1 - x[:, 0]]), input_spec=spec, classes=["p", "q"]
    )
    data = Dataset(
        "d",
        np.zeros((0, 2)),
        np.zeros(0, dtype=np.int64),
        np.full((20, 2), 0.2),
        np.arange(20) % 2,
        ["p", "q"],
    )
    findings = NoiseRobustnessProbe(n_samples=20).run(target, data, ProbeContext())
    assert [f.status for f in findings] == [Status.INCONCLUSIVE] * 3
    assert target.queries_used == 0


def test_progress_counts_every_sweep() -> None:
    from bastion.probes import NullProgress

    bars: list[NullProgress] = []

    def factory(*, total: float | None, description: str) -> NullProgress:
        bars.append(NullProgress(total=total, description=description))
        return bars[-1]

    ctx = ProbeContext(progress=factory)
    NoiseRobustnessProbe(n_samples=50, levels=[0.05, 0.1], repeats=2).run(
        _threshold_target(), _threshold_data(0.2), ctx
    )
    [bar] = bars
    assert bar.total == 1 + 3 * 2 * 2 and bar.completed == bar.total


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kinds": []}, "kinds"),
        ({"kinds": ["gaussian", "gaussian"]}, "repeat a noise kind"),
        ({"kinds": ["blur"]}, "kinds"),
        ({"levels": [0.0]}, "levels"),
        ({"levels": [1.5]}, "levels"),
        ({"levels": [0.1, 0.1]}, "repeat a level"),
        ({"levels": [0.2, 0.3], "tolerance_level": 0.1}, "at or below 'tolerance_level'"),
        ({"n_samples": 5}, "n_samples"),
        ({"repeats": 0}, "repeats"),
        ({"max_drop": 0}, "max_drop"),
        ({"sigma": 0.1}, "no parameter 'sigma'"),
    ],
)
def test_bad_parameters(params: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        NoiseRobustnessProbe(**params).validated_params()


def test_levels_are_sorted() -> None:
    p = NoiseRobustnessProbe(levels=[0.3, 0.01, 0.1]).validated_params()
    assert p.levels == [0.01, 0.1, 0.3]
