"""``extraction.prada``: flag principals whose queries look like a model-stealing attack.

PRADA (Juuti, Szyller, Marchal and Asokan 2019, "PRADA: Protecting Against DNN Model
Stealing Attacks", IEEE EuroS&P) watches the distribution of distances between each
client's successive queries. For every principal and predicted class c it keeps a
growing set G_c of that client's past queries; each new query x with class c adds its
distance to the nearest member of G_c, ``d = min ||x - g||``, to a set D, and joins
G_c when d exceeds the class threshold T_c, which is then raised to
``max(T_c, mean(D_Gc) - std(D_Gc))``. Natural queries give roughly normally
distributed distances; the synthetic queries of extraction attacks (small steps
around a few seeds, as in Papernot et al. 2017's Jacobian augmentation) do not.
Once D holds ``min_distances`` values, the Shapiro-Wilk statistic W of D is computed
and the principal is flagged when ``W < delta``.

Differences from the paper, for a long-running service: D is the last ``window``
distances rather than all of them, G_c keeps at most ``max_growing`` members, the test
runs every ``test_every`` queries, and at most ``max_principals`` clients are tracked
(least recently seen are forgotten), and exact repeats of a past query (distance 0)
are left out of D, since they teach an attacker nothing. Distances are Euclidean on standardised
features (reference mean and standard deviation) when a reference is given.
``delta`` is calibrated with :meth:`PradaMonitor.calibrate` on benign query streams
drawn from reference data, so that about ``fpr`` of benign principals sending
``stream_length`` queries are ever flagged.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> monitor = PradaMonitor(delta=0.9, min_distances=50)
>>> x = rng.normal(size=(200, 5)); c = rng.integers(0, 3, size=200)
>>> monitor.observe("benign", x, c).flagged
False
>>> seeds = rng.normal(size=(3, 5))
>>> steps = np.concatenate([s + 0.01 * rng.choice([-1, 1], size=(60, 5)) for s in seeds])
>>> monitor.observe("thief", steps, np.repeat([0, 1, 2], 60)).flagged
True
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import stats

from bastion.errors import UsageError
from bastion.findings import CatalogRefs
from bastion.guards.base import Decision, Guard, GuardMeta, GuardRequest, GuardResponse

__all__ = ["ExtractionMonitorGuard", "PradaMonitor", "PradaStatus"]


def _shapiro_w_by_scipy(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.shapiro(values).statistic)


@functools.cache
def _swilk_w() -> Callable[[np.ndarray], float] | None:
    """``shapiro``'s own steps (sort, shift by the middle value, the SWILK kernel).

    Called directly, without the wrapper's axis and NaN handling, which costs several
    times the test itself. None when this SciPy has no such kernel or it does not
    reproduce ``shapiro`` on two probes; ``shapiro`` is then used.
    """
    try:
        from scipy.stats._ansari_swilk_statistics import swilk
    except ImportError:  # pragma: no cover - another SciPy layout
        return None

    def w(values: np.ndarray) -> float:
        y = np.sort(values)
        y -= values[len(values) // 2]  # as shapiro does (SciPy gh-15777)
        stat, _, _ = swilk(y, np.zeros(len(values) // 2), 0)
        return float(stat)

    rng = np.random.default_rng(0)
    probes = [rng.gamma(2.0, size=257), np.round(rng.normal(size=300), 1)]
    return w if all(w(p) == _shapiro_w_by_scipy(p) for p in probes) else None


def _shapiro_w(values: np.ndarray) -> float:
    """``scipy.stats.shapiro(values).statistic`` for finite values, not all equal."""
    fast = _swilk_w()
    return fast(values) if fast is not None else _shapiro_w_by_scipy(values)


@dataclass(frozen=True)
class PradaStatus:
    """A principal's standing after its latest queries."""

    principal: str
    queries: int
    distances: int
    w_statistic: float | None
    flagged: bool


class _Growing:
    """One class's growing set G_c: its members, the distances that grew it, T_c.

    Members live in the first ``size`` rows of an array that doubles when full (up to
    the largest size allowed), so a query's distances are one array expression.
    """

    __slots__ = ("active", "grown", "members", "size", "threshold")

    def __init__(self, first: np.ndarray, limit: int) -> None:
        self.members = np.empty((min(8, limit), len(first)))
        self.members[0] = first
        self.active = self.members[:1]  # the members so far
        self.grown = np.empty(len(self.members))  # grown[i]: distance that added member i+1
        self.size = 1
        self.threshold = 0.0

    def nearest(self, x: np.ndarray) -> float:
        """Distance from ``x`` to the nearest member."""
        diff = self.active - x
        diff *= diff
        return math.sqrt(float(np.minimum.reduce(np.add.reduce(diff, axis=1))))

    def add(self, x: np.ndarray, d: float, limit: int) -> None:
        """Make ``x`` (at distance ``d``) a member and raise T_c to mean - std of D_Gc."""
        if self.size == len(self.members):
            cap = min(2 * self.size, limit)
            members = np.empty((cap, self.members.shape[1]))
            members[: self.size] = self.members
            grown = np.empty(cap)
            grown[: self.size - 1] = self.grown[: self.size - 1]
            self.members, self.grown = members, grown
        self.members[self.size] = x
        self.grown[self.size - 1] = d
        self.size += 1
        self.active = self.members[: self.size]
        grown_d = self.grown[: self.size - 1]
        self.threshold = max(self.threshold, float(np.mean(grown_d) - np.std(grown_d)))


