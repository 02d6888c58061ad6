"""input.feature_squeezing: squeezers, calibration, guard decisions."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from bastion.attacks.evasion.pgd import pgd
from bastion.catalog import load_catalog
from bastion.errors import UsageError
from bastion.guards.base import Action, GuardRequest
from bastion.guards.squeezing import (
    FeatureSqueezingGuard,
    Squeezers,
    bit_depth,
    calibrate_threshold,
    median_smooth,
)
from bastion.plugins import Registry
from bastion.testing import check_guard
from tests.remedies.models import digits, digits_cnn, one_thread


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def test_keeps_the_guard_contract() -> None:
    assert check_guard(FeatureSqueezingGuard, load_catalog()) == []
    reg = Registry().with_plugins(guards={"input.feature_squeezing": FeatureSqueezingGuard})
    assert reg.guards["input.feature_squeezing"] is FeatureSqueezingGuard


def test_squeezers() -> None:
    x = torch.tensor([0.0, 0.2, 0.49, 0.51, 1.0])
    assert bit_depth(x, 1).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert bit_depth(torch.tensor([2.0, 6.0]), 1, lower=2.0, upper=6.0).tolist() == [2.0, 6.0]
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 2, 2] = 1.0  # a single salt pixel vanishes under a 3x3 median
    assert float(median_smooth(img, 3).abs().max()) == 0.0
    assert median_smooth(torch.rand(2, 3, 8, 8), 2).shape == (2, 3, 8, 8)
    xg = torch.rand(3, 1, 4, 4, requires_grad=True)
    Squeezers(bits=2, median=2)(xg, bpda=True).sum().backward()
    assert torch.equal(xg.grad, torch.ones_like(xg))  # straight-through


@pytest.mark.parametrize(
    "kw", [{"bits": None, "median": None}, {"bits": 0}, {"median": 9}, {"lower": 1.0, "upper": 0.0}]
)
def test_bad_squeezers(kw: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        Squeezers(**kw)  # type: ignore[arg-type]


def test_calibration_quantile_and_bad_rates() -> None:
    assert calibrate_threshold(np.arange(100.0), 0.1) == 90.0
    with pytest.raises(UsageError, match="at least 20"):
        calibrate_threshold(np.arange(5.0), 0.05)
    with pytest.raises(UsageError):
        calibrate_threshold(np.arange(100.0), 0.7)


def test_calibrated_guard_keeps_fpr_and_flags_static_pgd() -> None:
    target, d = digits_cnn(), digits()
    sq = Squeezers(bits=4, median=None)
    guard = FeatureSqueezingGuard.calibrated(target, d.x_test[:200], fpr=0.05, squeezers=sq)
    held_out = guard.scores(d.x_test[200:400])
    assert float((held_out > guard.threshold).mean()) < 0.15
    x = torch.from_numpy(d.x_test[200:300])
    y = torch.from_numpy(d.y_test[200:300]).long()
    r = pgd(target.module, x, y, eps=0.1, steps=20, seed=0)
    adv = r.x_adv[r.success]
    assert len(adv) > 10
    assert float((guard.scores(adv) > guard.threshold).mean()) > 0.5
    denied = guard.before(GuardRequest("p", "digits", adv[:4].numpy()))
    assert denied.action is Action.DENY and denied.http_status == 422
    clean = d.x_test[200:400][held_out <= guard.threshold][:4]
    assert guard.before(GuardRequest("p", "digits", clean)).action is Action.ALLOW
    flagger = FeatureSqueezingGuard(target, threshold=guard.threshold, squeezers=sq, action="flag")
    assert flagger.before(GuardRequest("p", "digits", adv[:4].numpy())).action is Action.FLAG


def test_bad_requests_and_arguments() -> None:
    guard = FeatureSqueezingGuard(digits_cnn(), threshold=0.1)
    assert guard.before(GuardRequest("p", "m", np.array(["a", "b"]))).http_status == 400
    bad_shape = guard.before(GuardRequest("p", "m", np.zeros((2, 3), np.float32)))
    assert bad_shape.action is Action.DENY and bad_shape.http_status == 400
    with pytest.raises(UsageError):
        FeatureSqueezingGuard(digits_cnn(), threshold=float("nan"))
    with pytest.raises(UsageError):
        FeatureSqueezingGuard(digits_cnn(), threshold=0.1, action="drop")
    with pytest.raises(UsageError):
        FeatureSqueezingGuard(object(), threshold=0.1)
