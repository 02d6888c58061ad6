"""The white-box evasion probes: evasion.pgd, evasion.apgd, evasion.min_norm, evasion.auto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from bastion.catalog import load_catalog
from bastion.errors import MissingCapabilityError, UsageError
from bastion.findings import Finding, Severity, Status
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.evasion.auto import AutoAttackProbe
from bastion.probes.evasion.gradient import APGDProbe, PGDProbe
from bastion.probes.evasion.min_norm import MinNormProbe
from bastion.targets import FakeTarget, InputSpec
from bastion.testing import check_probe
from tests.attacks.whitebox_models import (
    NaNAfter,
    Quantised,
    digits,
    digits_target,
    one_thread,
    tabular,
    tabular_target,
)

PROBES = {
    "evasion.pgd": PGDProbe,
    "evasion.apgd": APGDProbe,
    "evasion.min_norm": MinNormProbe,
    "evasion.auto": AutoAttackProbe,
}
FAST_PGD = {"n_samples": 60, "budgets": [0.02, 0.1, 0.3], "steps": 10, "sanity_samples": 32}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def _metric(f: Finding, name: str) -> float:
    m = f.metric(name)
    assert m is not None, name
    return float(m.value)  # type: ignore[arg-type]


@pytest.mark.parametrize("probe_id", list(PROBES))
def test_probes_keep_the_plugin_contract(probe_id: str) -> None:
    cls = PROBES[probe_id]
    assert check_probe(cls, load_catalog()) == []
    registry = Registry().with_plugins(probes={probe_id: cls})
    assert registry.probe(probe_id) is cls
    assert cls.meta.alternative == "evasion.square"


def test_pgd_probe_on_the_digits_cnn(tmp_path: Path) -> None:
    data, _ = digits()
    target = digits_target()
    [f] = PGDProbe(**FAST_PGD).run(target, data, ProbeContext(seed=5, output_dir=tmp_path))
    assert f.status is Status.VULNERABLE and f.severity in (Severity.IMPORTANT, Severity.MODERATE)
    assert f.severity_rationale and f.variant == "linf"
    robust = [_metric(f, f"robust_accuracy@{b:g}") for b in (0.02, 0.1, 0.3)]
    assert robust[0] >= robust[1] >= robust[2] and robust[2] < 0.1
    clean = f.metric("clean_accuracy")
    assert clean is not None and clean.interval is not None and clean.n == 60
    ra = f.metric("robust_accuracy@0.1")
    assert (
        ra is not None
        and ra.interval is not None
        and ra.interval.low <= ra.value <= ra.interval.high
    )  # type: ignore[operator]
    curve, fgsm_curve = f.series
    assert curve.x == [0.0, 0.02, 0.1, 0.3] and curve.y_low is not None
    assert "FGSM" in fgsm_curve.name
    assert _metric(f, "queries") == target.queries_used
    images = [e for e in f.evidence if e.kind == "image"]
    assert len(images) == 3
    for e in images:
        assert e.path is not None and not Path(e.path).is_absolute()
        assert (tmp_path / e.path).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f.catalog.owasp == ["ML01"] and "CWE-1039" in f.catalog.cwe


def test_same_seed_same_finding() -> None:
    data, _ = digits()
    runs = [
        PGDProbe(**FAST_PGD).run(digits_target(), data, ProbeContext(seed=9))[0] for _ in range(2)
    ]
    assert [m.value for m in runs[0].metrics] == [m.value for m in runs[1].metrics]


def test_security_decision_raises_severity() -> None:
    data, _ = digits()
    ctx = ProbeContext(seed=5, security_decision=True)
    [f] = PGDProbe(**FAST_PGD).run(digits_target(), data, ctx)
    assert f.severity in (Severity.IMPORTANT, Severity.CRITICAL)


def test_a_robust_enough_model_is_not_vulnerable() -> None:
    data, _ = digits()
    params = {
        **FAST_PGD,
        "budgets": [0.005, 0.01],
        "tolerance_budget": 0.01,
        "max_success_rate": 0.5,
    }
    [f] = PGDProbe(**params).run(digits_target(), data, ProbeContext(seed=5))
    assert f.status is Status.NOT_VULNERABLE and f.severity is Severity.NONE
    assert _metric(f, "success_rate@0.01") <= 0.5


def test_quantised_model_is_flagged_not_passed() -> None:
    _, cnn = digits()
    data, _ = digits()
    params = {**FAST_PGD, "budgets": [0.01, 0.05], "tolerance_budget": 0.05}
    [f] = PGDProbe(**params).run(digits_target(Quantised(cnn)), data, ProbeContext(seed=5))
    flags = f.metric("sanity_flags")
    assert flags is not None and "zero_gradients" in str(flags.value)
    assert f.status is not Status.NOT_VULNERABLE
    assert any(e.data and e.data.get("check") == "zero_gradients" for e in f.evidence)


def test_min_norm_probe_reports_the_perturbation_distribution() -> None:
    data, _ = digits()
    probe = MinNormProbe(n_samples=40, steps=20, budgets=[0.05, 0.1, 0.2], sanity_samples=16)
    [f] = probe.run(digits_target(), data, ProbeContext(seed=2))
    q1, med, q3 = (_metric(f, f"min_perturbation_{q}") for q in ("q1", "median", "q3"))
    assert 0 < q1 <= med <= q3 < 0.3
    ecdf = f.series[1]
    assert ecdf.x == sorted(ecdf.x) and ecdf.y == sorted(ecdf.y) and ecdf.y[-1] <= 1.0
    assert _metric(f, "min_perturbation_not_found") == 0
    assert f.status is Status.VULNERABLE


def test_apgd_probe() -> None:
    data, _ = digits()
    probe = APGDProbe(
        n_samples=40, budgets=[0.05, 0.2], steps=10, n_target_classes=2, sanity_samples=16
    )
    [f] = probe.run(digits_target(), data, ProbeContext(seed=2))
    assert f.status is Status.VULNERABLE
    assert _metric(f, "robust_accuracy@0.2") < 0.2
    assert f.metric("apgd_t_extra") is not None


def test_auto_probe_and_black_box_flag() -> None:
    data, cnn = digits()
    params = {
        "n_samples": 30,
        "steps": 10,
        "n_target_classes": 2,
        "square_queries": 200,
        "sanity_samples": 16,
    }
    [f] = AutoAttackProbe(**params).run(digits_target(), data, ProbeContext(seed=1))
    assert f.status is Status.VULNERABLE and f.series[0].x == [0.0, 0.1]
    assert {m.name for m in f.metrics} >= {
        f"broken_by.{m}" for m in ("apgd-ce", "apgd-t", "fab-t", "square")
    }
    masked = {**params, "budgets": [0.3], "tolerance_budget": 0.3}
    [g] = AutoAttackProbe(**masked).run(digits_target(Quantised(cnn)), data, ProbeContext(seed=1))
    assert "black_box_beats_white_box" in str(g.metric("sanity_flags").value)  # type: ignore[union-attr]


def test_tabular_target_keeps_immutable_features_and_reports_tables() -> None:
    data, _, spec = tabular()
    params = {
        "n_samples": 40,
        "budgets": [0.05, 0.2],
        "tolerance_budget": 0.2,
        "steps": 10,
        "sanity_samples": 16,
    }
    [f] = PGDProbe(**params).run(tabular_target(), data, ProbeContext(seed=0))
    assert f.status in (Status.VULNERABLE, Status.NOT_VULNERABLE)
    tables = [e for e in f.evidence if e.kind == "table" and e.data]
    changed = {row[1] for e in tables[1:] for row in e.data["rows"]}  # type: ignore[index]
    assert changed and not changed & set(spec.immutable)


def test_missing_gradients_is_a_clear_error() -> None:
    data, _ = digits()
    fake = FakeTarget(
        lambda x: np.tile(np.eye(10)[0], (len(x), 1)),
        input_spec=InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0),
        classes=list(data.classes),
    )
    probe = PGDProbe()
    assert "evasion.square" in (probe.not_applicable_reason(fake) or "")
    with pytest.raises(MissingCapabilityError, match="gradients"):
        probe.run(fake, data, ProbeContext())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"budgets": [0.1, 2.0], "units": "range"}, "must lie in \\(0, 1\\]"),
        ({"units": "pixels"}, "units"),
        ({"budgets": [0.2, 0.3], "tolerance_budget": 0.1}, "at or below tolerance_budget"),
        ({"budgets": [-0.1]}, "greater than 0"),
        ({"budgets": [0.1, 0.1]}, "must not repeat"),
        ({"n_samples": 3}, "n_samples"),
        ({"norm": "l1"}, "norm"),
    ],
)
def test_bad_parameters_fail_before_any_query(params: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        PGDProbe(**params).validated_params()


def test_budgets_larger_than_the_input_are_refused() -> None:
    data, _ = digits()
    target = digits_target()
    with pytest.raises(UsageError, match="L2 budget of 10"):
        PGDProbe(norm="l2", budgets=[1.0, 10.0], n_samples=10).run(target, data, ProbeContext())
    with pytest.raises(UsageError, match="L∞ budget of 2 \\(raw units, pixels in \\[0, 1\\]\\)"):
        PGDProbe(budgets=[0.1, 2.0], n_samples=10).run(target, data, ProbeContext())
    assert target.queries_used == 0


def test_nan_outputs_and_spent_budgets_give_inconclusive_findings() -> None:
    data, cnn = digits()
    [f] = PGDProbe(**FAST_PGD).run(digits_target(NaNAfter(cnn)), data, ProbeContext())
    assert f.status is Status.INCONCLUSIVE and "NaN" in f.summary
    small = digits_target(query_budget=500)
    [g] = PGDProbe(**FAST_PGD).run(small, data, ProbeContext())
    assert g.status is Status.INCONCLUSIVE and "query budget" in g.summary
    assert small.queries_used <= 500


def test_data_that_does_not_fit_the_model_is_inconclusive() -> None:
    data, _ = digits()
    shuffled = type(data)(
        name="wrong",
        x_train=data.x_train,
        y_train=data.y_train,
        x_test=data.x_test,
        y_test=np.roll(data.y_test, 1),
        classes=data.classes,
    )
    [f] = PGDProbe(**FAST_PGD).run(digits_target(), shuffled, ProbeContext())
    assert f.status is Status.INCONCLUSIVE and "close to chance" in f.summary
    assert torch.get_num_threads() == 1


def test_data_outside_the_declared_bounds_is_a_clear_error() -> None:
    from bastion.errors import DataError

    data, _ = digits()
    scaled = type(data)(
        name="0-16",
        x_train=data.x_train * 16,
        y_train=data.y_train,
        x_test=data.x_test * 16,
        y_test=data.y_test,
        classes=data.classes,
    )
    target = digits_target()
    with pytest.raises(DataError, match="outside the model's declared bounds"):
        PGDProbe(n_samples=20).run(target, scaled, ProbeContext())
    assert target.queries_used == 0