class _Distances:
    """The last ``window`` distances: an array that grows to ``window``, then a ring."""

    __slots__ = ("buf", "n", "pos", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.buf = np.empty(min(64, window))
        self.n = 0
        self.pos = 0  # oldest value once full

    def __len__(self) -> int:
        return self.n

    def append(self, d: float) -> None:
        if self.n < self.window:
            if self.n == len(self.buf):
                buf = np.empty(min(2 * self.n, self.window))
                buf[: self.n] = self.buf
                self.buf = buf
            self.buf[self.n] = d
            self.n += 1
        else:
            self.buf[self.pos] = d
            self.pos = (self.pos + 1) % self.window

    def values(self) -> np.ndarray:
        """The distances, oldest first."""
        if self.pos == 0:
            return self.buf[: self.n]
        return np.concatenate((self.buf[self.pos :], self.buf[: self.pos]))


@dataclass
class _Client:
    distances: _Distances
    growing: dict[int, _Growing] = field(default_factory=dict)
    queries: int = 0
    w: float | None = None
    flagged: bool = False


class PradaMonitor:
    """Per-principal PRADA state (see the module docstring).

    Parameters
    ----------
    delta : float
        Flag when the Shapiro-Wilk W of the distance set falls below it.
    min_distances : int
        Distances needed before the test runs (the paper uses 100).
    window : int
        Most recent distances tested.
    max_growing : int
        Largest growing set per class.
    test_every : int
        Run the test every this many queries.
    max_principals : int
        Clients tracked at once.
    mean, scale : array or None
        Feature standardisation (see :meth:`standardise_with`).
    """

    def __init__(
        self,
        *,
        delta: float = 0.9,
        min_distances: int = 100,
        window: int = 1000,
        max_growing: int = 2000,
        test_every: int = 1,
        max_principals: int = 10_000,
        mean: np.ndarray | None = None,
        scale: np.ndarray | None = None,
    ) -> None:
        if not 0 < delta < 1:
            raise UsageError(f"PRADA's delta must be in (0, 1); got {delta!r}.")
        if min_distances < 3 or window < min_distances or window > 5000:
            raise UsageError("PRADA needs 3 <= min_distances <= window <= 5000.")
        if max_growing < 1 or test_every < 1 or max_principals < 1:
            raise UsageError("max_growing, test_every and max_principals must be >= 1.")
        self.delta = float(delta)
        self.min_distances = int(min_distances)
        self.window = int(window)
        self.max_growing = int(max_growing)
        self.test_every = int(test_every)
        self.max_principals = int(max_principals)
        self.mean = mean
        self.scale = scale
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()

    def standardise_with(self, reference: Any) -> PradaMonitor:
        """Measure distances on features standardised by ``reference``'s mean and std."""
        x = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
        std = x.std(axis=0)
        self.mean = x.mean(axis=0)
        self.scale = np.where(std > 1e-12, std, 1.0)
        return self

    def _prepare(self, rows: Any) -> np.ndarray:
        x = np.asarray(rows, dtype=np.float64)
        x = x.reshape(len(x), -1)
        if self.mean is not None and self.scale is not None:
            x = (x - self.mean) / self.scale
        return x

    def _client(self, principal: str) -> _Client:
        client = self._clients.get(principal)
        if client is None:
            client = self._clients[principal] = _Client(_Distances(self.window))
            while len(self._clients) > self.max_principals:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(principal)
        return client

    def _one(self, client: _Client, x: np.ndarray, c: int) -> None:
        group = client.growing.get(c)
        client.queries += 1
        if group is None:
            client.growing[c] = _Growing(x, self.max_growing)
            return
        d = group.nearest(x)
        if d == 0.0:
            return  # an exact repeat teaches an attacker nothing; it would only skew D
        client.distances.append(d)
        if d > group.threshold and group.size < self.max_growing:
            group.add(x, d, self.max_growing)

    def _test(self, client: _Client) -> None:
        if len(client.distances) < self.min_distances:
            return
        values = client.distances.values()
        spread = float(np.ptp(values))
        if spread == 0:
            w = 0.0  # all distances equal: as far from normal as it gets
        elif math.isfinite(spread):
            w = _shapiro_w(values)
        else:  # NaN or infinite distances: whatever shapiro makes of them
            w = _shapiro_w_by_scipy(values)
        client.w = w
        client.flagged = client.flagged or w < self.delta

    def observe(self, principal: str, rows: Any, classes: Any) -> PradaStatus:
        """Add a principal's queries (rows and their predicted classes); test; report."""
        x = self._prepare(rows)
        cls = np.asarray(classes, dtype=np.int64)
        if cls.ndim != 1:
            cls = cls.reshape(-1)
        if len(cls) != len(x):
            raise UsageError(f"Got {len(x)} rows but {len(cls)} predicted classes.")
        with self._lock:
            client = self._client(principal)
            for row, c in zip(x, cls.tolist(), strict=True):
                self._one(client, row, c)
                if client.queries % self.test_every == 0:
                    self._test(client)
            return PradaStatus(
                principal, client.queries, len(client.distances), client.w, client.flagged
            )

    def is_flagged(self, principal: str) -> bool:
        """True once the principal has been flagged (until :meth:`reset`)."""
        with self._lock:
            client = self._clients.get(principal)
            return bool(client and client.flagged)

    def reset(self, principal: str) -> None:
        """Forget a principal (e.g. after review)."""
        with self._lock:
            self._clients.pop(principal, None)

    def calibrate(
        self,
        rows: Any,
        classes: Any,
        *,
        fpr: float = 0.05,
        streams: int = 40,
        stream_length: int = 300,
        seed: int = 0,
    ) -> float:
        """Set ``delta`` so about ``fpr`` of benign streams of ``stream_length`` get flagged.

        Each simulated benign principal sends ``stream_length`` distinct rows drawn at
        random from ``rows`` (with their predicted ``classes``); ``delta`` becomes the ``fpr``
        quantile of the smallest W each stream reached. Returns the new ``delta``.
        """
        x = np.asarray(rows)
        cls = np.asarray(classes)
        if stream_length <= self.min_distances:
            raise UsageError("stream_length must exceed min_distances to calibrate PRADA.")
        rng = np.random.default_rng(seed)
        lowest = []
        for s in range(streams):
            probe = PradaMonitor(
                delta=0.5,
                min_distances=self.min_distances,
                window=self.window,
                max_growing=self.max_growing,
                test_every=self.test_every,
                mean=self.mean,
                scale=self.scale,
            )
            idx = rng.choice(len(x), size=min(stream_length, len(x)), replace=False)
            client = probe._client(f"s{s}")
            low = 1.0
            for i in idx:
                probe._one(client, probe._prepare(x[i : i + 1])[0], int(cls[i]))
                if client.queries % self.test_every == 0:
                    probe._test(client)
                    if client.w is not None:
                        low = min(low, client.w)
            lowest.append(low)
        self.delta = float(np.quantile(lowest, fpr))
        return self.delta


class ExtractionMonitorGuard(Guard):
    """Flags (or blocks) principals whose query stream looks like model extraction.

    Implements PRADA (Juuti et al. 2019); see the module docstring.

    Parameters
    ----------
    monitor : PradaMonitor
    action : {"flag", "deny"}
        Flag the requests of a suspicious principal, or refuse them with 403 from then
        on (until ``monitor.reset(principal)``).
    """

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="extraction.prada",
        title="Model-extraction monitor (PRADA query-distance test)",
        catalog=CatalogRefs(
            owasp=["ML05"],
            failure_modes=["FM5"],
            atlas_techniques=["AML.T0024.002", "AML.T0005"],
            atlas_mitigations=["AML.M0004", "AML.M0015"],
        ),
        order=50,
    )

    def __init__(self, monitor: PradaMonitor, *, action: Literal["flag", "deny"] = "flag") -> None:
        if action not in ("flag", "deny"):
            raise UsageError(f"extraction.prada action must be 'flag' or 'deny'; got {action!r}.")
        self.monitor = monitor
        self.action = action

    def before(self, request: GuardRequest) -> Decision:
        """With ``action="deny"``, refuse principals already flagged."""
        if self.action == "deny" and self.monitor.is_flagged(request.principal):
            return Decision.deny(
                "Your query pattern matches model extraction; access is suspended pending review.",
                http_status=403,
            )
        return Decision.allow()

    def after(self, request: GuardRequest, response: GuardResponse) -> Decision:
        """Feed the queries and predicted classes to PRADA; flag when it trips."""
        out = np.asarray(response.outputs)
        classes = out.argmax(axis=1) if out.ndim == 2 else out
        try:
            status = self.monitor.observe(request.principal, request.inputs, classes)
        except (UsageError, ValueError, TypeError):
            return Decision.allow()
        if not status.flagged:
            return Decision.allow()
        reason = (
            f"Principal {request.principal!r} looks like a model-extraction client (PRADA "
            f"W = {status.w_statistic:.3f} < {self.monitor.delta:.3f} after {status.queries} "
            "queries)."
        )
        return Decision.flag(reason, w=status.w_statistic, queries=status.queries)
