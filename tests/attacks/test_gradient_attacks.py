"""White-box attacks on the demo digits CNN: strength, constraints, cost, determinism."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from bastion.attacks.evasion import AttackResult, Domain, apgd, apgd_targeted, fab, fgsm, pgd
from bastion.errors import DataError, QueryBudgetExceeded, TargetError, UsageError
from tests.attacks.whitebox_models import (
    NaNAfter,
    digits,
    digits_batch,
    digits_target,
    one_thread,
    tabular,
    tabular_target,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


ATTACKS: dict[str, Callable[..., AttackResult]] = {
    "fgsm": lambda t, x, y, eps, norm: fgsm(t, x, y, eps=eps, norm=norm),
    "pgd": lambda t, x, y, eps, norm: pgd(t, x, y, eps=eps, norm=norm, steps=20),
    "apgd-ce": lambda t, x, y, eps, norm: apgd(t, x, y, eps=eps, norm=norm, steps=20),
    "apgd-dlr": lambda t, x, y, eps, norm: apgd(t, x, y, eps=eps, norm=norm, steps=20, loss="dlr"),
    "apgd-t": lambda t, x, y, eps, norm: apgd_targeted(
        t, x, y, eps=eps, norm=norm, steps=10, n_target_classes=3
    ),
}


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_attacks_reduce_accuracy_and_respect_the_budget(name: str, eps: float) -> None:
    _, cnn = digits()
    x, y = digits_batch(48)
    target = digits_target()
    clean = _accuracy(cnn, x, y)
    r = ATTACKS[name](target, x, y, eps, "linf")
    adv_accuracy = _accuracy(cnn, r.x_adv, y)
    assert clean > 0.9
    assert adv_accuracy < clean - (0.15 if eps == 0.1 else 0.6)
    # Success is what the model says about the returned examples.
    with torch.no_grad():
        assert torch.equal(r.success, cnn(r.x_adv).argmax(1) != y)
    # Bounds exactly, budget up to float rounding, and the reported norms are true.
    assert float(r.x_adv.min()) >= 0.0 and float(r.x_adv.max()) <= 1.0
    true_norm = (r.x_adv - x).flatten(1).abs().amax(1)
    assert float(true_norm.max()) <= eps + 1e-6
    torch.testing.assert_close(r.norms, true_norm)
    assert r.queries == target.queries_used


@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce"])
def test_l2_attacks_respect_the_l2_budget(name: str) -> None:
    x, y = digits_batch(32)
    target = digits_target()
    r = ATTACKS[name](target, x, y, 1.0, "l2")
    sizes = (r.x_adv - x).flatten(1).norm(dim=1)
    assert float(sizes.max()) <= 1.0 + 1e-5
    assert float(r.x_adv.min()) >= 0.0 and float(r.x_adv.max()) <= 1.0
    assert r.success_rate > 0.3


def test_pgd_early_stop_saves_queries_without_losing_success() -> None:
    x, y = digits_batch(48)
    fast = pgd(digits_target(), x, y, eps=0.2, steps=30, seed=1)
    full = pgd(digits_target(), x, y, eps=0.2, steps=30, seed=1, early_stop=False)
    assert fast.queries < 0.5 * full.queries
    assert full.queries == 48 * 31  # every row: 30 gradient steps and a final check
    assert int(fast.success.sum()) >= int(full.success.sum()) - 1
    # A row leaves at its first fooling iterate, which is a valid adversarial example.
    _, cnn = digits()
    with torch.no_grad():
        assert bool((cnn(fast.x_adv[fast.success]).argmax(1) != y[fast.success]).all())


def test_restarts_only_attack_rows_still_standing() -> None:
    x, y = digits_batch(48)
    one = pgd(digits_target(), x, y, eps=0.08, steps=10, restarts=1)
    three = pgd(digits_target(), x, y, eps=0.08, steps=10, restarts=3)
    standing = int((~one.success).sum())
    assert int(three.success.sum()) >= int(one.success.sum())
    assert three.queries <= one.queries + 2 * standing * 11


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.15])
def test_apgd_is_at_least_as_strong_as_pgd(eps: float) -> None:
    x, y = digits_batch(64)
    p = pgd(digits_target(), x, y, eps=eps, steps=20)
    a = apgd(digits_target(), x, y, eps=eps, steps=20)
    t = apgd_targeted(digits_target(), x[~a.success], y[~a.success], eps=eps, steps=20)
    assert int(a.success.sum()) + int(t.success.sum()) >= int(p.success.sum())


def test_fab_minimal_norms_are_below_the_pgd_budget_where_pgd_succeeds() -> None:
    x, y = digits_batch(48)
    eps = 0.12
    p = pgd(digits_target(), x, y, eps=eps, steps=20)
    m = fab(digits_target(), x, y, norm="linf", steps=30)
    assert bool(p.success.any())
    assert float(m.norms[p.success].median()) < eps
    assert float((m.norms[p.success] <= eps).float().mean()) >= 0.9
    # FAB's examples are adversarial, inside the bounds and exactly as large as reported.
    _, cnn = digits()
    found = m.success & (m.norms > 0)
    with torch.no_grad():
        assert bool((cnn(m.x_adv[found]).argmax(1) != y[found]).all())
    torch.testing.assert_close(m.norms[found], (m.x_adv - x).flatten(1).abs().amax(1)[found])
    assert float(m.x_adv.min()) >= 0.0 and float(m.x_adv.max()) <= 1.0


def test_fab_targeted_and_l2() -> None:
    x, y = digits_batch(24)
    t = fab(digits_target(), x, y, norm="l2", steps=20, targeted=True, n_target_classes=2)
    assert t.attack == "fab-t" and t.success_rate > 0.9
    sizes = (t.x_adv - x).flatten(1).norm(dim=1)
    torch.testing.assert_close(t.norms[t.success], sizes[t.success], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("run", "random_start"),
    [
        (lambda t, x, y, s: pgd(t, x, y, eps=0.1, steps=10, seed=s), True),
        (lambda t, x, y, s: apgd(t, x, y, eps=0.1, steps=10, seed=s), True),
        (lambda t, x, y, s: fab(t, x, y, steps=5, restarts=2, eps=0.1, seed=s), False),
    ],
)
def test_same_seed_same_result(run: Callable[..., AttackResult], random_start: bool) -> None:
    x, y = digits_batch(16)
    a, b = run(digits_target(), x, y, 3), run(digits_target(), x, y, 3)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)
    if random_start:  # the seed drives the random start, so another seed starts elsewhere
        c = run(digits_target(), x, y, 4)
        assert not torch.equal(a.x_adv, c.x_adv)


def test_queries_are_charged_to_the_target_and_its_budget_is_enforced() -> None:
    x, y = digits_batch(16)
    target = digits_target()
    r = apgd_targeted(target, x, y, eps=0.05, steps=5, n_target_classes=2)
    assert r.queries == target.queries_used > 16
    small = digits_target(query_budget=100)
    with pytest.raises(QueryBudgetExceeded):
        pgd(small, x, y, eps=0.05, steps=20, early_stop=False)
    assert small.queries_used <= 100


def test_nan_logits_stop_the_attack_with_a_clear_error() -> None:
    _, cnn = digits()
    x, y = digits_batch(8)
    target = digits_target(NaNAfter(cnn))
    with pytest.raises(TargetError, match="NaN or infinite logits"):
        pgd(target, x, y, eps=0.1, steps=3)


def test_bad_inputs_fail_with_one_sentence() -> None:
    x, y = digits_batch(4)
    target = digits_target()
    with pytest.raises(UsageError, match="'eps' parameter of PGD"):
        pgd(target, x, y, eps=-1.0)
    with pytest.raises(UsageError, match="'steps' parameter of PGD"):
        pgd(target, x, y, eps=0.1, steps=0)
    with pytest.raises(UsageError, match="'norm' parameter of FAB"):
        fab(target, x, y, norm="l1")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="one integer label per row"):
        fgsm(target, x, y[:2], eps=0.1)
    with pytest.raises(DataError, match="outside the declared bounds"):
        apgd(target, x + 2, y, eps=0.1)


def test_tabular_attack_moves_only_mutable_features_within_each_range() -> None:
    data, _, spec = tabular()
    x = torch.from_numpy(data.x_test[:32].copy())
    y = torch.from_numpy(data.y_test[:32].copy())
    dom = Domain.from_spec(spec, reference=data.x_train)
    for norm, eps in (("linf", 0.2), ("l2", 0.5)):
        r = pgd(tabular_target(), x, y, eps=eps, norm=norm, steps=20, domain=dom)
        assert torch.equal(r.x_adv[:, :5], x[:, :5])  # immutable, bit for bit
        assert bool((r.x_adv >= dom.lower).all() and (r.x_adv <= dom.upper).all())
        assert float(dom.norm(r.x_adv - x, norm).max()) <= eps * (1 + 1e-5)  # type: ignore[arg-type]
        assert r.success_rate > 0.1


def test_parallel_targets_match_the_sequential_schedule_in_strength() -> None:
    x, y = digits_batch(32)
    par = apgd_targeted(digits_target(), x, y, eps=0.08, steps=10, n_target_classes=4)
    seq = apgd_targeted(
        digits_target(), x, y, eps=0.08, steps=10, n_target_classes=4, parallel=False
    )
    assert abs(int(par.success.sum()) - int(seq.success.sum())) <= 2
    assert seq.queries <= par.queries  # sequential never re-attacks a broken row


def test_fab_stop_at_stops_rows_once_small_enough() -> None:
    x, y = digits_batch(24)
    full = fab(digits_target(), x, y, steps=20, targeted=True, n_target_classes=3)
    quick = fab(digits_target(), x, y, steps=20, targeted=True, n_target_classes=3, stop_at=0.15)
    assert quick.queries < full.queries
    hit = full.norms <= 0.15
    assert bool((quick.norms[hit] <= 0.15).all())


def test_attacks_leave_the_model_parameters_as_they_found_them() -> None:
    _, cnn = digits()
    flags = [p.requires_grad for p in cnn.parameters()]
    x, y = digits_batch(8)
    pgd(digits_target(), x, y, eps=0.1, steps=3)
    fab(digits_target(), x, y, steps=3)
    assert [p.requires_grad for p in cnn.parameters()] == flags
