"""evasion.adversarial_training: PGD-AT and TRADES fine-tuning of a torch target copy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch

from bastion.attacks.evasion.pgd import pgd
from bastion.catalog import load_catalog
from bastion.errors import DataError, TargetError, UsageError
from bastion.plugins import Registry
from bastion.probes import ProbeContext
from bastion.remedies import BUILTIN_REMEDIES, AdversarialTraining
from bastion.targets import FakeTarget
from bastion.testing import check_remedy
from tests.remedies.models import digits, digits_cnn, one_thread


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


PROBES = ["evasion.pgd", "evasion.apgd"]


def _robust(target: torch.nn.Module, eps: float) -> float:
    d = digits()
    x = torch.from_numpy(d.x_test[:200]).float()
    y = torch.from_numpy(d.y_test[:200]).long()
    r = pgd(target, x, y, eps=eps, steps=10, seed=1)
    with torch.no_grad():
        clean_ok = target(x).argmax(1) == y
    return float((clean_ok & ~r.success).float().mean())


def test_keeps_the_remedy_contract() -> None:
    assert check_remedy(AdversarialTraining, load_catalog(), probe_ids=PROBES) == []
    registry = Registry().with_plugins(
        remedies={"evasion.adversarial_training": AdversarialTraining}
    )
    assert registry.remedies["evasion.adversarial_training"] is AdversarialTraining
    assert BUILTIN_REMEDIES["evasion.adversarial_training"] is AdversarialTraining


def test_pgd_at_raises_robust_accuracy_and_leaves_the_original_alone() -> None:
    target = digits_cnn()
    weights = {k: v.clone() for k, v in target.module.state_dict().items()}
    result = AdversarialTraining(epochs=3, eps=0.1).apply(target, digits(), ProbeContext(seed=0))
    for k, v in target.module.state_dict().items():
        assert torch.equal(v, weights[k]), "the original module was modified"
    assert result.target is not target and result.target.module is not target.module
    assert result.target.name == target.name
    ch = result.changes
    assert ch["method"] == "pgd" and ch["eps"] == 0.1 and ch["loop"] == "built-in"
    assert ch["clean_accuracy_after"] > 0.85
    lo, hi = ch["clean_accuracy_after_ci"]
    assert lo <= ch["clean_accuracy_after"] <= hi
    before, after = _robust(target.module, 0.1), _robust(result.target.module, 0.1)
    assert after > before + 0.05, (before, after)


def test_trades_trains_and_records_beta() -> None:
    r = AdversarialTraining(method="trades", beta=3.0, epochs=1, steps=3).apply(
        digits_cnn(), digits(), ProbeContext(seed=0)
    )
    assert r.changes["method"] == "trades" and r.changes["beta"] == 3.0
    assert r.changes["clean_accuracy_after"] > 0.5
    assert "TRADES" in r.notes


def test_same_seed_same_model() -> None:
    a = AdversarialTraining(epochs=1, steps=2, seed=5).apply(digits_cnn(), digits(), ProbeContext())
    b = AdversarialTraining(epochs=1, steps=2, seed=5).apply(digits_cnn(), digits(), ProbeContext())
    for (_, p), (_, q) in zip(
        a.target.module.state_dict().items(), b.target.module.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q)


def test_user_loop_gets_the_inner_attack() -> None:
    seen: list[float] = []

    def loop(module, x, y, perturb, seed):  # type: ignore[no-untyped-def]
        xb = torch.from_numpy(x[:16]).float()
        adv = perturb(module, xb, torch.from_numpy(y[:16]).long())
        seen.append(float((adv - xb).abs().max()))
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
        return module

    r = AdversarialTraining(loop=loop, eps=0.05, steps=3).apply(
        digits_cnn(), digits(), ProbeContext()
    )
    assert r.changes["loop"] == "user"
    assert 0.0 < seen[0] <= 0.05 + 1e-6


def test_l2_budget_is_respected() -> None:
    def loop(module, x, y, perturb, seed):  # type: ignore[no-untyped-def]
        xb = torch.from_numpy(x[:16]).float()
        adv = perturb(module, xb, torch.from_numpy(y[:16]).long())
        norms = (adv - xb).flatten(1).norm(dim=1)
        assert float(norms.max()) <= 0.5 + 1e-5
        return module

    AdversarialTraining(loop=loop, norm="l2", eps=0.5).apply(digits_cnn(), digits(), ProbeContext())


@pytest.mark.parametrize(
    "params",
    [{"eps": 0}, {"eps": 2.0}, {"method": "mart"}, {"epochs": 0}, {"loop": 3}, {"nope": 1}],
)
def test_bad_parameters_are_usage_errors(params: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="evasion.adversarial_training"):
        AdversarialTraining(**params).apply(digits_cnn(), digits(), ProbeContext())


def test_non_torch_target_and_missing_training_data() -> None:
    fake = FakeTarget.linear(n_features=4, n_classes=2)
    with pytest.raises(TargetError, match="torch"):
        AdversarialTraining().apply(fake, digits(), ProbeContext())
    empty = replace(
        digits(), x_train=np.zeros((0, 1, 8, 8), np.float32), y_train=np.zeros(0, np.int64)
    )
    with pytest.raises(DataError, match="training rows"):
        AdversarialTraining().apply(digits_cnn(), empty, ProbeContext())
