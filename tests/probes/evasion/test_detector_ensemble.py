"""evasion.detector_adaptive with detector 'ensemble': calibration, joint attack, errors."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from functools import cache

import numpy as np
import pytest
import torch

from bastion.attacks.evasion.budget import Domain
from bastion.attacks.evasion.model import as_model
from bastion.errors import DataError, MissingCapabilityError, UsageError
from bastion.findings import Finding, Status
from bastion.guards.ensemble import EnsembleDisagreementGuard
from bastion.guards.squeezing import Squeezers, calibrate_threshold
from bastion.probes import ProbeContext
from bastion.probes.evasion.detector_attack import AdaptiveDetector
from bastion.probes.evasion.detector_ensemble import EnsembleDetector, train_members
from bastion.probes.evasion.detector_eval import DetectorAdaptiveProbe
from bastion.probes.evasion.detector_squeezing import SqueezingDetector
from bastion.targets.torch_target import TorchTarget
from tests.remedies.models import digits, digits_cnn, one_thread

ENSEMBLE = {
    "detector": "ensemble",
    "n_copies": 1,
    "n_samples": 40,
    "n_calibration": 100,
    "steps": 10,
    "budgets": [0.3],
    "tolerance_budget": 0.3,
    "penalties": [0.0, 10.0],
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


@cache
def _members() -> tuple[torch.nn.Module, ...]:
    with one_thread():
        return tuple(train_members(digits_cnn(), digits(), 1, 0, who="test"))


def _value(f: Finding, name: str) -> float:
    m = f.metric(name)
    assert m is not None and m.interval is not None, name
    return float(m.value)  # type: ignore[arg-type]


def test_the_joint_attack_drives_detection_below_the_static_rate() -> None:
    [f] = DetectorAdaptiveProbe(**ENSEMBLE).run(digits_cnn(), digits(), ProbeContext(seed=0))
    assert f.status is Status.VULNERABLE and f.variant == "ensemble-linf"
    static = _value(f, "detection_rate_static@0.3")
    adaptive = _value(f, "detection_rate_adaptive@0.3")
    assert static > 0.2  # the detector does catch attacks that ignore it ...
    assert adaptive < static  # ... and an attacker who knows the members gets past it
    assert _value(f, "evasion_rate_adaptive@0.3") > 0.5
    assert "ensemble-disagreement detector" in f.summary and "false-positive rate" in f.summary
    threshold = f.metric("threshold")
    assert threshold is not None and "retrained" in threshold.definition
    notes = " ".join(e.description for e in f.evidence)
    assert "seeds 1" in notes and "no BPDA" in notes and "without EoT" in notes


@pytest.mark.parametrize("kind", ["ensemble", "squeezing"])
def test_the_calibrated_false_positive_rate_holds_on_held_out_clean_rows(kind: str) -> None:
    d, model = digits(), as_model(digits_cnn())
    detector: AdaptiveDetector = (
        EnsembleDetector(model, _members())
        if kind == "ensemble"
        else SqueezingDetector(model, Squeezers(0.0, 1.0, bits=4, median=None))
    )
    order = np.random.default_rng(0).permutation(len(d.x_test))
    x = torch.from_numpy(d.x_test[order])
    n_cal, fpr = 200, 0.05
    threshold = calibrate_threshold(detector.scores(x[:n_cal]).double().numpy(), fpr)
    held_out = detector.scores(x[n_cal:])
    measured, n = float((held_out > threshold).float().mean()), len(held_out)
    # Sampling error of the quantile (n_cal rows) and of the measurement (n rows), 3 sigma.
    assert abs(measured - fpr) <= 3 * math.sqrt(fpr * (1 - fpr) * (1 / n_cal + 1 / n))


def test_the_differentiable_score_is_the_guards_score() -> None:
    d, target = digits(), digits_cnn()
    copy = TorchTarget(_members()[0], input_spec=target.input_spec, classes=target.classes)
    guard = EnsembleDisagreementGuard([target, copy], threshold=1.0)
    detector = EnsembleDetector(as_model(target.module), _members())
    x = d.x_test[:50]
    ours = detector.scores(torch.from_numpy(x)).double().numpy()
    assert np.allclose(ours, guard.scores(x), atol=1e-5)


class _Noisy(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x + 0.1 * torch.randn_like(x))
        return out


class _Rounded(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(torch.round(x * 3) / 3)
        return out


def test_randomised_members_get_eot_and_masked_ones_are_flagged() -> None:
    d = digits()
    x, y = torch.from_numpy(d.x_test[:16]), torch.from_numpy(d.y_test[:16]).long()
    dom = Domain.unit((1, 8, 8))
    noisy = EnsembleDetector(as_model(digits_cnn().module), [_Noisy(_members()[0])])
    noisy.inspect(x, y, dom, eot_samples=4)
    assert noisy.eot == 4 and "EoT" in noisy.notes[-1]
    masked = EnsembleDetector(as_model(digits_cnn().module), [_Rounded(_members()[0])])
    masked.inspect(x, y, dom, eot_samples=4)
    assert masked.eot == 1 and [f.code for f in masked.flags] == ["zero_gradients"]
    assert masked.flags[0].message.startswith("Member 1:")


def test_bad_parameters_and_targets() -> None:
    with pytest.raises(UsageError, match="'detector'"):
        DetectorAdaptiveProbe(detector="bagging").validated_params()
    with pytest.raises(UsageError, match="'n_copies'"):
        DetectorAdaptiveProbe(detector="ensemble", n_copies=0).validated_params()
    with pytest.raises(UsageError, match="'eot_samples'"):
        DetectorAdaptiveProbe(eot_samples=0).validated_params()
    cnn = digits_cnn()
    frozen = TorchTarget(cnn.module, input_spec=cnn.input_spec, classes=cnn.classes)
    probe = DetectorAdaptiveProbe(**ENSEMBLE)
    assert "train copies" in (probe.not_applicable_reason(frozen) or "")
    assert DetectorAdaptiveProbe().not_applicable_reason(frozen) is None  # squeezing needs none
    with pytest.raises(MissingCapabilityError):
        probe.run(frozen, digits(), ProbeContext())
    empty = replace(
        digits(), x_train=np.zeros((0, 1, 8, 8), np.float32), y_train=np.zeros(0, np.int64)
    )
    with pytest.raises(DataError, match="training rows"):
        probe.run(digits_cnn(), empty, ProbeContext())
    with pytest.raises(UsageError, match="L∞ budget of 2"):
        DetectorAdaptiveProbe(**{**ENSEMBLE, "budgets": [2.0], "tolerance_budget": 2.0}).run(
            digits_cnn(), digits(), ProbeContext()
        )
