"""input.ood: calibrated false-positive rate on held-out data; far inputs refused."""

from __future__ import annotations

from typing import Literal

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


def _knn_scores_by_formula(det: OODDetector, x: np.ndarray) -> np.ndarray:
    """k-th nearest standardised distance of each row, straight from the definition."""
    z = (np.asarray(x, dtype=np.float64).reshape(len(x), -1) - det.mean_) / det.scale_
    d = np.sqrt(((z[:, None, :] - det.reference_[None, :, :]) ** 2).sum(axis=2))
    return np.sort(d, axis=1)[:, det.k - 1]


@pytest.mark.parametrize("d", [1, 3, 64])
def test_single_row_scores_match_the_definition_and_the_batch(d: int) -> None:
    rng = np.random.default_rng(d)
    reference = rng.normal(size=(500, d)) * rng.uniform(0.01, 10.0, size=d) + 3.0
    det = OODDetector(k=4, fpr=0.05, seed=0).fit(reference)
    x = np.concatenate(
        [
            rng.normal(size=(60, d)) * 10.0 + 3.0,  # far and near
            reference[:20] + rng.normal(scale=1e-3, size=(20, d)),  # next to a reference row
            reference[:5],  # on one
        ]
    )
    one = np.array([det.score(row[None])[0] for row in x])
    expected = _knn_scores_by_formula(det, x)
    np.testing.assert_allclose(one, expected, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(one, det.score(x), rtol=1e-12, atol=1e-6)
    assert np.array_equal(one > det.threshold_, expected > det.threshold_)


def test_guard_single_row_decisions_match_the_definition() -> None:
    rng = np.random.default_rng(3)
    det = OODDetector(fpr=0.05, seed=0).fit(rng.normal(size=(800, 5)))
    rows = rng.normal(scale=1.6, size=(300, 5))
    expected = _knn_scores_by_formula(det, rows)
    actions: tuple[Literal["flag", "deny"], ...] = ("flag", "deny")
    for action in actions:
        guard = OODGuard(det, action=action)
        for row, score in zip(rows, expected, strict=True):
            for inputs in (row[None], row[None].astype(np.float32).tolist()):
                got = guard.before(GuardRequest(principal="p", model="m", inputs=inputs))
                if isinstance(inputs, list):
                    score = _knn_scores_by_formula(det, np.asarray(inputs))[0]
                if score <= det.threshold_:
                    assert got.action is Action.ALLOW
                    continue
                assert got.reason.startswith("Row(s) 0 are out of distribution (score ")
                if action == "deny":
                    assert got.action is Action.DENY and got.http_status == 422
                else:
                    event = got.events[0]
                    assert got.action is Action.FLAG and event["rows"] == [0]
                    assert event["score"] == pytest.approx(score, rel=1e-9)
                    assert event["threshold"] == det.threshold_


def test_guard_names_at_most_ten_rows_and_records_a_hundred() -> None:
    rng = np.random.default_rng(0)
    det = OODDetector(fpr=0.05, seed=0).fit(rng.normal(size=(500, 2)))
    x = np.full((120, 2), 50.0)
    x[0] = 0.0
    x[7] = 80.0
    flagged = OODGuard(det, action="flag").before(GuardRequest(principal="p", model="m", inputs=x))
    assert flagged.reason.startswith("Row(s) 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 ... are out")
    assert flagged.events[0]["rows"] == list(range(1, 101))
    assert flagged.events[0]["score"] == pytest.approx(_knn_scores_by_formula(det, x[7:8])[0])
    wrong_width = GuardRequest(principal="p", model="m", inputs=np.zeros((1, 3)))
    assert OODGuard(det).before(wrong_width).http_status == 422
