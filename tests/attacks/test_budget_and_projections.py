"""Tests for the Domain (budgets in raw input space), projections and losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bastion.attacks.evasion.budget import Domain, check_eps, check_norm
from bastion.attacks.evasion.losses import cross_entropy, dlr, dlr_targeted, margin
from bastion.attacks.evasion.projections import hyperplane_projection, lp_norm
from bastion.errors import DataError, UsageError
from bastion.targets import InputSpec


def _spec() -> InputSpec:
    return InputSpec(
        shape=(5,),
        lower=[0.0, 0.0, -10.0, 0.0, 0.0],
        upper=[1.0, 200.0, 10.0, 1.0, 1.0],
        feature_names=["a", "bytes", "temp", "hot_a", "hot_b"],
        immutable=["temp"],
        integer=["bytes"],
        one_hot_groups=[["hot_a", "hot_b"]],
    )


def test_domain_from_spec_scales_by_range_and_freezes_constraints() -> None:
    dom = Domain.from_spec(_spec())
    assert dom.scale.tolist() == [1.0, 200.0, 20.0, 1.0, 1.0]
    assert dom.mutable.tolist() == [True, False, False, False, False]
    assert not dom.simple
    loose = Domain.from_spec(_spec(), freeze_discrete=False)
    assert loose.mutable.tolist() == [True, True, False, True, True]


def test_unbounded_features_take_their_scale_from_the_data() -> None:
    spec = InputSpec(shape=(2,), lower=[0.0, -math.inf], upper=[4.0, math.inf])
    reference = np.array([[0.0, 10.0], [1.0, 30.0]])
    dom = Domain.from_spec(spec, reference=reference)
    assert dom.scale.tolist() == [4.0, 20.0]
    assert math.isinf(float(dom.upper[1]))


def test_ball_box_and_projection_keep_frozen_features_bit_for_bit() -> None:
    dom = Domain.from_spec(_spec(), freeze_discrete=False)
    x = torch.tensor([[0.5, 100.0, 3.3, 1.0, 0.0]])
    lo, hi = dom.ball_box(x, 0.1)
    assert lo.tolist()[0][:3] == pytest.approx([0.4, 80.0, 3.3])
    assert hi[0, 2] == x[0, 2] and lo[0, 2] == x[0, 2]
    far = x + torch.tensor([[5.0, 500.0, 5.0, -5.0, 5.0]])
    for norm, bounds in (("linf", dom.ball_box(x, 0.1)), ("l2", dom.box(x))):
        out = dom.project(far, x, 0.1, norm, bounds)  # type: ignore[arg-type]
        assert out[0, 2] == x[0, 2]
        assert float(dom.norm(out - x, norm)[0]) <= 0.1 * (1 + 1e-6)  # type: ignore[arg-type]
        assert bool((out >= dom.lower).all() and (out <= dom.upper).all())


def test_ascent_is_a_unit_step_in_the_scaled_metric() -> None:
    dom = Domain.from_spec(_spec(), freeze_discrete=False)
    g = torch.tensor([[1.0, -2.0, 3.0, 0.5, -0.5]])
    step = dom.ascent(g, "l2")
    assert float(dom.norm(step, "l2")[0]) == pytest.approx(1.0)
    assert step[0, 2] == 0  # immutable
    assert float(dom.norm(dom.ascent(g, "linf"), "linf")[0]) == pytest.approx(1.0)


def test_domain_check_refuses_rows_outside_the_bounds() -> None:
    dom = Domain.unit((3,))
    with pytest.raises(DataError, match="outside the declared bounds"):
        dom.check(torch.tensor([[0.0, 0.5, 1.5]]), "PGD")
    with pytest.raises(DataError, match="rows of shape"):
        dom.check(torch.zeros(2, 4), "PGD")


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "0.1", True])
def test_eps_must_be_a_positive_finite_number(bad: object) -> None:
    with pytest.raises(UsageError, match="'eps' parameter of PGD must be a float > 0"):
        check_eps(bad, "PGD")


def test_norm_must_be_linf_or_l2() -> None:
    with pytest.raises(UsageError, match="'linf' or 'l2'; got 'l1'"):
        check_norm("l1", "PGD")


def _reference(w: torch.Tensor, c: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, norm: str):  # type: ignore[no-untyped-def]
    """Slow bisection on t: an independent check of the closed-form solution."""
    flip = torch.where(c < 0, -1.0, 1.0).double()[:, None]
    wf, target = w * flip, c.abs()
    u = wf.sign() if norm == "linf" else wf
    t_lo, t_hi = torch.zeros(len(w)).double(), torch.full((len(w),), 1e4).double()
    for _ in range(200):
        mid = (t_lo + t_hi) / 2
        ok = (wf * torch.clamp(mid[:, None] * u, lo, hi)).sum(1) >= target
        t_hi, t_lo = torch.where(ok, mid, t_hi), torch.where(ok, t_lo, mid)
    return torch.clamp(t_hi[:, None] * u, lo, hi)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_hyperplane_projection_matches_an_independent_solution(norm: str) -> None:
    gen = torch.Generator().manual_seed(3)
    for _ in range(30):
        w = torch.randn(6, 9, generator=gen).double()
        w[torch.rand(6, 9, generator=gen) < 0.2] = 0
        lo = -torch.rand(6, 9, generator=gen).double()
        hi = torch.rand(6, 9, generator=gen).double()
        hi[torch.rand(6, 9, generator=gen) < 0.1] = float("inf")
        c = torch.randn(6, generator=gen).double()
        got = hyperplane_projection(w, c, lo, hi, norm)  # type: ignore[arg-type]
        want = _reference(w, c, lo, hi, norm)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
        assert bool((got >= lo - 1e-12).all() and (got <= hi + 1e-12).all())


def test_hyperplane_projection_is_the_smallest_step() -> None:
    w = torch.tensor([[3.0, 1.0]])
    lo, hi = torch.full((1, 2), -5.0), torch.full((1, 2), 5.0)
    d = hyperplane_projection(w, torch.tensor([2.0]), lo, hi, "l2")
    torch.testing.assert_close(d, torch.tensor([[0.6, 0.2]]))  # 2 * w / ||w||^2
    assert float(lp_norm(d, "l2")[0]) == pytest.approx(2 / math.sqrt(10))


def test_losses() -> None:
    z = torch.tensor([[4.0, 2.0, 1.0, 0.0], [0.0, 5.0, 1.0, 2.0]])
    y = torch.tensor([0, 0])
    assert margin(z, y).tolist() == [-2.0, 5.0]
    assert dlr(z, y).tolist() == pytest.approx([-2 / 3, 5 / 4])
    assert dlr_targeted(z, y, torch.tensor([1, 3])).tolist() == pytest.approx([-2 / 3.5, 2 / 4.5])
    assert cross_entropy(z, y)[0] < cross_entropy(z, y)[1]
    # DLR is invariant to shifting and scaling the logits; the margin is not to scaling.
    assert dlr(3 * z + 7, y).tolist() == pytest.approx(dlr(z, y).tolist())
    two = torch.tensor([[1.0, 3.0]])
    assert dlr(two, torch.tensor([0])).tolist() == [2.0]  # 2 classes: plain margin
