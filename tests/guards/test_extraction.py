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


class _PlainPrada:
    """PRADA for one principal as the module docstring states it, on plain lists."""

    def __init__(self, monitor: PradaMonitor) -> None:
        self.m = monitor
        self.growing: dict[int, list[np.ndarray]] = {}
        self.grown: dict[int, list[float]] = {}
        self.thresholds: dict[int, float] = {}
        self.distances: list[float] = []
        self.queries = 0
        self.w: float | None = None
        self.flagged = False

    def observe(self, x: np.ndarray, c: int) -> None:
        from scipy import stats

        self.queries += 1
        members = self.growing.setdefault(c, [])
        if not members:
            members.append(x)
            self.grown[c], self.thresholds[c] = [], 0.0
        else:
            d = float(np.sqrt(((np.stack(members) - x) ** 2).sum(axis=1).min()))
            if d != 0.0:
                self.distances = [*self.distances, d][-self.m.window :]
                if d > self.thresholds[c] and len(members) < self.m.max_growing:
                    members.append(x)
                    self.grown[c].append(d)
                    spread = float(np.mean(self.grown[c]) - np.std(self.grown[c]))
                    self.thresholds[c] = max(self.thresholds[c], spread)
        if self.queries % self.m.test_every or len(self.distances) < self.m.min_distances:
            return
        values = np.array(self.distances)
        self.w = 0.0 if np.ptp(values) == 0 else float(stats.shapiro(values).statistic)
        self.flagged = self.flagged or self.w < self.m.delta


@pytest.mark.parametrize("seed", range(4))
def test_monitor_matches_a_plain_implementation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    monitor = PradaMonitor(
        delta=0.95,
        min_distances=int(rng.integers(5, 30)),
        window=int(rng.integers(30, 80)),
        max_growing=int(rng.integers(1, 40)),
        test_every=int(rng.integers(1, 4)),
    ).standardise_with(rng.normal(size=(200, 5)) * 3.0)
    plain = {p: _PlainPrada(monitor) for p in "abc"}
    for _ in range(300):
        p = "abc"[int(rng.integers(3))]
        n = int(rng.integers(1, 4))
        if rng.random() < 0.6:
            rows = rng.normal(size=(n, 5))
        else:  # small steps around a seed, and exact repeats
            rows = rng.normal(size=(1, 5)) + 0.001 * rng.choice([-1.0, 0.0, 1.0], size=(n, 5))
        classes = rng.integers(0, 3, size=n)
        status = monitor.observe(p, rows, classes)
        for row, c in zip(monitor._prepare(rows), classes.tolist(), strict=True):
            plain[p].observe(row, c)
        ref = plain[p]
        assert (status.queries, status.distances) == (ref.queries, len(ref.distances))
        assert (status.w_statistic, status.flagged) == (ref.w, ref.flagged)
    assert any(ref.flagged for ref in plain.values())


def test_shapiro_shortcut_matches_scipy() -> None:
    from scipy import stats

    from bastion.guards.extraction import _shapiro_w, _swilk_w

    rng = np.random.default_rng(0)
    for n in (3, 4, 11, 100, 101, 999, 1000, 5000):
        for values in (rng.exponential(size=n), np.round(rng.normal(size=n), 1) + 5.0):
            if np.ptp(values) > 0:
                assert _shapiro_w(values) == float(stats.shapiro(values).statistic)
    if _swilk_w() is None:
        pytest.skip("this SciPy has no SWILK kernel to call directly; shapiro is used")
