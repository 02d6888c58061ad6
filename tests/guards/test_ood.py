"""input.ood: calibrated false-positive rate on held-out data; far inputs refused."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.errors import UsageError
from bastion.guards import Guarded, InputValidationGuard, OODDetector, OODGuard
from bastion.guards.base import Action, GuardRequest
from bastion.guards.ood import conformal_threshold
from bastion.targets import FakeTarget, InputSpec


@pytest.mark.parametrize("method", ["knn", "mahalanobis"])
def test_fpr_holds_on_unseen_gaussian_data(method: str) -> None:
    rng = np.random.default_rng(1)
    det = OODDetector(method=method, fpr=0.05, calibration_fraction=0.5, seed=1)
    det.fit(rng.normal(size=(2000, 6)))
    rate, _ = det.measure_fpr(rng.normal(size=(4000, 6)))
    # Conformal: the rate is fpr on average over calibration draws. For one draw of
    # m = 1000 calibration rows it scatters with sd sqrt(a(1-a)/m), plus the binomial
    # noise of 4000 test rows: allow three standard deviations of both.
    sd = np.sqrt(0.05 * 0.95 * (1 / 1000 + 1 / 4000))
    assert abs(rate - 0.05) < 3 * sd


def test_digits_heldout_fpr_and_detection(digits_flat: tuple[np.ndarray, ...]) -> None:
    x_train, _, x_test, _ = digits_flat
    det = OODDetector(method="knn", k=5, fpr=0.05, seed=0).fit(x_train)
    rate, _ = det.measure_fpr(x_test)
    m, n = det.n_calibration_, len(x_test)
    assert abs(rate - 0.05) < 3 * np.sqrt(0.05 * 0.95 * (1 / m + 1 / n))
    rng = np.random.default_rng(0)
    noise = rng.random((200, 64))
    assert det.is_ood(noise).mean() > 0.95
    inverted = 1.0 - x_test[:200]  # white digits on black -> black on white
    assert det.is_ood(inverted).mean() > 0.9


def test_guard_denies_or_flags_naming_rows() -> None:
    rng = np.random.default_rng(0)
    det = OODDetector(fpr=0.01, seed=0).fit(rng.normal(size=(1000, 3)))
    x = np.array([[0.0, 0.0, 0.0], [8.0, 8.0, 8.0]])
    denied = OODGuard(det).before(GuardRequest(principal="p", model="m", inputs=x))
    assert denied.http_status == 422 and denied.reason.startswith(
        "Row(s) 1 are out of distribution"
    )
    flagged = OODGuard(det, action="flag").before(GuardRequest(principal="p", model="m", inputs=x))
    assert flagged.action is Action.FLAG and flagged.events[0]["rows"] == [1]
    fine = OODGuard(det).before(GuardRequest(principal="p", model="m", inputs=x[:1]))
    assert fine.action is Action.ALLOW
    junk = OODGuard(det).before(GuardRequest(principal="p", model="m", inputs="junk"))
    assert junk.http_status == 422


def test_in_pipeline_after_validation() -> None:
    rng = np.random.default_rng(0)
    spec = InputSpec(shape=(3,), lower=-20.0, upper=20.0)
    target = FakeTarget(
        lambda x: np.tile([0.5, 0.5], (len(x), 1)), input_spec=spec, classes=["a", "b"]
    )
    det = OODDetector(fpr=0.01, seed=0).fit(rng.normal(size=(1000, 3)))
    guarded = Guarded(target, [OODGuard(det), InputValidationGuard(spec)])
    assert guarded.handle_inputs([[0.1, 0.2, 0.3]]).allowed
    outcome = guarded.handle_inputs([[10.0, 10.0, 10.0]])
    assert outcome.http_status == 422 and outcome.decided_by == "input.ood"
    assert target.queries_used == 1


def test_configuration_errors() -> None:
    with pytest.raises(UsageError, match="at least 19"):
        conformal_threshold(np.arange(10.0), 0.05)
    with pytest.raises(UsageError):
        OODDetector(method="lof")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not fitted"):
        OODGuard(OODDetector())
    with pytest.raises(UsageError):
        OODDetector(fpr=0.0)
