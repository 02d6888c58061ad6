"""Square's proposals and its per-sample query bookkeeping."""

from __future__ import annotations

import pytest
import torch

from bastion.attacks.evasion.geometry import SearchGeometry
from bastion.attacks.evasion.square import square_attack
from bastion.attacks.evasion.square_steps import init_delta, linf_candidate
from tests.attacks.blackbox_models import one_thread  # noqa: F401 - autouse fixture


def _geometry(shape: tuple[int, ...], n: int = 64) -> SearchGeometry:
    x = torch.rand((n, *shape), generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    return SearchGeometry.build(x, torch.zeros(n, dtype=torch.int64), lower=0.0, upper=1.0)


@pytest.mark.parametrize("side_p", [1 / 64, 0.1, 0.5])
def test_image_windows_are_the_drawn_squares(side_p: float) -> None:
    geo = _geometry((3, 8, 8))
    win = geo.window(64, side_p, torch.Generator().manual_seed(1), minimum=1)
    assert win.rows is not None and win.cols is not None
    expected = torch.zeros(64, 1, 8, 8, dtype=torch.bool)
    for i, (r, c) in enumerate(zip(win.rows.tolist(), win.cols.tolist(), strict=True)):
        expected[i, 0, r : r + win.size, c : c + win.size] = True
    assert torch.equal(win.mask, expected)


def test_window_masks_are_uniformly_placed_squares() -> None:
    geo = _geometry((1, 8, 8), n=3600)
    mask = geo.window_mask(3600, 0.1, torch.Generator().manual_seed(5), minimum=1)
    side = 3  # round(sqrt(0.1 * 64))
    assert mask.shape == (3600, 1, 8, 8) and (mask.sum(dim=(1, 2, 3)) == side * side).all()
    rows, cols = mask.any(dim=3)[:, 0], mask.any(dim=2)[:, 0]
    assert (rows.sum(dim=1) == side).all() and (cols.sum(dim=1) == side).all()
    top = rows.int().argmax(dim=1) * 6 + cols.int().argmax(dim=1)  # 6 x 6 positions
    counts = top.bincount(minlength=36).float()
    assert counts.min() > 0.5 * 100 and counts.max() < 1.5 * 100


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8), (12,)])
def test_linf_proposals_always_change_their_window(shape: tuple[int, ...]) -> None:
    """The paper re-draws signs that would leave the window as it is."""
    geo = _geometry(shape)
    gen = torch.Generator().manual_seed(2)
    up, down = geo.step_targets(geo.x, 0.1)
    for best in (up, down, torch.where(torch.rand(up.shape, generator=gen) < 0.5, up, down)):
        for p in (1 / 64, 0.05):  # one pixel (coordinate), or a few
            cand = linf_candidate(geo, gen, p, best, up, down)
            changed = (cand != best).flatten(1).any(dim=1)
            assert changed.all()
            assert ((cand == up) | (cand == down)).all()  # still on the ball's corners


def test_linf_redraw_is_uniform_over_the_other_sign_patterns() -> None:
    geo = _geometry((2, 8, 8), n=4000)
    up, down = geo.step_targets(geo.x, 0.1)
    best = up.clone()  # every channel at +eps: the draw (up, up) is the stale one
    cand = linf_candidate(geo, torch.Generator().manual_seed(3), 1 / 64, best, up, down)
    moved = (cand != best).flatten(2).any(dim=2)  # (n, channels) that flipped to -eps
    patterns = (moved[:, 0].long() * 2 + moved[:, 1].long()).bincount(minlength=4)
    assert patterns[0] == 0  # never the unchanged pattern
    share = patterns[1:].float() / len(moved)
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.04)


def test_init_delta_is_on_the_boundary_of_the_ball() -> None:
    geo = _geometry((1, 8, 8), n=5)
    gen = torch.Generator().manual_seed(4)
    assert torch.equal(init_delta(geo, gen, "linf", 0.1, 5).abs(), torch.full((5, 1, 8, 8), 0.1))
    l2 = init_delta(geo, gen, "l2", 0.5, 5).flatten(1).norm(dim=1)
    assert torch.allclose(l2, torch.full((5,), 0.5))


def test_per_sample_queries_match_an_independent_count() -> None:
    """Rows stop at different iterations; each row's count is what the model saw."""
    n = 30
    ids = torch.arange(n, dtype=torch.float32)
    x = torch.cat([ids[:, None] / 100, torch.full((n, 6), 0.5)], dim=1)
    mask = torch.tensor([False] + [True] * 6)  # feature 0 names the row and never changes
    weights = torch.linspace(0.5, 4.0, n)  # later rows are harder; the last ones never fall
    seen = torch.zeros(n, dtype=torch.int64)

    def scores(rows: torch.Tensor) -> torch.Tensor:
        who = torch.round(rows[:, 0] * 100).long()
        seen.index_add_(0, who, torch.ones(len(who), dtype=torch.int64))
        push = (rows[:, 1:] - 0.5).sum(dim=1) / weights[who]
        return torch.stack([0.25 - push, push - 0.25], dim=1)

    y = torch.zeros(n, dtype=torch.int64)
    r = square_attack(scores, x, y, norm="linf", eps=0.1, n_queries=60, mask=mask, seed=0,
                      lower=0.0, upper=1.0)  # fmt: skip
    assert torch.equal(r.queries, seen)
    assert 0 < int(r.success.sum()) < n  # some rows stopped early, some used everything
    assert (r.queries[~r.success] == 60).all() and (r.queries[r.success] < 60).any()
