"""evasion.certified_radius: certified accuracy per L2 radius by randomized smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.catalog import load_catalog
from bastion.certification import SmoothedTarget
from bastion.data.dataset import Dataset
from bastion.errors import DataError, UsageError
from bastion.findings import Finding, Status
from bastion.probes import ProbeContext
from bastion.probes.evasion.certified import CertifiedRadiusProbe
from bastion.targets import FakeTarget, InputSpec
from bastion.testing import check_probe
from tests.certification.linear import at_distance, torch_linear

SIGMA = 0.5
RADII = [0.0, 0.25, 0.5, 1.0]


def _data(distances: np.ndarray) -> Dataset:
    x = at_distance(distances, seed=7).astype(np.float64)
    y = (distances > 0).astype(np.int64)
    return Dataset("lin", x, y, x, y, classes=["neg", "pos"])


def _metrics(f: Finding) -> dict[str, object]:
    return {m.name: m.value for m in f.metrics}


def _run(target: object, data: Dataset, **params: object) -> Finding:
    kw: dict[str, object] = {
        "sigma": SIGMA,
        "n0": 50,
        "n": 2000,
        "radii": RADII,
        "batch_size": 8192,
    }
    kw.update(params)
    [finding] = CertifiedRadiusProbe(**kw).run(target, data, ProbeContext(seed=0))  # type: ignore[arg-type]
    return finding


def test_keeps_the_probe_contract() -> None:
    problems = check_probe(
        CertifiedRadiusProbe, load_catalog(), remedy_ids={"evasion.randomized_smoothing"}
    )
    assert problems == []


def test_certified_accuracy_matches_the_closed_form_of_a_linear_model() -> None:
    d = np.random.default_rng(1).uniform(-1.5, 1.5, size=40)
    target = torch_linear()
    f = _run(target, _data(d), n_samples=40, tolerance_radius=0.25)
    m = _metrics(f)
    for r in RADII:
        exact = float((np.abs(d) >= r).mean())  # every row is classified correctly
        slack = float((np.abs(d) >= r + 0.15).mean())
        value = m[f"certified_accuracy@{r:g}"]
        assert isinstance(value, float)
        assert slack - 1e-9 <= value <= exact + 1e-9, (r, value, exact)
    assert m["clean_accuracy"] == 1.0
    assert m["sigma"] == SIGMA and m["n0"] == 50 and m["n"] == 2000 and m["rows"] == 40
    assert m["alpha"] == 0.001
    assert m["queries"] == target.queries_used == 40 * (50 + 2000 + 1)
    by_name = {x.name: x for x in f.metrics}
    iv = by_name["certified_accuracy@0.5"].interval
    value = by_name["certified_accuracy@0.5"].value
    assert iv is not None and iv.method == "wilson" and isinstance(value, float)
    assert iv.low <= value <= iv.high
    assert "Wilson 95%" in by_name["certified_accuracy@0.5"].definition


def test_reports_the_distribution_of_radii_and_the_parameters() -> None:
    d = np.array([-1.2, -0.4, 0.0, 0.3, 0.8, 1.4] * 2)
    f = _run(torch_linear(), _data(d), n_samples=12)
    [curve] = f.series
    assert curve.x[0] == 0.0 and len(curve.x) == len(curve.y) == len(curve.y_low or [])
    assert all(a >= b for a, b in zip(curve.y, curve.y[1:], strict=False))  # non-increasing
    assert curve.y[-1] == 0.0  # nothing is certified beyond the largest certifiable radius
    m = _metrics(f)
    assert m["abstention_rate"] == pytest.approx(2 / 12, abs=1e-4)  # the rows on the boundary
    assert 0 < m["average_certified_radius"] < m["median_certified_radius"]  # type: ignore[operator]
    obs, table = f.evidence
    assert obs.data is not None and obs.data["n0"] == 50 and obs.data["sigma"] == SIGMA
    assert table.data is not None and len(table.data["rows"]) == 12
    assert f.reproduction.parameters["n"] == 2000 and f.variant == "l2"


def test_verdicts_follow_the_tolerance_rule() -> None:
    far = _run(torch_linear(), _data(np.array([-1.5, -1.2, 1.2, 1.5] * 3)), n_samples=12)
    assert far.status is Status.NOT_VULNERABLE
    near = _run(torch_linear(), _data(np.array([-0.3, -0.1, 0.1, 0.2, 1.5] * 3)), n_samples=15)
    assert near.status is Status.VULNERABLE and near.severity.value != "none"
    assert "not of rows an attack broke" in near.severity_rationale[0]
    assert "not proven" in near.summary

    constant = FakeTarget(
        lambda x: np.tile([0.9, 0.1], (len(x), 1)),
        input_spec=InputSpec(shape=(4,), dtype="float64"),
        classes=["neg", "pos"],
    )
    chance = _run(constant, _data(np.array([-1.0, 1.0] * 6)), n_samples=12, n=100, n0=10)
    assert chance.status is Status.INCONCLUSIVE
    assert "does not work under this noise" in chance.summary
    assert "certified_accuracy@0" in _metrics(chance)  # metrics kept for before/after


def test_a_smoothed_target_is_certified_at_its_own_sigma() -> None:
    data = _data(np.array([-1.0, -0.5, 0.5, 1.0] * 3))
    base = torch_linear()
    g = SmoothedTarget(base, sigma=0.25)
    f = _run(g, data, sigma=None, n_samples=12)
    m = _metrics(f)
    assert m["sigma"] == 0.25 and "smoothed target (sigma 0.25)" in f.summary
    assert base.queries_used == 12 * (50 + 2000 + 1)
    with pytest.raises(UsageError, match="already smoothed at sigma 0.25"):
        _run(g, data, sigma=0.5)
    with pytest.raises(UsageError, match="'units'"):
        _run(g, data, sigma=None, units="range")


def test_a_short_query_budget_gives_an_inconclusive_finding() -> None:
    f = _run(torch_linear(query_budget=5000), _data(np.array([1.0, -1.0] * 5)), n_samples=10)
    assert f.status is Status.INCONCLUSIVE and "query budget" in f.summary


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n0": 500, "n": 100}, "n0 \\(500\\) must not exceed n"),
        ({"alpha": 0.0}, "'alpha' parameter"),
        ({"sigma": -0.1}, "'sigma' parameter"),
        ({"radii": [0.1, 0.1]}, "must not repeat"),
        ({"tolerance_radius": 2.0}, "exceeds .* largest radius CERTIFY can return"),
    ],
)
def test_bad_parameters_are_usage_errors(params: dict[str, object], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        _run(torch_linear(), _data(np.array([1.0, -1.0])), n_samples=2, **params)


def test_labels_beyond_the_model_are_a_data_error() -> None:
    data = _data(np.array([1.0, -1.0]))
    bad = Dataset(
        "bad", data.x_train, data.y_train, data.x_test, data.y_test + 5, classes=list("abcdefg")
    )
    with pytest.raises(DataError, match="labels up to"):
        _run(torch_linear(), bad, n_samples=2)
