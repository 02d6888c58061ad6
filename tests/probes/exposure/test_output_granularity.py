"""Tests for the exposure.output_granularity probe."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import pytest

from bastion.data import Dataset
from bastion.errors import UsageError
from bastion.findings import Severity, Status
from bastion.probes import NullProgress, ProbeContext
from bastion.probes.exposure.output_granularity import (
    OutputGranularityProbe,
    analyse_scores,
    exposure_extent,
)
from bastion.targets import FakeTarget, InputSpec

N_FEATURES = 6
N_CLASSES = 5


def _data(n: int = 300, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, N_FEATURES)).astype(np.float32)
    y = np.arange(n) % N_CLASSES
    return Dataset(
        name="toy",
        x_train=x[: n // 2],
        y_train=y[: n // 2],
        x_test=x[n // 2 :],
        y_test=y[n // 2 :],
        classes=[f"c{i}" for i in range(N_CLASSES)],
    )


def _linear(**kw: object) -> FakeTarget:
    return FakeTarget.linear(n_features=N_FEATURES, n_classes=N_CLASSES, seed=3, **kw)  # type: ignore[arg-type]


def _custom(fn: Callable[[np.ndarray], np.ndarray]) -> FakeTarget:
    spec = InputSpec(shape=(N_FEATURES,), lower=0.0, upper=1.0)
    return FakeTarget(fn, input_spec=spec, classes=[f"c{i}" for i in range(N_CLASSES)])


def _run(target: FakeTarget, **params: object) -> tuple[Status, dict[str, object], Severity]:
    [f] = OutputGranularityProbe(**params).run(target, _data(), ProbeContext(seed=1))
    return f.status, {m.name: m.value for m in f.metrics}, f.severity


# -- analyse_scores ------------------------------------------------------------------------


def test_full_float32_softmax_is_many_decimals_all_classes() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 4))
    p = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype(np.float32)
    e = analyse_scores(p.astype(np.float64))
    assert e.kind == "probabilities"
    assert e.scores_per_row_max == 4 and e.scores_per_row_mean == 4.0
    assert e.effective_decimals >= 6
    assert e.sums_to_one_share == 1.0
    assert not e.label_equivalent
    assert e.distinct_values > 150


@pytest.mark.parametrize("decimals", [1, 2, 3, 4])
def test_rounded_scores_report_their_decimals_even_through_float32(decimals: int) -> None:
    rng = np.random.default_rng(decimals)
    z = rng.normal(size=(200, 3)) * 2
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    rounded = np.round(p, decimals).astype(np.float32).astype(np.float64)
    e = analyse_scores(rounded)
    assert e.effective_decimals == decimals
    assert e.resolution == pytest.approx(10.0**-decimals, rel=1e-4)
    assert e.kind == "probabilities"


def test_top_k_truncation_is_detected() -> None:
    target = _linear(top_k=2)
    scores = target.predict_proba(_data().x_test)
    e = analyse_scores(scores)
    assert e.scores_per_row_max == 2
    assert e.kind == "truncated probabilities"


def test_logits_and_unnormalised_scores() -> None:
    logits = np.array([[2.5, -1.0, 0.3], [-0.2, 4.0, 1.1]])
    e = analyse_scores(logits)
    assert e.kind == "logits" and not e.in_unit_interval
    assert e.scores_per_row_max == 3
    sigmoids = 1 / (1 + np.exp(-logits))
    assert analyse_scores(sigmoids).kind == "unnormalised scores"
    # Logits masked with a repeated fill value count only the unmasked entries.
    masked = np.array([[5.0, -100.0, -100.0], [-100.0, 2.0, -100.0]])
    assert analyse_scores(masked).scores_per_row_max == 1


def test_one_hot_answers_are_label_equivalent_but_top1_confidence_is_not() -> None:
    onehot = np.eye(3)[[0, 2, 1, 1]]
    assert analyse_scores(onehot).label_equivalent
    top1 = np.array([[0.9, 0.0, 0.0], [0.0, 0.6, 0.0]])
    assert not analyse_scores(top1).label_equivalent


def test_extent_rises_with_precision_classes_and_logits() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(100, N_CLASSES)) * 2
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    full = exposure_extent(analyse_scores(p))
    coarse = exposure_extent(analyse_scores(np.round(p, 1)))
    top1 = np.where(p == p.max(axis=1, keepdims=True), np.round(p, 1), 0.0)
    top1_extent = exposure_extent(analyse_scores(top1))
    logit_extent = exposure_extent(analyse_scores(np.round(z, 1)))
    assert top1_extent < coarse < full
    assert logit_extent > coarse
    assert top1_extent > 0.0 and full <= 1.0


# -- the probe -----------------------------------------------------------------------------


def test_label_only_target_is_not_vulnerable_and_not_queried() -> None:
    target = _linear(labels_only=True)
    status, metrics, severity = _run(target)
    assert status is Status.NOT_VULNERABLE
    assert metrics["scores_exposed"] is False
    assert severity is Severity.NONE
    assert target.queries_used == 0


def test_full_probabilities_are_vulnerable_with_moderate_severity() -> None:
    target = _linear()
    [f] = OutputGranularityProbe(n_samples=100).run(target, _data(), ProbeContext(seed=2))
    assert f.status is Status.VULNERABLE
    assert f.severity is Severity.MODERATE
    assert f.severity_rationale and "Information exposure" in f.severity_rationale[0]
    assert f.metric("score_kind").value == "probabilities"  # type: ignore[union-attr]
    assert f.metric("top_k").value == N_CLASSES  # type: ignore[union-attr]
    assert f.remedies == ["AML.M0002"]
    assert "ML03" in f.catalog.owasp and "AML.M0002" in f.catalog.atlas_mitigations
    assert target.queries_used == 100
    assert f.reproduction.seed == 2
    assert f.reproduction.parameters["n_samples"] == 100
    assert f.evidence and len(f.evidence[0].data["scores"]) == 3  # type: ignore[index]


def test_coarse_top1_scores_rate_lower_than_full_scores() -> None:
    def top1_one_decimal(x: np.ndarray) -> np.ndarray:
        p = _linear().score_fn(x)
        return np.where(p == p.max(axis=1, keepdims=True), np.round(p, 1), 0.0)

    status, metrics, severity = _run(_custom(top1_one_decimal))
    assert status is Status.VULNERABLE
    assert metrics["top_k"] == 1 and metrics["effective_decimals"] == 1
    assert severity is Severity.LOW


def test_declared_granularity_is_accepted() -> None:
    def top1_two_decimals(x: np.ndarray) -> np.ndarray:
        p = _linear().score_fn(x)
        return np.where(p == p.max(axis=1, keepdims=True), np.round(p, 2), 0.0)

    target = _custom(top1_two_decimals)
    status, _, _ = _run(target, allowed_scores_per_row=1, allowed_decimals=2)
    assert status is Status.NOT_VULNERABLE
    status, _, _ = _run(target, allowed_scores_per_row=1, allowed_decimals=1)
    assert status is Status.VULNERABLE


def test_logits_are_vulnerable_even_when_allowed_granularity_is_generous() -> None:
    target = _custom(lambda x: np.log(_linear().score_fn(x) + 1e-9))
    status, metrics, severity = _run(target, allowed_scores_per_row=99, allowed_decimals=16)
    assert status is Status.VULNERABLE
    assert metrics["score_kind"] == "logits"
    assert severity is Severity.MODERATE


def test_one_hot_scores_are_not_vulnerable() -> None:
    target = _custom(lambda x: np.eye(N_CLASSES)[_linear().score_fn(x).argmax(axis=1)])
    status, metrics, _ = _run(target)
    assert status is Status.NOT_VULNERABLE
    assert metrics["label_equivalent"] is True


def test_same_seed_same_finding() -> None:
    a = OutputGranularityProbe(n_samples=50).run(_linear(decimals=3), _data(), ProbeContext(7))
    b = OutputGranularityProbe(n_samples=50).run(_linear(decimals=3), _data(), ProbeContext(7))
    assert a[0].metrics == b[0].metrics
    assert a[0].metric("effective_decimals").value == 3  # type: ignore[union-attr]


class _Recorder:
    def __init__(self) -> None:
        self.bars: list[NullProgress] = []

    def __call__(
        self, *, total: float | None, description: str
    ) -> AbstractContextManager[NullProgress]:
        bar = NullProgress(total=total, description=description)
        self.bars.append(bar)
        return bar


def test_progress_is_reported() -> None:
    rec = _Recorder()
    ctx = ProbeContext(seed=0, progress=rec)
    OutputGranularityProbe(n_samples=150).run(_linear(), _data(n=1200), ctx)
    [bar] = rec.bars
    assert bar.total == 1 and bar.completed == 1
    rec2 = _Recorder()
    OutputGranularityProbe(n_samples=600).run(_linear(), _data(n=1200), ProbeContext(progress=rec2))
    assert rec2.bars[0].total == 3 and rec2.bars[0].completed == 3


@pytest.mark.parametrize(
    "params",
    [{"n_samples": 0}, {"allowed_decimals": 17}, {"allowed_scores_per_row": -1}, {"nsamples": 5}],
)
def test_bad_parameters_raise_usage_error(params: dict[str, object]) -> None:
    with pytest.raises(UsageError, match=r"exposure\.output_granularity"):
        OutputGranularityProbe(**params).run(_linear(), _data(), ProbeContext())


def test_http_endpoint_answering_logits_is_judged_on_its_logits() -> None:
    import json

    import httpx

    from bastion.targets.http_target import HttpTarget

    def handler(request: httpx.Request) -> httpx.Response:
        rows = json.loads(request.content)["instances"]
        logits = [[3.0 * r[0] - 1.0, 1.0 - 2.0 * r[1], 0.5 * r[2], r[3], -r[4]] for r in rows]
        return httpx.Response(200, json={"predictions": logits})

    spec = InputSpec(shape=(N_FEATURES,), lower=0.0, upper=1.0)
    classes = [f"c{i}" for i in range(N_CLASSES)]
    with HttpTarget(
        "http://127.0.0.1:9/predict",
        input_spec=spec,
        classes=classes,
        response_type="logits",
        transport=httpx.MockTransport(handler),
    ) as target:
        [f] = OutputGranularityProbe(n_samples=40).run(target, _data(), ProbeContext())
    assert f.status is Status.VULNERABLE
    assert f.metric("score_kind").value == "logits"  # type: ignore[union-attr]
    assert "Raw logits" in f.summary
