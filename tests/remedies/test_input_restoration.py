"""evasion.input_restoration: squeezing in front of the model, verified through BPDA."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from bastion.attacks.evasion.pgd import pgd
from bastion.catalog import load_catalog
from bastion.errors import TargetError, UsageError
from bastion.guards.squeezing import bit_depth
from bastion.probes import ProbeContext
from bastion.remedies import BUILTIN_REMEDIES, InputRestoration
from bastion.targets import FakeTarget
from bastion.testing import check_remedy
from tests.remedies.models import digits, digits_cnn, one_thread


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def test_keeps_the_remedy_contract() -> None:
    assert (
        check_remedy(InputRestoration, load_catalog(), probe_ids=["evasion.pgd", "evasion.apgd"])
        == []
    )
    assert BUILTIN_REMEDIES["evasion.input_restoration"] is InputRestoration


def test_restored_model_squeezes_and_stays_attackable() -> None:
    target = digits_cnn()
    r = InputRestoration(bits=3, median=None).apply(target, digits(), ProbeContext())
    assert r.target.module is not target.module and r.target.name == target.name
    x = torch.from_numpy(digits().x_test[:100])
    y = torch.from_numpy(digits().y_test[:100]).long()
    with torch.no_grad():
        assert torch.allclose(r.target.module(x), target.module(bit_depth(x, 3)))
    assert 0.5 < r.changes["clean_accuracy_after"] <= 1.0
    # BPDA: the adaptive attack still finds adversarial examples (no masked gradients).
    res = pgd(r.target.module, x, y, eps=0.3, steps=20, seed=0)
    assert res.success_rate > 0.5


def test_errors() -> None:
    with pytest.raises(UsageError, match="input_restoration"):
        InputRestoration(bits=0).apply(digits_cnn(), digits(), ProbeContext())
    with pytest.raises(TargetError, match="torch"):
        InputRestoration().apply(
            FakeTarget.linear(n_features=4, n_classes=2), digits(), ProbeContext()
        )
