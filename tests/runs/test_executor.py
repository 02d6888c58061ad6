from bastion.findings import RunRecord, Status
from bastion.plugins import Registry
from bastion.probes.context import NullProgress
from bastion.runs.executor import execute_plan
from bastion.runs.jobs import AssessmentJob
from bastion.runs.plan import make_plan

from .fakes import (
    AccuracyProbe,
    BrokenProbe,
    CrashingProbe,
    MemoryStore,
    threshold_target,
    toy_dataset,
)


def test_failures_become_error_findings_and_the_run_goes_on():
    reg = Registry().with_plugins(
        probes={
            "test.broken": BrokenProbe,
            "test.crash": CrashingProbe,
            "test.accuracy": AccuracyProbe,
        }
    )
    plan = make_plan([AssessmentJob(threshold_target(), toy_dataset())], "all", registry=reg)
    rec = RunRecord.new(name="r", seed=1, config_fingerprint="f")
    store = MemoryStore()
    execute_plan(plan, rec, store)
    by_probe = {f.probe_id: f for f in rec.findings}
    assert by_probe["test.broken"].status is Status.ERROR
    assert "the data went missing" in by_probe["test.broken"].summary
    assert by_probe["test.crash"].status is Status.ERROR
    assert "Internal error in test.crash (IndexError" in by_probe["test.crash"].summary
    assert by_probe["test.accuracy"].status is Status.NOT_VULNERABLE
    assert [key for _, key, _ in store.recorded] == plan.keys == rec.completed


def test_completed_probes_are_not_run_again():
    AccuracyProbe.calls.clear()
    reg = Registry().with_plugins(probes={"test.accuracy": AccuracyProbe})
    jobs = [
        AssessmentJob(threshold_target("a"), toy_dataset()),
        AssessmentJob(threshold_target("b"), toy_dataset()),
    ]
    plan = make_plan(jobs, "all", registry=reg)
    rec = RunRecord.new(name="r", seed=1, config_fingerprint="f")
    rec.completed = ["test.accuracy@a"]
    progress_seen = []

    def progress(*, total, description):
        bar = NullProgress(total=total, description=description)
        progress_seen.append(bar)
        return bar

    execute_plan(plan, rec, MemoryStore(), progress=progress)
    assert AccuracyProbe.calls == ["b"]
    assert progress_seen[0].total == 2 and progress_seen[0].completed == 2
