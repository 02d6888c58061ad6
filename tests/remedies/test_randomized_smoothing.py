"""evasion.randomized_smoothing: noise fine-tuning, the smoothed target, harden verification."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bastion.catalog import load_catalog
from bastion.certification import SmoothedTarget
from bastion.data.dataset import Dataset
from bastion.errors import DataError, TargetError, UsageError
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.probes.evasion.certified import CertifiedRadiusProbe
from bastion.remedies.randomized_smoothing import RandomizedSmoothing
from bastion.runs.harden import HardenRequest, run_harden
from bastion.runs.jobs import AssessmentJob
from bastion.store import open_store
from bastion.testing import check_remedy
from tests.certification.linear import fake_linear
from tests.remedies.models import digits, digits_cnn, one_thread

#: Strong enough for a measurable change on 400 training rows in about half a second.
TRAIN = {"sigma": 0.5, "epochs": 8, "lr": 3e-3, "batch_size": 64}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def test_keeps_the_remedy_contract() -> None:
    problems = check_remedy(
        RandomizedSmoothing, load_catalog(), probe_ids=["evasion.certified_radius"]
    )
    assert problems == []
    assert RandomizedSmoothing.meta.verified_by == ("evasion.certified_radius",)


def test_noise_training_helps_under_noise_and_leaves_the_original_alone() -> None:
    target = digits_cnn()
    weights = {k: v.clone() for k, v in target.module.state_dict().items()}
    result = RandomizedSmoothing(**TRAIN).apply(target, digits(), ProbeContext(seed=0))
    for k, v in target.module.state_dict().items():
        assert torch.equal(v, weights[k]), "the original module was modified"
    g = result.target
    assert isinstance(g, SmoothedTarget) and g.name == target.name and g.sigma == 0.5
    assert g.base is not target and g.base.module is not target.module  # type: ignore[attr-defined]
    ch = result.changes
    assert ch["epochs"] == 8 and ch["train_rows"] == 400 and ch["train_seconds"] > 0
    assert ch["noisy_accuracy_after"] > ch["noisy_accuracy_before"] + 0.03, ch
    assert ch["clean_accuracy_after"] > 0.9
    for key in ("clean_accuracy", "noisy_accuracy"):
        for when in ("before", "after"):
            lo, hi = ch[f"{key}_ci_{when}"]
            assert lo <= ch[f"{key}_{when}"] <= hi
    assert ch["predict_n"] == 100 and ch["predict_alpha"] == 0.001 and ch["units"] == "raw"
    assert "fine-tuned 8 epoch(s)" in result.notes


def test_same_seed_same_model() -> None:
    kw = {**TRAIN, "epochs": 1, "seed": 5}
    a = RandomizedSmoothing(**kw).apply(digits_cnn(), digits(), ProbeContext()).target
    b = RandomizedSmoothing(**kw).apply(digits_cnn(), digits(), ProbeContext()).target
    for p, q in zip(a.base.module.parameters(), b.base.module.parameters(), strict=True):  # type: ignore[attr-defined]
        assert torch.equal(p, q)


def test_epochs_zero_smooths_any_target_and_other_targets_cannot_be_trained() -> None:
    base = fake_linear(labels_only=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    y = base.predict(x)
    data = Dataset("lin", x[:20], y[:20], x[20:], y[20:], classes=["neg", "pos"])
    result = RandomizedSmoothing(epochs=0, sigma=0.1, n=50).apply(base, data, ProbeContext())
    assert isinstance(result.target, SmoothedTarget) and result.target.base is base
    assert result.changes["train_seconds"] == 0.0 and result.changes["train_rows"] == 0
    assert result.changes["clean_accuracy_before"] == result.changes["clean_accuracy_after"] == 1.0
    with pytest.raises(TargetError, match="epochs=0"):
        RandomizedSmoothing(epochs=1).apply(base, data, ProbeContext())


def test_bad_parameters_and_data() -> None:
    for params, match in (
        ({"sigma": 0}, "'sigma' parameter"),
        ({"epochs": -1}, "'epochs' parameter"),
        ({"alpha": 1.0}, "'alpha' parameter"),
        ({"units": "pixels"}, "'units' parameter"),
        ({"bogus": 1}, "no parameter 'bogus'"),
    ):
        with pytest.raises(UsageError, match=match):
            RandomizedSmoothing(**params).apply(digits_cnn(), digits(), ProbeContext())
    empty = replace(digits(), x_train=digits().x_train[:0], y_train=digits().y_train[:0])
    with pytest.raises(DataError, match="no training rows"):
        RandomizedSmoothing(epochs=1).apply(digits_cnn(), empty, ProbeContext())


def test_bastion_harden_verifies_it_with_certified_accuracy(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    registry = Registry().with_plugins(
        probes={"evasion.certified_radius": CertifiedRadiusProbe},
        remedies={"evasion.randomized_smoothing": RandomizedSmoothing},
    )
    params = {"sigma": 0.5, "n0": 10, "n": 100, "n_samples": 100, "radii": [0, 0.25]}
    request = HardenRequest(
        name="t",
        job=AssessmentJob(digits_cnn(), digits()),
        remedy=RandomizedSmoothing(**TRAIN),
        fingerprint="f",
        probe_params={"evasion.certified_radius": params},
        output_dir=tmp_path / "out",
    )
    out = run_harden(request, store=store, registry=registry)
    assert out.verified and out.exit_code == 0, out.reason
    assert "certified accuracy rose significantly at [0.25]" in out.reason
    [change] = out.changes
    at = {b.budget: b for b in change.budgets}
    assert set(at) == {0.0, 0.25} and all(b.metric == "certified_accuracy" for b in at.values())
    assert at[0.25].improved and at[0.25].after > at[0.25].before
    assert out.after.options["remedy"]["changes"]["sigma"] == 0.5
    store.close()
