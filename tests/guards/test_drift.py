"""input.drift: false alarms at the stated rate (bounded simulation); drift caught fast."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.errors import UsageError
from bastion.findings import wilson_interval
from bastion.guards import DriftGuard, DriftMonitor, Guarded
from bastion.guards.base import Action, GuardRequest
from bastion.targets import FakeTarget


def test_false_alarm_rate_matches_the_stated_rate() -> None:
    """Expected rows between false alarms = false_alarm_every, checked by simulation.

    Four independent reference samples, 1,000 fresh undrifted windows each: the
    pooled alarm rate must be consistent with alpha = stride / false_alarm_every.
    """
    alarms = checks = 0
    for rep in range(4):
        rng = np.random.default_rng(100 + rep)
        monitor = DriftMonitor(window=100, stride=100, false_alarm_every=2000, seed=rep)
        monitor.fit(rng.normal(size=(3000, 6)))
        sim = monitor.simulate(lambda n, r=rng: r.normal(size=(n, 6)), 1000)
        alarms, checks = alarms + sim.alarms, checks + sim.checks
    assert monitor.alpha == 0.05
    interval = wilson_interval(alarms, checks)
    # Reference-to-reference scatter widens the spread beyond the binomial interval.
    assert interval.low <= 0.05 * 1.35 and interval.high >= 0.05 * 0.65, (alarms, checks)


def test_drift_detected_within_a_few_windows_and_names_the_feature() -> None:
    rng = np.random.default_rng(0)
    monitor = DriftMonitor(window=100, stride=50, false_alarm_every=5000, seed=0)
    monitor.fit(rng.normal(size=(2000, 5)))
    for _ in range(4):
        check = monitor.update(rng.normal(size=(50, 5)))
    assert check is not None and not check.alarm
    shifted = rng.normal(size=(150, 5))
    shifted[:, 3] += 1.0
    checks = [monitor.update(shifted[i : i + 50]) for i in range(0, 150, 50)]
    alarms = [c for c in checks if c is not None and c.alarm]
    assert alarms and alarms[-1].top_features[0][0] == 3
    assert monitor.alarms == len(alarms) and monitor.checks == 6


def test_checks_only_every_stride_rows() -> None:
    rng = np.random.default_rng(0)
    monitor = DriftMonitor(window=20, stride=10, false_alarm_every=1000, seed=0)
    monitor.fit(rng.normal(size=(400, 2)))
    results = [monitor.update(rng.normal(size=(5, 2))) for _ in range(8)]
    assert [r is not None for r in results] == [False, False, False, True, False, True, False, True]
    assert monitor.update(rng.normal(size=(500, 2))) is not None  # one check for a big batch


def test_guard_flags_and_never_denies() -> None:
    rng = np.random.default_rng(0)
    monitor = DriftMonitor(window=50, stride=50, false_alarm_every=5000, seed=0)
    monitor.fit(rng.normal(size=(1000, 2)))
    target = FakeTarget.linear(n_features=2, n_classes=2)
    guard = DriftGuard(monitor)
    assert (
        guard.before(GuardRequest(principal="p", model="m", inputs="junk")).action is Action.ALLOW
    )
    outcome = Guarded(target, [guard]).handle_inputs(np.clip(rng.normal(0.9, 0.05, (50, 2)), 0, 1))
    assert outcome.allowed
    assert outcome.events[0]["guard"] == "input.drift" and outcome.events[0]["action"] == "flag"
    assert "Input drift" in outcome.events[0]["reason"]


def test_configuration_errors() -> None:
    with pytest.raises(UsageError, match="more than twice the stride"):
        DriftMonitor(stride=50, false_alarm_every=80)
    with pytest.raises(UsageError, match="not fitted"):
        DriftGuard(DriftMonitor())
    with pytest.raises(UsageError, match="at least 200"):
        DriftMonitor(window=200).fit(np.zeros((300, 2)))


def _max_ks_by_definition(monitor: DriftMonitor, window: np.ndarray) -> np.ndarray:
    """``D_j = sup |F_ref,j - F_window,j|`` per feature, by scipy's two-sample KS."""
    from scipy.stats import ks_2samp

    lanes = monitor._lanes(window)
    ref = monitor._ref.reshape(monitor.n_features_, -1)  # sorted lane by lane
    return np.array([ks_2samp(ref[j], lanes[:, j]).statistic for j in range(monitor.n_features_)])


def _windows(rng: np.random.Generator, d: int) -> list[np.ndarray]:
    out = []
    for i in range(40):
        w = rng.normal(loc=rng.normal() * 0.5, scale=rng.uniform(0.5, 3.0), size=(60, d))
        if i % 2:
            w = np.round(w * 2) / 2  # ties within the window and with the reference
        if i % 3 == 0:
            w[:6] = 1e9 * (-1) ** i  # beyond the reference range (clipped lanes)
        if i % 5 == 0:
            w[:, 1] = w[0, 1]  # one constant feature
        if i % 7 == 0:
            w[2, 0] = np.inf
        out.append(w)
    return out


@pytest.mark.parametrize("discrete", [False, True])
def test_statistic_matches_the_search_formulation_and_scipy(discrete: bool) -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(500, 4))
    if discrete:
        reference = np.round(reference * 2) / 2
    monitor = DriftMonitor(window=60, stride=30, n_bootstrap=20, seed=0).fit(reference)
    for window in _windows(rng, 4):
        stat, per_feature = monitor._statistic(window)
        by_search = monitor._statistic_by_search(window)
        assert stat == by_search[0] and np.array_equal(per_feature, by_search[1])
        np.testing.assert_allclose(per_feature, _max_ks_by_definition(monitor, window), atol=1e-12)
    window[3, 2] = np.nan  # lanes no longer ordered: the plain formulation is used
    stat, per_feature = monitor._statistic(window)
    assert np.array_equal(per_feature, monitor._statistic_by_search(window)[1], equal_nan=True)


def test_updates_keep_the_last_window_rows_and_check_like_a_plain_monitor() -> None:
    rng = np.random.default_rng(2)
    monitor = DriftMonitor(window=40, stride=15, false_alarm_every=300, n_bootstrap=50, seed=0)
    monitor.fit(rng.normal(size=(400, 3)))
    seen: list[np.ndarray] = []
    since = 0
    for i in range(120):
        n = int(rng.choice([1, 1, 1, 2, 7, 39, 40, 41, 95]))
        rows = rng.normal(loc=0.8 if 60 <= i < 80 else 0.0, size=(n, 3))
        batch = rows.astype(np.float32) if i % 4 == 0 else rows
        seen.extend(np.asarray(batch, dtype=np.float64))
        since += n
        check = monitor.update(batch.tolist() if i % 5 == 0 else batch)
        last = np.array(seen[-40:])
        assert sorted(map(tuple, monitor._buffer[: min(len(seen), 40)])) == sorted(map(tuple, last))
        if len(seen) < 40 or since < 15:
            assert check is None
            continue
        since = 0
        assert check is not None
        stat, per_feature = monitor._statistic_by_search(last)
        assert check.statistic == stat and check.alarm == (stat > monitor.threshold_)
        top = np.argsort(per_feature)[::-1][:3]
        assert check.top_features == tuple((int(j), float(per_feature[j])) for j in top)
    assert monitor.rows_seen == len(seen) and monitor.alarms > 0
