from pathlib import Path

import pytest

from bastion.findings import RunStatus, Severity, Status
from bastion.plugins import Registry
from bastion.runs.assessment import AssessmentRequest, run_assessment
from bastion.runs.config import ProbeSelection
from bastion.runs.jobs import AssessmentJob
from bastion.store import open_store

from .fakes import AccuracyProbe, InterruptingProbe, threshold_target, toy_dataset


def request(tmp_path: Path, **kw) -> AssessmentRequest:
    jobs = [
        AssessmentJob(threshold_target("a"), toy_dataset()),
        AssessmentJob(threshold_target("b"), toy_dataset()),
    ]
    return AssessmentRequest(
        name="t", jobs=jobs, fingerprint="fp-1", output_dir=tmp_path / "out", **kw
    )


def test_interrupted_run_resumes_from_finished_probes(tmp_path: Path):
    reg = Registry().with_plugins(
        probes={"test.accuracy": AccuracyProbe, "test.interrupt": InterruptingProbe}
    )
    store = open_store(root=tmp_path)
    AccuracyProbe.calls.clear()
    InterruptingProbe.armed = True
    with pytest.raises(KeyboardInterrupt):
        run_assessment(request(tmp_path), store=store, registry=reg)
    (interrupted,) = store.list_runs()
    assert interrupted.status is RunStatus.INTERRUPTED
    assert interrupted.completed == ["test.accuracy@a", "test.accuracy@b"]
    assert AccuracyProbe.calls == ["a", "b"]

    InterruptingProbe.armed = False
    outcome = run_assessment(request(tmp_path, fail_on=Severity.LOW), store=store, registry=reg)
    assert outcome.resumed_from == 2
    assert outcome.record.run_id == interrupted.run_id
    assert AccuracyProbe.calls == ["a", "b", "a", "b"]  # the interrupt probe subclasses it
    saved = store.get_run(interrupted.run_id)
    assert saved.status is RunStatus.COMPLETED and saved.finished_at is not None
    assert len(saved.findings) == 4 and sorted(saved.completed) == sorted(saved.planned)
    assert outcome.exit_code == 0 and saved.gate.passed

    fresh = run_assessment(request(tmp_path, fresh=True), store=store, registry=reg)
    assert fresh.record.run_id != interrupted.run_id and fresh.resumed_from == 0
    store.close()


def test_gate_fails_on_vulnerable_findings(tmp_path: Path):
    reg = Registry().with_plugins(probes={"test.accuracy": AccuracyProbe})
    store = open_store(root=tmp_path)
    selection = [ProbeSelection(id="test.accuracy", params={"threshold": 1.01})]
    outcome = run_assessment(
        request(tmp_path, probes=selection, fail_on=Severity.IMPORTANT), store=store, registry=reg
    )
    assert {f.status for f in outcome.record.findings} == {Status.VULNERABLE}
    assert outcome.exit_code == 1
    assert outcome.record.gate.failing == ["test.accuracy|a|", "test.accuracy|b|"]
    store.close()
