"""The local executor: runs planned probes one by one, saving each as it finishes.

Every finished probe is written to the store at once (``Store.record_probe``), so
a run stopped by Ctrl-C or killed outright resumes from the probes already done.
A probe that fails never takes the run down with it: its failure becomes a finding
with status ``error`` and the reason, and the run goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from bastion.errors import BastionError
from bastion.findings import Finding, Status
from bastion.findings.run import GateResult, RunRecord, RunStatus
from bastion.probes.context import NullProgress, ProbeContext, ProgressFactory
from bastion.runs.plan import Plan, PlannedProbe

__all__ = ["ProbeStore", "RunStore", "execute_plan", "run_planned_probe"]

log = logging.getLogger(__name__)


class ProbeStore(Protocol):
    """The part of the store the executor needs."""

    def record_probe(self, run_id: str, planned_key: str, findings: list[Finding]) -> None:
        """Persist one probe's findings and mark it completed."""
        ...


class RunStore(ProbeStore, Protocol):
    """The part of :class:`bastion.store.Store` an assessment needs."""

    def save_run(self, record: RunRecord) -> None:
        """Insert or update a run and its findings."""
        ...

    def finish_run(self, run_id: str, status: RunStatus, gate: GateResult) -> None:
        """Mark a run finished (or interrupted) with its gate result."""
        ...

    def find_resumable(self, config_fingerprint: str) -> RunRecord | None:
        """The newest unfinished run with this fingerprint."""
        ...


def _error_finding(item: PlannedProbe, seed: int, message: str) -> Finding:
    return Finding(
        probe_id=item.probe.meta.id,
        title=item.probe.meta.title,
        target=item.job.target.name,
        status=Status.ERROR,
        summary=message,
        catalog=item.probe.meta.catalog,
        reproduction={"seed": seed, "parameters": dict(item.probe.params)},  # type: ignore[arg-type]
    )


def run_planned_probe(item: PlannedProbe, context: ProbeContext) -> list[Finding]:
    """Run one probe, turning every failure into an ``error`` finding."""
    probe, job = item.probe, item.job
    try:
        findings = probe.run(job.target, job.data, context)
    except BastionError as err:
        log.info("probe %s on %s failed: %s", item.key, job.target.name, err)
        return [_error_finding(item, context.seed, str(err))]
    except Exception as err:  # a probe bug must not lose the rest of the run
        log.exception("probe %s crashed", item.key)
        return [
            _error_finding(
                item,
                context.seed,
                f"Internal error in {probe.meta.id} ({type(err).__name__}: {err}); run with "
                "--verbose for details and report it.",
            )
        ]
    if not findings:
        return [_error_finding(item, context.seed, f"{probe.meta.id} returned no findings.")]
    return findings


def execute_plan(
    plan: Plan,
    record: RunRecord,
    store: ProbeStore,
    *,
    output_dir: Path | None = None,
    progress: ProgressFactory = NullProgress,
) -> RunRecord:
    """Run every planned probe not yet in ``record.completed``; update ``record`` in place."""
    done = set(record.completed)
    pending = [item for item in plan.items if item.key not in done]
    with progress(total=len(plan.items), description="Assessment") as overall:
        overall.advance(len(plan.items) - len(pending))
        for item in pending:
            overall.update(description=f"Assessment: {item.key}")
            context = ProbeContext(
                seed=item.seed(record.seed),
                output_dir=output_dir,
                progress=progress,
                security_decision=item.job.security_decision,
            )
            findings = run_planned_probe(item, context)
            store.record_probe(record.run_id, item.key, findings)
            record.findings.extend(findings)
            record.completed.append(item.key)
            overall.advance()
        overall.update(description="Assessment")
    return record
