"""``bastion harden``: measure, apply a remedy, measure again, and say whether it helped.

:func:`run_harden` runs the probes a remedy names in
:attr:`~bastion.remedies.base.RemedyMeta.verified_by` on the original target, applies
the remedy (which returns a new target and never touches the original), and re-runs
the *same* probes with the *same* seed, parameters and data on the hardened target.
Both runs are ordinary :class:`~bastion.findings.run.RunRecord` objects in the store,
so ``bastion runs diff BEFORE AFTER`` works on them.

**Verification.** For every finding of the verifying probes (matched by probe and
variant), each ``robust_accuracy@budget`` metric -- and each ``certified_accuracy@radius``
metric of certifying probes such as ``evasion.certified_radius`` -- is compared before
and after. The remedy is *verified* when

* at least one verifying finding improved significantly at some budget no larger
  than the remedy's own budget (or the probe's tolerance when the remedy states none):
  the Wilson 95% intervals of before and after do not overlap and after is higher
  (a conservative test: non-overlapping 95% intervals imply a significant
  difference), or a finding went from vulnerable to not vulnerable; and
* no verifying finding got significantly worse at any budget, and no finding that was
  conclusive before became inconclusive (e.g. a new gradient-masking flag: a remedy
  that only hides gradients is not a fix).

Otherwise the outcome says the remedy did not fix the finding.

Examples
--------
>>> from bastion.findings import Interval
>>> significantly_higher(0.75, Interval(low=0.69, high=0.81), Interval(low=0.51, high=0.64))
True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.findings import Finding, Interval, Status
from bastion.findings.run import RunRecord
from bastion.plugins import Registry
from bastion.probes.context import NullProgress, ProbeContext, ProgressFactory
from bastion.remedies.base import Remedy, RemedyResult
from bastion.runs.assessment import AssessmentRequest, run_assessment
from bastion.runs.config import ProbeSelection
from bastion.runs.executor import RunStore
from bastion.runs.jobs import AssessmentJob

__all__ = [
    "BudgetChange",
    "FindingChange",
    "HardenOutcome",
    "HardenRequest",
    "run_harden",
    "significantly_higher",
]

log = logging.getLogger(__name__)
#: Metric name prefixes compared before and after; the rest of the name is the budget.
_PREFIXES = ("robust_accuracy@", "certified_accuracy@")


def significantly_higher(value: float, interval: Interval, other: Interval) -> bool:
    """True when ``interval`` (around ``value``) lies entirely above ``other``."""
    return value >= other.high and interval.low > other.high


@dataclass(frozen=True)
class BudgetChange:
    """Robust (or certified) accuracy at one budget, before and after (Wilson 95% intervals)."""

    budget: float
    before: float
    after: float
    before_interval: Interval | None
    after_interval: Interval | None
    metric: str = "robust_accuracy"

    @property
    def improved(self) -> bool:
        """After is significantly higher than before."""
        b, a = self.before_interval, self.after_interval
        return a is not None and b is not None and significantly_higher(self.after, a, b)

    @property
    def worsened(self) -> bool:
        """After is significantly lower than before."""
        b, a = self.before_interval, self.after_interval
        return a is not None and b is not None and significantly_higher(self.before, b, a)


@dataclass
class FindingChange:
    """One verifying finding (probe, variant) before and after the remedy."""

    probe_id: str
    variant: str
    before: Finding
    after: Finding | None
    budgets: list[BudgetChange] = field(default_factory=list)

    def clean_accuracy(self, finding: Finding | None) -> float | None:
        """The finding's ``clean_accuracy`` metric, if any."""
        return _metric(finding, "clean_accuracy")


def _metric(finding: Finding | None, name: str) -> float | None:
    if finding is None:
        return None
    for m in finding.metrics:
        if m.name == name and isinstance(m.value, int | float):
            return float(m.value)
    return None


@dataclass
class HardenRequest:
    """What :func:`run_harden` needs besides the store and registry.

    Evidence of the "after" run goes to ``output_dir`` (write its reports there),
    that of the "before" run to ``output_dir / "before"``. ``probe_params`` maps a
    verifying probe id to its parameters (the same ones run before and after);
    ``budget`` is the remedy's budget (``eps``), used to decide which budgets must
    improve; None uses every budget.
    """

    name: str
    job: AssessmentJob
    remedy: Remedy
    fingerprint: str
    seed: int = 0
    probe_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_dir: Path = Path("bastion-report")
    budget: float | None = None


@dataclass
class HardenOutcome:
    """Both runs, what the remedy did, and the verdict."""

    before: RunRecord
    after: RunRecord
    remedy: RemedyResult
    changes: list[FindingChange]
    verified: bool
    reason: str

    @property
    def exit_code(self) -> int:
        """0 when the re-run verified an improvement, 1 when it did not."""
        return 0 if self.verified else 1


def _selection(remedy: Remedy, params: dict[str, dict[str, Any]]) -> list[ProbeSelection]:
    return [ProbeSelection(id=pid, params=params.get(pid, {})) for pid in remedy.meta.verified_by]


