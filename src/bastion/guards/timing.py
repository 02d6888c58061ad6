"""Measuring what guards cost: per-hook wall time, interleaved, as medians.

:func:`time_guards` calls every guard's hooks on one prepared request (and response)
in round-robin order — one batch of calls per guard per repetition — and reports the
median microseconds per call. Interleaving spreads a noisy machine's slow moments
over all guards instead of penalising whichever ran during them, which is how the
figures in docs/guards.md were taken. Guards that keep state (rate limits, drift
windows, PRADA) are exercised as they would be by a steady stream of that request.

Examples
--------
>>> import numpy as np
>>> from bastion.guards.base import GuardRequest, GuardResponse
>>> from bastion.guards.obfuscation import ObfuscationGuard, ObfuscationPolicy
>>> req = GuardRequest(principal="p", model="m", inputs=np.zeros((1, 4), dtype=np.float32))
>>> resp = GuardResponse(np.array([[0.7, 0.2, 0.1]]))
>>> costs = time_guards({"top1": ObfuscationGuard(ObfuscationPolicy(top_k=1))}, req, resp,
...                     repetitions=3, inner=5)
>>> list(costs), costs["top1"] > 0
(['top1'], True)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

from bastion.errors import UsageError
from bastion.guards.base import Guard, GuardRequest, GuardResponse

__all__ = ["time_calls", "time_guards"]


def time_calls(
    calls: Mapping[str, Callable[[], object]], *, repetitions: int = 15, inner: int = 40
) -> dict[str, float]:
    """Median microseconds per call of each callable, measured round-robin.

    Parameters
    ----------
    calls : mapping of str to callable
        What to time, by label.
    repetitions : int
        Rounds; each round times ``inner`` calls of every callable in turn.
    inner : int
        Calls per callable per round.
    """
    if repetitions < 1 or inner < 1:
        raise UsageError("repetitions and inner must be >= 1.")
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repetitions):
        for name, fn in calls.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - start) / inner * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def time_guards(
    guards: Mapping[str, Guard],
    request: GuardRequest,
    response: GuardResponse,
    *,
    repetitions: int = 15,
    inner: int = 40,
) -> dict[str, float]:
    """Median microseconds per request spent in each guard's hooks (before + after)."""

    def hooks(guard: Guard) -> Callable[[], object]:
        kind = type(guard)
        before = kind.before is not Guard.before
        after = kind.after is not Guard.after

        def run() -> None:
            if before:
                guard.before(request)
            if after:
                guard.after(request, response)

        return run

    return time_calls(
        {name: hooks(g) for name, g in guards.items()}, repetitions=repetitions, inner=inner
    )
