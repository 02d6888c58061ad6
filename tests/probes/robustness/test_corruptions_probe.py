"""The robustness.corruptions probe."""

from __future__ import annotations

import pytest

from bastion.attacks.evasion.corruptions import CORRUPTIONS
from bastion.catalog import load_catalog
from bastion.errors import UsageError
from bastion.findings import Status
from bastion.probes import ProbeContext
from bastion.probes.robustness.corruptions import CorruptionsParams, CorruptionsProbe
from bastion.testing import check_probe
from tests.attacks.blackbox_models import (
    cancer,
    cancer_target,
    digits,
    digits_target,
    label_only,
    one_thread,  # noqa: F401 - autouse fixture
)


def test_contract_and_parameters() -> None:
    assert check_probe(CorruptionsProbe, load_catalog()) == []
    assert set(CorruptionsParams().corruptions) == set(CORRUPTIONS)
    with pytest.raises(UsageError, match="tolerance_severity"):
        CorruptionsProbe(severities=[4, 5], tolerance_severity=2).validated_params()
    with pytest.raises(UsageError, match="'severities'"):
        CorruptionsProbe(severities=[0, 1]).validated_params()


def test_corruptions_on_a_label_only_digits_model(tmp_path) -> None:
    data, _ = digits()
    target = label_only(digits_target())
    probe = CorruptionsProbe(n_samples=150, severities=[1, 3, 5], tolerance_severity=3)
    (f,) = probe.run(target, data, ProbeContext(seed=0, output_dir=tmp_path))
    assert f.status is Status.VULNERABLE
    assert len(f.series) == len(CORRUPTIONS)
    for s in f.series:
        assert s.x == [0.0, 1.0, 3.0, 5.0] and s.y_low and s.y_high
        assert s.y[1] >= s.y[3] - 0.03  # severity 5 is never clearly easier than severity 1
    m = f.metric("accuracy@contrast:5")
    assert m and m.interval and m.value < f.metric("clean_accuracy").value
    assert 0 < f.metric("mean_corruption_accuracy").value < f.metric("clean_accuracy").value
    assert target.queries_used == 150 * (1 + len(CORRUPTIONS) * 3)
    if f.evidence:
        assert (tmp_path / f.evidence[0].path).read_bytes()[:4] == b"\x89PNG"


def test_not_applicable_to_tabular_inputs() -> None:
    data, _ = cancer()
    reason = CorruptionsProbe().not_applicable_reason(cancer_target())
    assert reason and "image-like" in reason and "robustness.noise" in reason
    with pytest.raises(UsageError, match="image-like"):
        CorruptionsProbe().run(cancer_target(), data, ProbeContext())
