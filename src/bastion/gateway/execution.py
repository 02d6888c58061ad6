"""Where a model's pipeline runs: on the event loop (inline) or in the worker threadpool.

Handing a request to a worker thread and back costs a few hundred microseconds of CPU
on a small machine (queueing, two thread wake-ups, the GIL changing hands, AnyIO's
bookkeeping), measured with ``bench/gateway.py``: about as much as the whole guard
pipeline of a small model. For a model that answers in well under a millisecond that
hop is most of the gateway's overhead, so the pipeline is better run directly on the
event loop; the audit write still leaves the loop (see
:mod:`bastion.gateway.audit_writer`), so a slow store never blocks it. A slow model
run inline would stall every other request and health check of the worker while it
computes, and a model behind HTTP waits on the network: those stay in the threadpool.

``execution`` in a model's config chooses:

* ``threadpool`` — always a worker thread (the safe choice for large models);
* ``inline`` — always the event loop;
* ``auto`` (default) — inline when the model is local (not ``http``), none of its
  guards waits on a store or the network (Redis limits, the review queue) or runs
  further models (detectors, plugins), and its median time for one row — measured
  when the gateway starts, on a row of zeros of the input shape (``TIMING_CALLS``
  calls, no query budget charged) — is below ``INLINE_BELOW_S``; else the threadpool.

Examples
--------
>>> from bastion.targets import FakeTarget
>>> decision = choose_execution(FakeTarget.linear(n_features=3, n_classes=2, seed=0), "auto")
>>> decision.inline, decision.mode
(True, 'auto')
>>> choose_execution(FakeTarget.linear(n_features=3, n_classes=2, seed=0), "threadpool").inline
False
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bastion.targets.base import Capability, Target

__all__ = ["INLINE_BELOW_S", "TIMING_CALLS", "ExecutionChoice", "choose_execution"]

Execution = Literal["auto", "inline", "threadpool"]

INLINE_BELOW_S = 0.002
"""``auto`` runs a model inline when one row takes less than this (median)."""

TIMING_CALLS = 15
"""Calls timed by ``auto`` (after two warm-up calls)."""


@dataclass(frozen=True)
class ExecutionChoice:
    """How one model's requests are run, and why."""

    inline: bool
    mode: Execution
    median_row_s: float | None = None
    reason: str = ""


def _one_row_seconds(target: Target) -> float:
    """Median seconds of the adapter's own call on one row of zeros (no budget charged)."""
    spec = target.input_spec
    row = np.zeros((1, *spec.shape), dtype=np.dtype(spec.dtype))
    call = (
        target._predict_proba
        if Capability.PROBABILITIES in target.capabilities
        else target._predict_labels
    )
    times = []
    for i in range(TIMING_CALLS + 2):
        t0 = time.perf_counter()
        call(row)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def choose_execution(
    target: Target, mode: Execution, *, blocking_guards: Sequence[str] = ()
) -> ExecutionChoice:
    """Decide where ``target``'s pipeline runs (see the module docstring).

    Parameters
    ----------
    target : Target
        The served model.
    mode : {"auto", "inline", "threadpool"}
        The configured choice.
    blocking_guards : sequence of str
        Ids of the model's guards that must not run on the event loop.
    """
    if mode != "auto":
        return ExecutionChoice(inline=mode == "inline", mode=mode, reason="configured")
    if getattr(target, "kind", "") == "http":
        return ExecutionChoice(False, mode, reason="the model is behind HTTP")
    if blocking_guards:
        names = ", ".join(sorted(set(blocking_guards)))
        return ExecutionChoice(False, mode, reason=f"guards that wait or compute more: {names}")
    try:
        median = _one_row_seconds(target)
    except Exception as err:  # a model that cannot be timed is not inlined
        return ExecutionChoice(False, mode, reason=f"could not time the model ({err})")
    inline = median < INLINE_BELOW_S
    relation = "below" if inline else "at or above"
    return ExecutionChoice(
        inline,
        mode,
        median_row_s=median,
        reason=f"one row takes {1e3 * median:.3f} ms, {relation} {1e3 * INLINE_BELOW_S:g} ms",
    )
