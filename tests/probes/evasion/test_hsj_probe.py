"""The evasion.hop_skip_jump probe on label-only targets."""

from __future__ import annotations

from bastion.catalog import load_catalog
from bastion.findings import Status
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.evasion.hop_skip_jump import HopSkipJumpProbe
from bastion.testing import check_probe
from tests.attacks.blackbox_models import (
    digits,
    digits_target,
    intrusion,
    intrusion_target,
    label_only,
    one_thread,  # noqa: F401 - autouse fixture
)


def test_contract() -> None:
    assert check_probe(HopSkipJumpProbe, load_catalog()) == []
    assert (
        "evasion.hop_skip_jump"
        in Registry().with_plugins(probes={"evasion.hop_skip_jump": HopSkipJumpProbe}).probes
    )


def test_hsj_probe_on_a_label_only_target(tmp_path) -> None:
    data, _ = digits()
    target = label_only(digits_target())
    probe = HopSkipJumpProbe(n_samples=8, max_queries=500, budgets=[0.5, 1.0, 3.0])
    (f,) = probe.run(target, data, ProbeContext(seed=0, output_dir=tmp_path))
    assert f.status is Status.VULNERABLE
    ra = [f.metric(f"robust_accuracy@{b:g}").value for b in (0.5, 1.0, 3.0)]
    assert ra[0] >= ra[1] >= ra[2]
    assert f.metric("min_perturbation_median").value < 3.0
    assert f.series[0].y[0] >= f.series[0].y[-1]
    assert (tmp_path / f.evidence[0].path).exists()
    assert target.queries_used <= 8 * 500


def test_hsj_probe_keeps_tabular_rows_valid() -> None:
    data, _ = intrusion()
    target = intrusion_target()
    (f,) = HopSkipJumpProbe(n_samples=10, max_queries=300, budgets=[0.05, 0.3]).run(
        target, data, ProbeContext(seed=0)
    )
    assert "held fixed" in f.summary
    table = f.evidence[0].data if f.evidence else None
    if table:  # immutable, integer and one-hot features are untouched
        names = target.input_spec.feature_names or []
        fixed = set(target.input_spec.immutable) | set(target.input_spec.integer)
        fixed |= {n for g in target.input_spec.one_hot_groups for n in g}
        for row in table["rows"]:
            if row[0] in fixed:
                assert row[2] == row[3]
        assert len(table["rows"]) == len(names)
