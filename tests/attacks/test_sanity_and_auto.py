"""Gradient-masking checks and the AutoAttack ensemble."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from bastion.attacks.evasion import STANDARD_MEMBERS, auto_attack, model_health, pgd
from bastion.attacks.evasion.sanity import (
    black_box_flags,
    budget_curve_flags,
    min_norm_flags,
    single_step_flags,
)
from bastion.errors import UsageError
from tests.attacks.whitebox_models import (
    Noisy,
    Quantised,
    digits,
    digits_batch,
    digits_target,
    one_thread,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def test_the_normal_cnn_raises_no_flag() -> None:
    x, y = digits_batch(64)
    health = model_health(digits_target(), x, y)
    assert health.flags() == []
    assert health.zero_fraction == 0 and health.randomised_fraction == 0


def test_quantisation_is_flagged_as_zero_gradients() -> None:
    _, cnn = digits()
    x, y = digits_batch(64)
    target = digits_target(Quantised(cnn))
    health = model_health(target, x, y)
    assert [f.code for f in health.flags()] == ["zero_gradients"]
    assert health.zero_fraction == 1.0
    # ... and gradient attacks indeed get nowhere on it.
    assert pgd(target, x, y, eps=0.1, steps=10, random_start=False).success_rate < 0.1


def test_input_noise_is_flagged_as_randomised_outputs() -> None:
    _, cnn = digits()
    x, y = digits_batch(32)
    health = model_health(digits_target(Noisy(cnn)), x, y)
    assert "randomised_outputs" in [f.code for f in health.flags()]
    assert health.randomised_fraction > 0.9


def test_curve_and_comparison_flags() -> None:
    assert budget_curve_flags([0.01, 0.3], [30, 30], n_correct=50)[0].code == "flat_budget_curve"
    assert budget_curve_flags([0.01, 0.3], [30, 5], n_correct=50) == []
    assert budget_curve_flags([0.01, 0.3], [0, 0], n_correct=50) == []  # nothing left to fall
    assert budget_curve_flags([0.1, 0.15], [30, 30], n_correct=50) == []  # too close to judge
    assert single_step_flags(0.1, 6, 50)[0].code == "single_step_beats_iterative"
    assert single_step_flags(0.1, 1, 50) == []
    assert black_box_flags("Square", 9, 40)[0].code == "black_box_beats_white_box"
    assert black_box_flags("Square", 1, 40) == []
    assert min_norm_flags("FAB", 20, 40)[0].code == "min_norm_failures"


def test_auto_attack_runs_members_only_on_survivors_and_reverifies() -> None:
    _, cnn = digits()
    x, y = digits_batch(40)
    target = digits_target()
    r = auto_attack(target, x, y, eps=0.1, steps=15, n_target_classes=3, square_queries=100)
    assert [m.attack for m in r.members] == list(STANDARD_MEMBERS)[: len(r.members)]
    for earlier, later in zip(r.members, r.members[1:], strict=False):
        assert later.attacked == earlier.attacked - earlier.broken
    n_broken = sum(m.broken for m in r.members)
    assert int(r.clean_correct.sum()) - n_broken == int(r.robust.sum())
    assert r.queries == target.queries_used
    with torch.no_grad():
        still = cnn(r.x_adv).argmax(1) == y
    assert torch.equal(r.robust, r.clean_correct & still)
    assert float((r.x_adv - x).abs().max()) <= 0.1 + 1e-6
    assert r.robust_accuracy < r.clean_accuracy - 0.2
    assert set(r.broken_by) <= {"", "clean", *STANDARD_MEMBERS}


def test_auto_attack_is_at_least_as_strong_as_its_first_member_alone() -> None:
    x, y = digits_batch(40)
    full = auto_attack(
        digits_target(), x, y, eps=0.08, steps=15, n_target_classes=3, square_queries=50
    )
    first = auto_attack(digits_target(), x, y, eps=0.08, steps=15, members=["apgd-ce"])
    assert full.robust_accuracy <= first.robust_accuracy


def test_square_breaks_what_gradients_cannot_on_a_quantised_model() -> None:
    _, cnn = digits()
    x, y = digits_batch(24)
    r = auto_attack(
        digits_target(Quantised(cnn)),
        x,
        y,
        eps=0.3,
        steps=5,
        n_target_classes=1,
        square_queries=300,
    )
    square = r.members[-1]
    white = sum(m.broken for m in r.members[:-1])
    assert square.attack == "square" and square.broken > white
    assert black_box_flags("Square", square.broken, square.attacked)


def test_auto_attack_refuses_unknown_members() -> None:
    x, y = digits_batch(4)
    with pytest.raises(UsageError, match="'members' parameter of AutoAttack"):
        auto_attack(digits_target(), x, y, eps=0.1, members=["deepfool"])


def test_auto_attack_threads_apply_only_while_it_runs() -> None:
    x, y = digits_batch(4)
    seen: list[int] = []
    torch.set_num_threads(2)
    r = auto_attack(
        digits_target(), x, y, eps=0.05, steps=2, members=["apgd-ce"], threads=1,
        progress=lambda *_: seen.append(torch.get_num_threads()),
    )  # fmt: skip
    assert seen == [1] and torch.get_num_threads() == 2
    assert len(r.members) == 1
    with pytest.raises(UsageError, match="'threads'"):
        auto_attack(digits_target(), x, y, eps=0.1, threads=0)