def _compare(before: RunRecord, after: RunRecord, verifying: Sequence[str]) -> list[FindingChange]:
    later = {(f.probe_id, f.target, f.variant): f for f in after.findings}
    out = []
    for f in before.findings:
        if f.probe_id not in verifying:
            continue
        g = later.get((f.probe_id, f.target, f.variant))
        change = FindingChange(f.probe_id, f.variant, f, g)
        after_metrics = {m.name: m for m in (g.metrics if g else [])}
        for m in f.metrics:
            n = after_metrics.get(m.name)
            prefix = next((q for q in _PREFIXES if m.name.startswith(q)), None)
            if prefix is None or n is None:
                continue
            if not isinstance(m.value, int | float) or not isinstance(n.value, int | float):
                continue
            change.budgets.append(
                BudgetChange(
                    float(m.name[len(prefix) :]),
                    float(m.value),
                    float(n.value),
                    m.interval,
                    n.interval,
                    metric=prefix[:-1],
                )
            )
        out.append(change)
    return out


def _what(changes: list[BudgetChange]) -> str:
    """``"robust accuracy"``, ``"certified accuracy"`` or both, for a verdict sentence."""
    return " and ".join(sorted({b.metric.replace("_", " ") for b in changes}))


def _verdict(changes: list[FindingChange], budget: float | None) -> tuple[bool, str]:
    if not changes:
        return False, "the verifying probes produced no finding to compare"
    missing = [c.probe_id for c in changes if c.after is None]
    if missing:
        return False, f"the re-run produced no finding for {', '.join(missing)}"
    improved, problems = [], []
    for c in changes:
        assert c.after is not None
        if c.before.status is not Status.INCONCLUSIVE and c.after.status is Status.INCONCLUSIVE:
            problems.append(f"{c.probe_id} became inconclusive ({c.after.summary})")
        worse = [b for b in c.budgets if b.worsened]
        if worse:
            problems.append(f"{c.probe_id} {_what(worse)} fell at {[b.budget for b in worse]}")
        if c.before.status is Status.VULNERABLE and c.after.status is Status.NOT_VULNERABLE:
            improved.append(f"{c.probe_id} is no longer vulnerable")
            continue
        better = [
            b for b in c.budgets if b.improved and (budget is None or b.budget <= budget + 1e-12)
        ]
        if better:
            improved.append(
                f"{c.probe_id} {_what(better)} rose significantly at {[b.budget for b in better]}"
            )
    if problems:
        return False, "; ".join(problems)
    if not improved:
        scope = f" at budgets up to {budget:g}" if budget is not None else ""
        return False, (
            "no verifying probe showed a significant robust- or certified-accuracy gain"
            f"{scope} (non-overlapping Wilson 95% intervals)"
        )
    return True, "; ".join(improved)


def run_harden(
    request: HardenRequest,
    *,
    store: RunStore,
    registry: Registry,
    progress: ProgressFactory = NullProgress,
) -> HardenOutcome:
    """Probe, apply the remedy, probe again; store both runs (see the module docstring)."""
    meta = request.remedy.meta
    for pid in meta.verified_by:
        registry.probe(pid)  # a clear UsageError when a verifying probe is not installed
    probes = _selection(request.remedy, request.probe_params)
    job = request.job

    def assess(target_job: AssessmentJob, phase: str) -> RunRecord:
        outcome = run_assessment(
            AssessmentRequest(
                name=f"{request.name} ({phase} {meta.id})",
                jobs=[target_job],
                fingerprint=f"harden|{meta.id}|{phase}|{request.fingerprint}",
                seed=request.seed,
                probes=probes,
                output_dir=request.output_dir / "before"
                if phase == "before"
                else request.output_dir,
                fresh=True,
            ),
            store=store,
            registry=registry,
            progress=progress,
        )
        return outcome.record

    before = assess(job, "before")
    context = ProbeContext(seed=request.seed, progress=progress, output_dir=request.output_dir)
    with progress(total=1, description=f"Applying {meta.id}") as bar:
        result = request.remedy.apply(job.target, job.data, context)
        bar.advance(1)
    hardened_job = AssessmentJob(
        result.target,
        job.data,
        security_decision=job.security_decision,
        artifact=None,
        description=f"{job.description} Hardened by {meta.id}.".strip(),
    )
    after = assess(hardened_job, "after")
    after.options["remedy"] = {"id": meta.id, "changes": result.changes, "before": before.run_id}
    store.save_run(after)
    changes = _compare(before, after, meta.verified_by)
    # The remedy records the budget it trained for in the units it resolved (e.g. raw grey
    # levels on [0, 255] images); that, not the requested number, bounds the comparison.
    resolved = result.changes.get("eps")
    budget = float(resolved) if isinstance(resolved, int | float) else request.budget
    verified, reason = _verdict(changes, budget)
    log.info("harden %s: verified=%s (%s)", meta.id, verified, reason)
    return HardenOutcome(before, after, result, changes, verified, reason)
