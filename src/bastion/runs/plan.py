"""Planning: which probes run on which target, and why the others do not.

A plan is the cross product of jobs and selected probes, minus the pairs a probe
cannot do (a gradient attack on an HTTP endpoint), each of which is kept with the
reason and the alternative to use.

Examples
--------
>>> from bastion.plugins import default_registry
>>> from bastion.targets import FakeTarget
>>> from bastion.data.demo import load_breast_cancer_dataset
>>> from bastion.runs.jobs import AssessmentJob
>>> import numpy as np
>>> data = load_breast_cancer_dataset()
>>> t = FakeTarget(lambda x: np.tile([0.3, 0.7], (len(x), 1)),
...                input_spec=__import__("bastion").targets.InputSpec(shape=(30,)),
...                classes=data.classes, name="t")
>>> plan = make_plan([AssessmentJob(t, data)], "all", registry=default_registry())
>>> "exposure.query_limits" in [s.probe_id for s in plan.skipped]  # no HTTP endpoint
True
>>> "robustness.noise" in [item.probe.meta.id for item in plan.items]
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bastion.errors import ConfigError, UsageError
from bastion.findings.run import SkippedProbe
from bastion.plugins import Registry
from bastion.probes.base import Probe
from bastion.runs.config import ProbeSelection
from bastion.runs.jobs import AssessmentJob

__all__ = ["Plan", "PlannedProbe", "make_plan"]


@dataclass
class PlannedProbe:
    """One probe to run on one job."""

    probe: Probe
    job: AssessmentJob

    @property
    def key(self) -> str:
        """``probe_id@target``: how the store tracks completion for resume."""
        return f"{self.probe.meta.id}@{self.job.target.name}"

    def seed(self, run_seed: int) -> int:
        """A per-probe seed derived from the run seed, so order never changes results."""
        digest = hashlib.sha256(f"{run_seed}|{self.key}".encode()).digest()
        return int.from_bytes(digest[:4], "big")


@dataclass
class Plan:
    """Probes to run and probes skipped."""

    items: list[PlannedProbe] = field(default_factory=list)
    skipped: list[SkippedProbe] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        """Keys of every planned item, in order."""
        return [item.key for item in self.items]


def _selected(
    selection: Literal["all"] | Sequence[ProbeSelection],
    registry: Registry,
    exclude: Sequence[str],
) -> list[tuple[type[Probe], dict[str, Any]]]:
    unknown = [e for e in exclude if e not in registry.probes]
    if unknown:
        raise ConfigError(
            f"'exclude' names unknown probes {unknown}; known: {list(registry.probes)}."
        )
    if selection == "all":
        return [(cls, {}) for pid, cls in registry.probes.items() if pid not in exclude]
    chosen = []
    for sel in selection:
        if sel.id not in registry.probes:
            raise ConfigError(
                f"'probes' names {sel.id!r}, which is not installed; known probes: "
                f"{', '.join(registry.probes)}."
            )
        if sel.id not in exclude:
            chosen.append((registry.probes[sel.id], dict(sel.params)))
    return chosen


def make_plan(
    jobs: Sequence[AssessmentJob],
    selection: Literal["all"] | Sequence[ProbeSelection],
    *,
    registry: Registry,
    exclude: Sequence[str] = (),
) -> Plan:
    """Decide what runs where.

    Parameter errors surface here, before any work starts, as
    :class:`~bastion.errors.ConfigError`.
    """
    plan = Plan()
    for cls, params in _selected(selection, registry, exclude):
        probe = cls(**params)
        try:
            probe.validated_params()
        except UsageError as err:
            raise ConfigError(str(err)) from None
        for job in jobs:
            reason = probe.not_applicable_reason(job.target)
            if reason is None:
                plan.items.append(PlannedProbe(cls(**params), job))
            else:
                plan.skipped.append(
                    SkippedProbe(probe_id=cls.meta.id, target=job.target.name, reason=reason)
                )
    return plan
