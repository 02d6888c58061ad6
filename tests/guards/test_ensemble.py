"""input.ensemble_disagreement: members, calibration, decisions."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from bastion.attacks.evasion.pgd import pgd
from bastion.catalog import load_catalog
from bastion.errors import UsageError
from bastion.guards.base import Action, GuardRequest
from bastion.guards.ensemble import EnsembleDisagreementGuard, disagreement
from bastion.plugins import Registry
from bastion.targets import FakeTarget
from bastion.testing import check_guard
from tests.remedies.models import digits, digits_cnn, one_thread


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def test_keeps_the_guard_contract() -> None:
    assert check_guard(EnsembleDisagreementGuard, load_catalog()) == []
    reg = Registry().with_plugins(guards={"input.ensemble_disagreement": EnsembleDisagreementGuard})
    assert reg.guards["input.ensemble_disagreement"] is EnsembleDisagreementGuard


def test_disagreement_score() -> None:
    same = np.array([[[0.9, 0.1]], [[0.9, 0.1]]])
    assert disagreement(same).tolist() == [0.0]
    assert disagreement(np.array([[[1.0, 0.0]], [[0.0, 1.0]]])).tolist() == [1.0]


def test_retrained_copies_disagree_on_transferred_pgd() -> None:
    target, d = digits_cnn(), digits()
    guard = EnsembleDisagreementGuard.from_target(
        target, d.x_train[:250], d.y_train[:250], d.x_test[:200], n_copies=2, seed=0, fpr=0.05
    )
    held_out = guard.scores(d.x_test[200:400])
    assert float((held_out > guard.threshold).mean()) < 0.15
    x = torch.from_numpy(d.x_test[200:300])
    y = torch.from_numpy(d.y_test[200:300]).long()
    r = pgd(target.module, x, y, eps=0.15, steps=20, seed=0)
    adv = r.x_adv[r.success].numpy()
    assert len(adv) > 10
    adv_scores = guard.scores(adv)
    # Transferred examples spread the members' answers more than clean rows do (the
    # detection rate at the calibrated threshold is low on digits: PGD transfers well).
    assert float(np.median(adv_scores)) > float(np.median(held_out))
    worst = adv[np.argsort(adv_scores)[-1:]]
    if float(adv_scores.max()) > guard.threshold:
        assert guard.before(GuardRequest("p", "m", worst)).action is Action.DENY


def test_generic_targets_and_errors() -> None:
    members = [FakeTarget.linear(n_features=4, n_classes=3, seed=s) for s in range(3)]
    x = np.random.default_rng(0).random((30, 4)).astype(np.float32)
    guard = EnsembleDisagreementGuard.calibrated(members, x, fpr=0.1, action="flag")
    assert guard.scores(x).shape == (30,)
    mixed = EnsembleDisagreementGuard(
        [members[0], FakeTarget.linear(n_features=4, n_classes=2)], threshold=0.1
    )
    assert mixed.before(GuardRequest("p", "m", x[:2])).http_status == 400
    with pytest.raises(UsageError):
        EnsembleDisagreementGuard(members[:1], threshold=0.1)
    with pytest.raises(UsageError):
        EnsembleDisagreementGuard(members, threshold=-1.0)
    with pytest.raises(UsageError):
        EnsembleDisagreementGuard([object(), object()], threshold=0.1).scores(x)
