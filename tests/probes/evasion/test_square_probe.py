"""The evasion.square probe: contract, findings, evidence, budgets and HTTP targets."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.catalog import load_catalog
from bastion.demo.server import serve_target
from bastion.findings import Severity, Status
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.evasion.square import SquareProbe
from bastion.runs.jobs import AssessmentJob
from bastion.runs.plan import make_plan
from bastion.targets.http_target import HttpTarget
from bastion.testing import check_probe
from tests.attacks.blackbox_models import (
    cancer,
    cancer_target,
    digits,
    digits_target,
    label_only,
    one_thread,  # noqa: F401 - autouse fixture
)


def test_contract_and_registry() -> None:
    assert check_probe(SquareProbe, load_catalog()) == []
    registry = Registry().with_plugins(probes={"evasion.square": SquareProbe})
    data, _ = digits()
    plan = make_plan(
        [AssessmentJob(digits_target(), data), AssessmentJob(label_only(digits_target()), data)],
        "all",
        registry=registry,
    )
    assert len(plan.items) == 1
    assert "evasion.hop_skip_jump" in plan.skipped[0].reason


def test_square_probe_on_the_digits_cnn(tmp_path) -> None:
    data, _ = digits()
    probe = SquareProbe(n_samples=30, n_queries=150, budgets=[0.05, 0.2])
    (f,) = probe.run(digits_target(), data, ProbeContext(seed=1, output_dir=tmp_path))
    assert f.status is Status.VULNERABLE and f.severity >= Severity.MODERATE
    clean, low, high = (
        f.metric(n) for n in ("clean_accuracy", "robust_accuracy@0.05", "robust_accuracy@0.2")
    )
    assert clean and low and high and clean.interval and high.interval
    assert clean.value >= low.value >= high.value
    assert high.value < 0.4 and high.n == 30
    assert f.metric("queries_median").value <= 150
    curve = f.series[0]
    assert curve.x == [0.0, 0.05, 0.2] and curve.y_low and len(curve.y_low) == 3
    image, units = f.evidence
    assert image.kind == "image" and (tmp_path / image.path).read_bytes()[:4] == b"\x89PNG"
    assert units.data and units.data["units"] == "raw" and units.data["shared_range"] == [0, 1]
    assert "raw units, pixels in [0, 1]" in f.summary
    assert "AML.T0040" in f.catalog.atlas_techniques and f.remedies


def test_square_probe_on_a_tabular_model_over_http() -> None:
    data, _ = cancer()
    model = cancer_target()
    probe = SquareProbe(n_samples=20, n_queries=60, budgets=[0.1])
    with (
        serve_target(model) as url,
        HttpTarget(url, input_spec=model.input_spec, classes=model.classes) as endpoint,
    ):
        (f,) = probe.run(endpoint, data, ProbeContext(seed=0))
        used = endpoint.queries_used
    assert f.status is Status.VULNERABLE
    assert "fractions of each feature's range" in f.summary
    assert f.evidence[-1].data and f.evidence[-1].data["units"] == "range"
    table = f.evidence[0]
    assert table.kind == "table" and table.data and len(table.data["rows"]) == 30
    assert f.metric("queries_total").value == used


def test_square_probe_partial_when_the_budget_runs_out() -> None:
    data, _ = digits()
    target = digits_target(query_budget=600)
    probe = SquareProbe(n_samples=20, n_queries=400, budgets=[0.01, 0.3])
    (f,) = probe.run(target, data, ProbeContext(seed=0))
    assert "query budget ran out" in f.summary
    assert target.queries_used <= 600
    tiny = digits_target(query_budget=5)
    (g,) = probe.run(tiny, data, ProbeContext(seed=0))
    assert g.status is Status.INCONCLUSIVE and "could not query" in g.summary


def test_square_probe_not_vulnerable_with_a_tiny_budget() -> None:
    data, _ = digits()
    (f,) = SquareProbe(n_samples=20, n_queries=20, budgets=[0.005], max_success_rate=0.5).run(
        digits_target(), data, ProbeContext(seed=0)
    )
    assert f.status is Status.NOT_VULNERABLE and f.severity is Severity.NONE
    assert f.metric("attack_success_rate").value <= 0.5


def test_bad_parameters_are_refused() -> None:
    from bastion.errors import UsageError

    with pytest.raises(UsageError, match="'budgets'"):
        SquareProbe(budgets=[0.1, 0.1]).validated_params()
    with pytest.raises(UsageError, match="'norm'"):
        SquareProbe(norm="l1").validated_params()
    assert np.isclose(SquareProbe().resolved_budgets()[0], 0.05)
