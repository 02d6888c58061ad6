"""One assessment from jobs to a finished run record: plan, resume, execute, gate.

Reports are written by the caller (``bastion.report.write_reports``); the runs
layer does not depend on the renderers.

Examples
--------
>>> # See bastion.cli.assess_cmd and bastion.runs.demo for complete uses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from bastion.findings import Severity
from bastion.findings.run import RunRecord, RunStatus
from bastion.plugins import Registry
from bastion.probes.context import NullProgress, ProgressFactory
from bastion.runs.config import ProbeSelection
from bastion.runs.executor import RunStore, execute_plan
from bastion.runs.jobs import AssessmentJob
from bastion.runs.plan import make_plan

__all__ = ["AssessmentOutcome", "AssessmentRequest", "run_assessment"]

log = logging.getLogger(__name__)


@dataclass
class AssessmentRequest:
    """Everything :func:`run_assessment` needs besides the store."""

    name: str
    jobs: Sequence[AssessmentJob]
    fingerprint: str
    seed: int = 0
    probes: Literal["all"] | Sequence[ProbeSelection] = "all"
    exclude: Sequence[str] = ()
    output_dir: Path = Path("bastion-report")
    fail_on: Severity | None = None
    fresh: bool = False


@dataclass
class AssessmentOutcome:
    """The finished run and how many probes it took over from an interrupted one."""

    record: RunRecord
    resumed_from: int = 0

    @property
    def exit_code(self) -> int:
        """0 when the gate passed, 1 when it failed."""
        return 0 if self.record.gate.passed else 1


def _start_or_resume(
    request: AssessmentRequest, store: RunStore, planned: list[str]
) -> tuple[RunRecord, int]:
    if not request.fresh:
        previous = store.find_resumable(request.fingerprint)
        if previous is not None and sorted(previous.planned) == sorted(planned):
            log.info("resuming run %s (%d probes done)", previous.run_id, len(previous.completed))
            previous.status = RunStatus.RUNNING
            previous.finished_at = None
            return previous, len(previous.completed)
    return RunRecord.new(
        name=request.name, seed=request.seed, config_fingerprint=request.fingerprint
    ), 0


def run_assessment(
    request: AssessmentRequest,
    *,
    store: RunStore,
    registry: Registry,
    progress: ProgressFactory = NullProgress,
) -> AssessmentOutcome:
    """Plan, run (or resume) and report one assessment."""
    plan = make_plan(request.jobs, request.probes, registry=registry, exclude=request.exclude)
    record, resumed = _start_or_resume(request, store, plan.keys)
    record.targets = [job.target_summary() for job in request.jobs]
    record.datasets = list({job.data.name: job.dataset_summary() for job in request.jobs}.values())
    record.planned = plan.keys
    record.skipped = plan.skipped
    record.options = {
        "probes": "all" if request.probes == "all" else [p.id for p in request.probes],
        "exclude": list(request.exclude),
        "fail_on": request.fail_on.value if request.fail_on else None,
    }
    store.save_run(record)
    request.output_dir.mkdir(parents=True, exist_ok=True)
    try:
        execute_plan(plan, record, store, output_dir=request.output_dir, progress=progress)
    except KeyboardInterrupt:
        record.gate = record.evaluate_gate(request.fail_on)
        store.finish_run(record.run_id, RunStatus.INTERRUPTED, record.gate)
        raise
    record.gate = record.evaluate_gate(request.fail_on)
    record.status = RunStatus.COMPLETED
    record.finished_at = datetime.now(UTC)
    store.finish_run(record.run_id, RunStatus.COMPLETED, record.gate)
    return AssessmentOutcome(record=record, resumed_from=resumed)
