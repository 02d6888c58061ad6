"""bastion.runs.harden: probe, remedy, probe again, verdict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bastion.data.dataset import Dataset
from bastion.findings import CatalogRefs, Interval
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.evasion.gradient import PGDProbe
from bastion.remedies import AdversarialTraining, Remedy, RemedyMeta, RemedyResult
from bastion.runs.harden import HardenRequest, run_harden, significantly_higher
from bastion.runs.jobs import AssessmentJob
from bastion.store import diff_runs, open_store
from bastion.targets.base import Target
from tests.remedies.models import digits_cnn, digits_full, one_thread


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


FAST = {"n_samples": 300, "budgets": [0.1, 0.3], "steps": 5, "sanity_samples": 8}


class _Identity(Remedy):
    """Returns the target unchanged: a remedy that fixes nothing."""

    meta: ClassVar[RemedyMeta] = RemedyMeta(
        id="test.identity", title="Identity", catalog=CatalogRefs(), verified_by=("evasion.pgd",)
    )

    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        return RemedyResult(target=target, changes={})


def _registry() -> Registry:
    return Registry().with_plugins(probes={"evasion.pgd": PGDProbe})


def _request(remedy: Remedy, tmp_path: Path, **kw: Any) -> HardenRequest:
    return HardenRequest(
        name="t",
        job=AssessmentJob(digits_cnn(), digits_full()),
        remedy=remedy,
        fingerprint="f",
        probe_params={"evasion.pgd": FAST},
        output_dir=tmp_path / "out",
        **kw,
    )


def test_adversarial_training_is_verified_and_both_runs_are_stored(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    remedy = AdversarialTraining(epochs=3, eps=0.1)
    remedy.meta = RemedyMeta(  # verify with PGD only, to keep the test fast
        id=remedy.meta.id, title="t", catalog=CatalogRefs(), verified_by=("evasion.pgd",)
    )
    out = run_harden(_request(remedy, tmp_path, budget=0.1), store=store, registry=_registry())
    assert out.verified and out.exit_code == 0, out.reason
    [change] = out.changes
    at = {b.budget: b for b in change.budgets}
    assert at[0.1].after > at[0.1].before and at[0.1].improved
    stored_before, stored_after = store.get_run(out.before.run_id), store.get_run(out.after.run_id)
    assert stored_after.options["remedy"]["id"] == "evasion.adversarial_training"
    assert stored_after.options["remedy"]["before"] == out.before.run_id
    diff = diff_runs(stored_before, stored_after)
    assert not diff.added and not diff.removed
    store.close()


def test_a_remedy_that_changes_nothing_is_not_verified(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    out = run_harden(_request(_Identity(), tmp_path), store=store, registry=_registry())
    assert not out.verified and out.exit_code == 1
    assert "no verifying probe showed a significant" in out.reason
    assert all(not b.improved for b in out.changes[0].budgets)
    store.close()


def test_unknown_verifying_probe_is_a_usage_error(tmp_path: Path) -> None:
    from bastion.errors import UsageError

    store = open_store("sqlite://")
    with pytest.raises(UsageError, match="evasion.pgd"):
        run_harden(_request(_Identity(), tmp_path), store=store, registry=Registry())


def test_significance_rule() -> None:
    assert significantly_higher(0.8, Interval(low=0.7, high=0.9), Interval(low=0.4, high=0.6))
    assert not significantly_higher(
        0.65, Interval(low=0.55, high=0.75), Interval(low=0.4, high=0.6)
    )


class _IdentityAt(_Identity):
    """Fixes nothing, but reports the budget it resolved (as a real remedy does)."""

    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        return RemedyResult(target=target, changes={"eps": 0.05})


def test_the_remedys_resolved_budget_bounds_the_verdict(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    out = run_harden(
        _request(_IdentityAt(), tmp_path, budget=0.3), store=store, registry=_registry()
    )
    assert not out.verified
    assert "at budgets up to 0.05" in out.reason
    store.close()
