import pytest

from bastion.errors import ConfigError
from bastion.plugins import Registry
from bastion.runs.config import ProbeSelection
from bastion.runs.jobs import AssessmentJob
from bastion.runs.plan import make_plan

from .fakes import AccuracyProbe, GradientProbe, threshold_target, toy_dataset


def registry() -> Registry:
    return Registry().with_plugins(
        probes={"test.accuracy": AccuracyProbe, "test.gradient": GradientProbe}
    )


def test_all_that_apply_skips_with_reason_and_alternative():
    job = AssessmentJob(threshold_target(), toy_dataset())
    plan = make_plan([job], "all", registry=registry())
    assert plan.keys == ["test.accuracy@thr"]
    (skip,) = plan.skipped
    assert skip.probe_id == "test.gradient"
    assert "needs gradients" in skip.reason and "use test.accuracy" in skip.reason


def test_selection_parameters_are_validated_before_work_starts():
    job = AssessmentJob(threshold_target(), toy_dataset())
    sel = [ProbeSelection(id="test.accuracy", params={"threshold": "high"})]
    with pytest.raises(ConfigError, match="'threshold' parameter of test.accuracy"):
        make_plan([job], sel, registry=registry())
    with pytest.raises(ConfigError, match="has no parameter 'thresh'"):
        make_plan(
            [job], [ProbeSelection(id="test.accuracy", params={"thresh": 1})], registry=registry()
        )
    with pytest.raises(ConfigError, match="not installed; known probes: test.accuracy"):
        make_plan([job], [ProbeSelection(id="evasion.nope")], registry=registry())
    with pytest.raises(ConfigError, match="'exclude' names unknown"):
        make_plan([job], "all", registry=registry(), exclude=["nope"])


def test_seeds_depend_on_probe_and_target_not_order():
    jobs = [
        AssessmentJob(threshold_target("a"), toy_dataset()),
        AssessmentJob(threshold_target("b"), toy_dataset()),
    ]
    plan = make_plan(jobs, "all", registry=registry())
    seeds = {item.key: item.seed(7) for item in plan.items}
    reversed_plan = make_plan(list(reversed(jobs)), "all", registry=registry())
    assert {item.key: item.seed(7) for item in reversed_plan.items} == seeds
    assert len(set(seeds.values())) == 2
