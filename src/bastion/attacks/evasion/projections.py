"""Norms, steepest-ascent directions and projections for gradient attacks.

Pure tensor functions on flattened batches ``(n, D)``; :class:`~bastion.attacks.
evasion.budget.Domain` applies them in a model's input space. Perturbations are
measured in *units* of each feature's range (``delta / scale``), so one ``eps`` means
the same thing for pixels in ``[0, 1]``, pixels in ``[0, 255]`` and tabular features
with ranges of thousands.

:func:`hyperplane_projection` solves the box-constrained projection onto a hyperplane
that the FAB attack needs (Croce & Hein, "Minimally distorted adversarial examples
with a fast adaptive boundary attack", ICML 2020, Section 3.1). Like the paper's
reference code it solves the problem exactly with one sort per row: the solution
depends on a single scalar, and the constraint value is piecewise linear in it.

Examples
--------
>>> import torch
>>> d = torch.tensor([[3.0, -4.0]])
>>> lp_norm(d, "l2").tolist(), lp_norm(d, "linf").tolist()
([5.0], [4.0])
>>> w = torch.tensor([[1.0, 1.0]])
>>> lo, hi = torch.full((1, 2), -1.0), torch.full((1, 2), 1.0)
>>> step = hyperplane_projection(w, torch.tensor([1.0]), lo, hi, "l2")
>>> [round(v, 4) for v in step[0].tolist()]
[0.5, 0.5]
>>> [round(v, 4) for v in hyperplane_projection(w, torch.tensor([1.0]), lo, hi, "linf")[0].tolist()]
[0.5, 0.5]
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = [
    "Norm",
    "dual_norm",
    "hyperplane_projection",
    "lp_norm",
    "scale_to_l2_ball",
    "unit_direction",
]

#: The perturbation norms the white-box attacks support.
Norm = Literal["linf", "l2"]

_TINY = 1e-12


def lp_norm(flat: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per-row norm of a flattened batch ``(n, D)`` -> ``(n,)``."""
    if flat.shape[1] == 0:
        return flat.new_zeros(len(flat))
    if norm == "linf":
        return flat.abs().amax(dim=1)
    return flat.pow(2).sum(dim=1).sqrt()


def dual_norm(flat: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per-row dual norm: L1 for L∞ and L2 for L2, ``(n, D)`` -> ``(n,)``.

    The distance from a point to the hyperplane ``w·z + b = 0`` in norm ``p`` is
    ``|w·x + b| / ||w||_q`` with ``q`` the dual of ``p``.
    """
    if norm == "linf":
        return flat.abs().sum(dim=1)
    return flat.pow(2).sum(dim=1).sqrt()


def unit_direction(flat: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The steepest-ascent direction of unit norm for a gradient ``(n, D)``.

    L∞: ``sign(g)``. L2: ``g / ||g||_2`` (zero where the gradient is zero).
    """
    if norm == "linf":
        return flat.sign()
    return flat / flat.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(_TINY)


def scale_to_l2_ball(flat: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """Shrink rows of ``(n, D)`` whose L2 norm exceeds ``eps`` onto the sphere."""
    size = flat.pow(2).sum(dim=1, keepdim=True).sqrt()
    radius = eps if isinstance(eps, float) else eps.reshape(-1, 1)
    factor = torch.clamp(radius / size.clamp_min(_TINY), max=1.0)
    return flat * factor


def hyperplane_projection(
    w: torch.Tensor, c: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, norm: Norm
) -> torch.Tensor:
    """Smallest step ``d`` with ``w·d = c`` and ``lo <= d <= hi``, per row.

    Parameters
    ----------
    w : Tensor
        ``(n, D)`` hyperplane normals.
    c : Tensor
        ``(n,)`` required values of ``w·d``.
    lo, hi : Tensor
        ``(n, D)`` room around the current point, ``lo <= 0 <= hi`` (``-inf``/``inf``
        allowed; ``lo == hi == 0`` pins a feature).
    norm : {"linf", "l2"}
        The norm in which the step is smallest.

    Returns
    -------
    Tensor
        ``(n, D)``. Where the hyperplane lies out of the box's reach the step goes as
        far towards it as the box allows (FAB then makes progress from the corner).

    Notes
    -----
    Negate ``w`` where ``c < 0`` so that ``c >= 0``. The optimum is
    ``d_i = clip(t * u_i, lo_i, hi_i)`` for one scalar ``t >= 0``, with
    ``u = sign(w)`` for L∞ and ``u = w`` for L2 (the KKT conditions), and ``w·d(t)``
    is non-decreasing in ``t``. Sorting the breakpoints where coordinates hit their
    bounds makes ``w·d(t)`` piecewise linear between them, so the first segment that
    reaches ``c`` gives ``t`` in closed form.
    """
    flip = torch.where(c < 0, -1.0, 1.0).to(w.dtype)[:, None]
    wf = w * flip
    target = c.abs().to(w.dtype)
    size = wf.abs()
    moving = size > 0
    # Coordinate i moves along u_i (sign(w_i) for L∞, w_i for L2) at speed |u_i| * t
    # until t reaches tau_i = room_i / |u_i|, where it saturates at its bound; it adds
    # slope_i = |w_i| |u_i| to w·d(t) while moving and sat_i = |w_i| room_i once
    # saturated, so w·d(t) is piecewise linear with breakpoints tau. Coordinates with
    # w_i = 0 never move (tau_i = 0, no slope, no saturation value).
    room = torch.where(wf > 0, hi, -lo)  # how far coordinate i can go along u_i
    finite = torch.isfinite(room)
    if norm == "linf":
        u, slope = wf.sign(), size
        tau = torch.where(moving, room, 0.0)
    else:
        u, slope = wf, size * size
        tau = torch.where(moving, room / size.clamp_min(_TINY), 0.0)
    sat = torch.where(finite, size * room, 0.0)
    tau_s, order = tau.sort(dim=1)
    sat_c = sat.gather(1, order).cumsum(dim=1)
    slope_total = slope.sum(dim=1, keepdim=True)
    slope_after = slope_total - slope.gather(1, order).cumsum(dim=1)
    bounded = torch.isfinite(tau_s)
    value = torch.where(bounded, sat_c + tau_s * slope_after, float("inf"))
    reached = value >= target[:, None]
    j = reached.to(torch.int8).argmax(dim=1, keepdim=True)
    prev = (j - 1).clamp_min(0)
    first = j == 0
    sat_prev = torch.where(first, 0.0, sat_c.gather(1, prev))[:, 0]
    slope_prev = torch.where(first, slope_total, slope_after.gather(1, prev))
    t = (target - sat_prev) / slope_prev[:, 0].clamp_min(_TINY)
    # Out of reach: go as far as the box allows (every finite coordinate saturated),
    # i.e. to the largest finite breakpoint (tau is sorted, infinite ones last).
    last = (bounded.sum(dim=1, keepdim=True) - 1).clamp_min(0)
    farthest = tau_s.gather(1, last)[:, 0].clamp_min(0.0)
    farthest = torch.where(bounded[:, 0], farthest, 0.0)
    t = torch.where(reached.any(dim=1), t, farthest)
    return torch.clamp(t[:, None] * u, lo, hi)
