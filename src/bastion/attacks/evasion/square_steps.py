"""The Square attack's proposals: initial perturbations and per-iteration updates.

Andriushchenko, Croce, Flammarion and Hein, "Square Attack: a query-efficient
black-box adversarial attack via random search", ECCV 2020 (arXiv:1912.00049),
Algorithms 2 (L∞) and 3 (L2). :func:`~bastion.attacks.evasion.square.square_attack`
runs the search; this module draws what it queries. Tensors are in the internal
layout ``(a, C, H, W)`` of :class:`~bastion.attacks.evasion.geometry.SearchGeometry`;
perturbations are in units of its ``scale``.

* **L∞.** Start: vertical stripes of ``+-eps`` (one sign per channel and column; one
  per coordinate for vectors). Step: one random window set to ``+-eps`` with one sign
  per channel (per coordinate for vectors). As in the paper, a proposal that would
  leave its window unchanged gets new signs before it is queried: a uniformly random
  *other* sign pattern over the channels (for vectors, every chosen coordinate flips,
  our generalisation). Once the window is a single pixel of one channel, half of all
  first draws would otherwise waste their query.
* **L2.** Start: a grid of pseudo-Gaussian tiles with random signs, scaled onto the
  sphere. Step: new pseudo-Gaussian mass (two half-windows of opposite sign) in
  window 1, the mass of window 2 moved into it, the whole perturbation rescaled onto
  the ``eps``-sphere.

Examples
--------
>>> import torch
>>> from bastion.attacks.evasion.geometry import SearchGeometry
>>> geo = SearchGeometry.build(torch.full((2, 1, 8, 8), 0.5), torch.tensor([0, 1]),
...                            lower=0.0, upper=1.0)
>>> d = init_delta(geo, torch.Generator().manual_seed(0), "l2", 1.0, 2)
>>> [round(float(v), 4) for v in d.flatten(1).norm(dim=1)]
[1.0, 1.0]
"""

from __future__ import annotations

from typing import Literal

import torch

from bastion.attacks.evasion.geometry import SearchGeometry

__all__ = ["init_delta", "l2_delta", "linf_candidate"]

_TINY = 1e-12


def _signs(geo: SearchGeometry, gen: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    bits = torch.randint(0, 2, shape, generator=gen, device=geo.device)
    return bits.to(geo.x.dtype) * 2 - 1


def _other_signs(geo: SearchGeometry, gen: torch.Generator, a: int) -> torch.Tensor:
    """``(a, C, 1, 1)`` bool flips, uniform over the non-zero patterns.

    XOR-ing a sign choice with them gives a uniformly random *different* choice --
    what re-drawing until the window changes gives (the opposite sign for C = 1).
    """
    c, dev = geo.c, geo.device
    if c > 62:  # too many channels for one integer; an all-zero draw is negligible
        return torch.randint(0, 2, (a, c, 1, 1), generator=gen, device=dev).bool()
    pattern = torch.randint(1, 2**c, (a, 1), generator=gen, device=dev)
    bits = (pattern >> torch.arange(c, device=dev)) & 1
    return bits.bool().view(a, c, 1, 1)


def _norm_hw(d: torch.Tensor) -> torch.Tensor:
    """L2 norm per (sample, channel), shape ``(a, C, 1, 1)``."""
    return d.pow(2).sum(dim=(2, 3), keepdim=True).sqrt()


def _norm_all(d: torch.Tensor) -> torch.Tensor:
    """L2 norm per sample, shape ``(a, 1, 1, 1)``."""
    return d.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()


def _to_sphere(d: torch.Tensor, eps: float) -> torch.Tensor:
    size = _norm_all(d)
    return torch.where(size > _TINY, d * (eps / size.clamp_min(_TINY)), d)


def init_delta(
    geo: SearchGeometry, gen: torch.Generator, norm: Literal["linf", "l2"], eps: float, a: int
) -> torch.Tensor:
    """The initial perturbation of ``a`` samples, zero on frozen features."""
    if norm == "linf":
        if geo.is_image:  # vertical stripes: one sign per (channel, column)
            d = _signs(geo, gen, (a, geo.c, 1, geo.w)).expand(a, geo.c, geo.h, geo.w)
        else:
            d = _signs(geo, gen, (a, 1, 1, geo.w))
        return eps * d * geo.allowed
    if geo.is_image:
        d = geo.tiled_pattern(a, gen) * geo.allowed
    else:
        d = torch.randn((a, 1, 1, geo.w), generator=gen, device=geo.device) * geo.allowed
    return _to_sphere(d.to(geo.x.dtype), eps)


def linf_candidate(
    geo: SearchGeometry,
    gen: torch.Generator,
    p: float,
    best: torch.Tensor,
    up: torch.Tensor,
    down: torch.Tensor,
) -> torch.Tensor:
    """``best`` with one random window set to ``up`` or ``down`` (one sign per channel).

    ``up`` and ``down`` are ``clip(x +- eps * scale)`` (``x`` on frozen features, see
    :meth:`SearchGeometry.step_targets`), so the candidate is in the ball and the
    bounds by construction.
    """
    a = len(best)
    window = geo.window_mask(a, p, gen, minimum=1)
    shape = (a, geo.c, 1, 1) if geo.is_image else (a, 1, 1, geo.w)
    pick_up = torch.randint(0, 2, shape, generator=gen, device=geo.device).bool()
    values = torch.where(pick_up, up, down)
    changed = ((values != best) & window).flatten(1).any(dim=1)
    if not bool(changed.all()):  # re-draw the signs of the proposals that change nothing
        stale = (~changed).view(-1, 1, 1, 1)
        if not geo.is_image:
            flips = window & stale
        elif geo.c == 1:
            flips = stale
        else:
            flips = _other_signs(geo, gen, a) & stale
        values = torch.where(pick_up ^ flips, up, down)
    return torch.where(window, values, best)


def l2_delta(
    geo: SearchGeometry,
    gen: torch.Generator,
    p: float,
    eps: float,
    best: torch.Tensor,
    x0: torch.Tensor,
) -> torch.Tensor:
    """The next L2 perturbation of each sample (Algorithm 3), on the ``eps``-sphere."""
    a = len(best)
    delta = (best - x0) / geo.scale * geo.allowed
    win1 = geo.window(a, p, gen, minimum=3)
    w1, w2 = win1.mask, geo.window(a, p, gen, minimum=3).mask
    union = w1 | w2
    nu1 = _norm_hw(delta * w1)
    nu_union = _norm_hw(delta * union)
    total = _norm_all(delta)
    pattern = geo.window_pattern(win1, gen) * _signs(geo, gen, (a, geo.c, 1, 1))
    fresh = (pattern + delta * w1 / (nu1 + _TINY)) * w1 * geo.allowed
    room = torch.clamp(eps**2 - total**2, min=0.0) / geo.c + nu_union**2
    fresh = fresh * torch.sqrt(room) / (_norm_hw(fresh) + _TINY)
    moved = delta * ~union + fresh
    return _to_sphere(moved, eps)
