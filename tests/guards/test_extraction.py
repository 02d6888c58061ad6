"""extraction.prada: benign clients pass, a synthetic-query stealing client is flagged."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.errors import UsageError
from bastion.guards import ExtractionMonitorGuard, Guarded, PradaMonitor
from bastion.targets import FakeTarget, InputSpec


def _jbda_like(seeds: np.ndarray, lam: float, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Papernot et al. (2017)-style augmentation, with random signs for the gradient sign."""
    pool, current = [seeds], seeds
    for _ in range(rounds):
        step = np.clip(current + lam * rng.choice([-1.0, 1.0], size=current.shape), 0, 1)
        pool.append(step)
        current = np.concatenate([current, step])
    return np.concatenate(pool)


def test_calibrated_benign_and_attack(digits_flat: tuple[np.ndarray, ...]) -> None:
    x_train, y_train, x_test, y_test = digits_flat
    monitor = PradaMonitor(min_distances=100, test_every=5)
    delta = monitor.calibrate(x_train, y_train, fpr=0.05, streams=30, stream_length=250)
    assert 0.8 < delta < 1.0
    rng = np.random.default_rng(7)
    flagged = 0
    for s in range(30):
        idx = rng.choice(len(x_test), 250, replace=False)
        flagged += monitor.observe(f"benign-{s}", x_test[idx], y_test[idx]).flagged
    assert flagged <= 5  # 5 % target; 30 streams
    centroids = np.stack([x_train[y_train == k].mean(0) for k in range(10)])
    queries = _jbda_like(x_test[rng.choice(len(x_test), 40, replace=False)], 0.1, 3, rng)
    classes = ((queries[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    status = monitor.observe("thief", queries[:250], classes[:250])
    assert status.flagged and status.w_statistic is not None and status.w_statistic < delta


def test_guard_flags_then_denies_when_configured() -> None:
    rng = np.random.default_rng(0)
    spec = InputSpec(shape=(4,), lower=0.0, upper=1.0)
    target = FakeTarget(
        lambda x: np.hstack([x[:, :1], 1 - x[:, :1]]), input_spec=spec, classes=["a", "b"]
    )
    monitor = PradaMonitor(delta=0.9, min_distances=40)
    guarded = Guarded(target, [ExtractionMonitorGuard(monitor, action="deny")])
    seeds = rng.random((4, 4))
    queries = np.clip(np.repeat(seeds, 20, axis=0) + 0.01 * rng.choice([-1, 1], (80, 4)), 0, 1)
    outcomes = [
        guarded.handle_inputs(queries[i : i + 10], principal="thief") for i in range(0, 80, 10)
    ]
    flagged = [o for o in outcomes if any(e["guard"] == "extraction.prada" for e in o.events)]
    assert flagged and flagged[0].allowed
    after = guarded.handle_inputs(queries[:1], principal="thief")
    assert after.http_status == 403 and after.decided_by == "extraction.prada"
    assert guarded.handle_inputs(queries[:1], principal="other").allowed
    monitor.reset("thief")
    assert guarded.handle_inputs(queries[:1], principal="thief").allowed


def test_repeats_ignored_lru_and_errors() -> None:
    monitor = PradaMonitor(min_distances=10, max_principals=2)
    x = np.ones((30, 3))
    status = monitor.observe("a", x, np.zeros(30))
    assert status.distances == 0 and not status.flagged
    monitor.observe("b", x[:1], [0])
    monitor.observe("c", x[:1], [0])
    assert list(monitor._clients) == ["b", "c"]
    with pytest.raises(UsageError):
        monitor.observe("a", x, np.zeros(3))
    with pytest.raises(UsageError):
        PradaMonitor(delta=1.5)
    with pytest.raises(UsageError):
        ExtractionMonitorGuard(monitor, action="block")  # type: ignore[arg-type]
