"""Square attack: score-based black-box evasion by random search (L∞ and L2).

Andriushchenko, Croce, Flammarion and Hein, "Square Attack: a query-efficient
black-box adversarial attack via random search", ECCV 2020 (arXiv:1912.00049).

The attack needs only the model's scores. Starting from a perturbation on the
boundary of the ε-ball (vertical stripes of ±ε for L∞, a grid of pseudo-Gaussian
tiles for L2), each iteration proposes a change localised in one random square
window, queries the model once per still-robust sample, and keeps the proposal when
the margin loss ``z_y - max_{k != y} z_k`` decreases. The window's area is a
fraction ``p`` of the image that halves on the paper's schedule (iterations 10, 50,
200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000, rescaled to ``n_queries``).

Shapes. ``x`` is ``(n, *row)``. Rows with at least two trailing axes of size >= 3 are
images ``(..., H, W)``: the leading axes are channels and the windows are ``s x s``
squares. Every other row (tabular ``(d,)``, tiny images) is a vector, and a "window"
is a random set of ``round(p * d)`` mutable coordinates -- the natural reading of the
paper's square for inputs without spatial structure (our generalisation).

Simplifications, stated: the paper's L∞ loop re-draws a window whose proposal would
not change the image; here such a proposal is simply queried (one wasted query,
never a wrong result). The L2 update follows the paper's Algorithm 3 (new
pseudo-Gaussian mass in window 1, the mass of window 2 moved into it, the whole
perturbation rescaled onto the ε-sphere) with each window's pseudo-Gaussian made of
two half-windows of opposite sign as in the paper.

Batched and tensor-native: all still-robust samples share one oracle call per
iteration, tensors stay on ``x``'s device, and each sample's queries are counted
exactly (one for the clean check, one for the initial perturbation, one per
iteration). ``max_total_queries`` and the target's own budget
(:class:`~bastion.errors.QueryBudgetExceeded`) stop the attack cleanly with a
partial result (``stopped == "query_budget"``).

Examples
--------
>>> import torch
>>> w = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
>>> scores = lambda x: x.reshape(len(x), -1)[:, :2] @ w.T   # a linear "model"
>>> x = torch.tensor([[0.55, 0.45, 0.5], [0.45, 0.55, 0.5]])
>>> y = torch.tensor([0, 1])
>>> r = square_attack(scores, x, y, norm="linf", eps=0.1, n_queries=50, lower=0.0,
...                   upper=1.0, seed=0)
>>> r.success.tolist(), bool((r.x_adv - x).abs().max() <= 0.1 + 1e-6)
([True, True], True)
>>> int(r.queries.max()) <= 50
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from bastion.attacks.evasion.geometry import SearchGeometry, check_attack_inputs
from bastion.attacks.evasion.queries import ScoreFn, margins
from bastion.errors import QueryBudgetExceeded, UsageError

__all__ = ["Norm", "SquareResult", "square_attack", "square_fraction"]

Norm = Literal["linf", "l2"]
Projection = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_BREAKS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_TINY = 1e-12


@dataclass(frozen=True)
class SquareResult:
    """What :func:`square_attack` found, per sample.

    Attributes
    ----------
    x_adv : Tensor
        ``(n, *row)`` best input found (the clean input for samples misclassified
        from the start); inside the ε-ball, the bounds and the mask.
    success : Tensor
        ``(n,)`` bool: ``x_adv`` meets the goal (misclassified, or classified as
        the target label), including samples already misclassified when clean.
    queries : Tensor
        ``(n,)`` int64 model queries spent on each sample.
    margin : Tensor
        ``(n,)`` final margin loss; negative exactly where ``success``.
    clean_correct : Tensor
        ``(n,)`` bool: the clean input did *not* already meet the goal.
    iterations : int
        Search iterations run (after the clean check and the initialisation).
    stopped : {"finished", "query_budget"}
        ``"query_budget"`` when ``max_total_queries`` or the target's budget cut the
        search short; the result is then partial but valid.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    queries: torch.Tensor
    margin: torch.Tensor
    clean_correct: torch.Tensor
    iterations: int
    stopped: Literal["finished", "query_budget"]

    @property
    def total_queries(self) -> int:
        """Queries spent over all samples."""
        return int(self.queries.sum())


def square_fraction(p_init: float, iteration: int, n_iterations: int) -> float:
    """Window area fraction ``p`` at ``iteration`` (the paper's halving schedule).

    >>> square_fraction(0.8, 0, 1000), square_fraction(0.8, 999, 1000)
    (0.8, 0.0015625)
    """
    i = int(iteration / max(n_iterations, 1) * 10_000)
    halvings = sum(1 for b in _BREAKS if i > b)
    return float(p_init) / float(2**halvings)


def square_attack(
    predict_scores: ScoreFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: Norm,
    eps: float,
    n_queries: int = 5000,
    p_init: float = 0.8,
    lower: float | torch.Tensor | None = None,
    upper: float | torch.Tensor | None = None,
    seed: int = 0,
    y_target: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    project: Projection | None = None,
    max_total_queries: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SquareResult:
    """Run the Square attack on a batch.

    Parameters
    ----------
    predict_scores : callable
        ``(m, *row)`` tensor -> ``(m, K)`` logits or log-probabilities (see
        :func:`bastion.attacks.evasion.queries.score_oracle`). Called once per
        iteration with every still-robust sample.
    x : Tensor
        ``(n, *row)`` clean inputs, inside ``[lower, upper]``.
    y : Tensor
        ``(n,)`` int64 true labels.
    norm : {"linf", "l2"}
    eps : float
        Radius of the ball, in the input's raw units (or in units of ``scale``).
    n_queries : int
        Most queries per sample, the clean check and the initialisation included.
    p_init : float
        Initial window area fraction, in (0, 1].
    lower, upper : float, Tensor or None
        Bounds, scalars or row-shaped tensors; None means unbounded.
    seed : int
        Seeds every random choice (a private ``torch.Generator``).
    y_target : Tensor or None
        ``(n,)`` target labels for a targeted attack.
    scale : Tensor or None
        Row-shaped positive per-feature units: the ball is ``|delta / scale| <= eps``
        (e.g. each tabular feature's range).
    mask : Tensor or None
        Row-shaped bool: features the attack may change (default: all).
    project : callable or None
        ``project(candidate, x) -> valid candidate`` applied to every proposal before
        it is queried (e.g. integer rounding and one-hot repair); it must keep rows
        inside the ball, the bounds and the mask.
    max_total_queries : int or None
        Stop when the next batch would exceed this many queries in total.
    progress : callable or None
        Called after each iteration with the number of samples still attacked.

    Returns
    -------
    SquareResult

    Raises
    ------
    UsageError
        If a parameter is out of range.
    DataError
        If ``x`` lies outside the bounds or ``y`` does not match ``x``.
    """
    if norm not in ("linf", "l2"):
        raise UsageError(
            f"The 'norm' parameter of the Square attack must be 'linf' or 'l2'; got {norm!r}."
        )
    if not (isinstance(eps, int | float) and math.isfinite(eps) and eps > 0):
        raise UsageError(
            f"The 'eps' parameter of the Square attack must be a float > 0; got {eps!r}."
        )
    if not isinstance(n_queries, int) or n_queries < 2:
        raise UsageError(
            "The 'n_queries' parameter of the Square attack must be an integer >= 2; got "
            f"{n_queries!r}."
        )
    if not (isinstance(p_init, int | float) and 0 < p_init <= 1):
        raise UsageError(
            f"The 'p_init' parameter of the Square attack must be in (0, 1]; got {p_init!r}."
        )
    geo = SearchGeometry.build(x, y, lower=lower, upper=upper, scale=scale, mask=mask)
    targeted = y_target is not None
    labels = check_attack_inputs(x, y if y_target is None else y_target, what="y_target")
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    return _Search(
        predict_scores,
        geo,
        labels,
        targeted,
        norm,
        float(eps),
        gen,
        project,
        max_total_queries,
        progress,
    ).run(n_queries, p_init)


class _Search:
    """State of one Square run (internal layout ``(n, C, H, W)``, see ``geometry``)."""

    def __init__(
        self,
        predict: ScoreFn,
        geo: SearchGeometry,
        labels: torch.Tensor,
        targeted: bool,
        norm: Norm,
        eps: float,
        gen: torch.Generator,
        project: Projection | None,
        cap: int | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.predict, self.geo, self.labels, self.targeted = predict, geo, labels, targeted
        self.norm, self.eps, self.gen, self.project = norm, eps, gen, project
        self.cap, self.progress = cap, progress
        n = geo.n
        self.queries = torch.zeros(n, dtype=torch.int64, device=geo.device)
        self.x_best = geo.x.clone()
        self.margin = torch.full((n,), float("inf"), dtype=torch.float64, device=geo.device)

    # -- oracle with accounting ---------------------------------------------------------
    def _ask(self, idx: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
        """Margins of ``rows`` (internal layout) for samples ``idx``; None when out of budget."""
        if self.cap is not None and int(self.queries.sum()) + len(idx) > self.cap:
            return None
        try:
            scores = self.predict(self.geo.to_rows(rows))
        except QueryBudgetExceeded:
            return None
        self.queries[idx] += 1
        return margins(scores.to(torch.float64), self.labels[idx], targeted=self.targeted)

    def _candidate(self, idx: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        cand = self.geo.apply(idx, delta)
        if self.project is not None:
            x0 = self.geo.x[idx]
            cand = self.geo.from_rows(self.project(self.geo.to_rows(cand), self.geo.to_rows(x0)))
        return cand

    def _keep(self, idx: torch.Tensor, cand: torch.Tensor, m: torch.Tensor) -> None:
        better = m < self.margin[idx]
        self.margin[idx] = torch.where(better, m, self.margin[idx])
        self.x_best[idx] = torch.where(better.view(-1, 1, 1, 1), cand, self.x_best[idx])

    # -- the search ------------------------------------------------------------------------
    def run(self, n_queries: int, p_init: float) -> SquareResult:
        geo = self.geo
        everyone = torch.arange(geo.n, device=geo.device)
        clean = self._ask(everyone, geo.x)
        if clean is None:
            raise QueryBudgetExceeded(
                f"The Square attack cannot afford even the clean check of {geo.n} samples; "
                "raise the query budget or attack fewer samples."
            )
        self.margin = clean
        clean_correct = clean >= 0
        stopped: Literal["finished", "query_budget"] = "finished"
        iterations = 0
        active = everyone[clean_correct]
        if len(active):
            init = self._init_delta(len(active))
            cand = self._candidate(active, init)
            m = self._ask(active, cand)
            if m is None:
                stopped = "query_budget"
            else:
                self.margin[active] = m
                self.x_best[active] = cand
        n_iter = n_queries - 2
        while stopped == "finished" and iterations < n_iter:
            active = everyone[self.margin >= 0]
            if len(active) == 0:
                break
            p = square_fraction(p_init, iterations, n_iter)
            delta = self._step_linf(active, p) if self.norm == "linf" else self._step_l2(active, p)
            cand = self._candidate(active, delta)
            m = self._ask(active, cand)
            if m is None:
                stopped = "query_budget"
                break
            self._keep(active, cand, m)
            iterations += 1
            if self.progress is not None:
                self.progress(int((self.margin >= 0).sum()))
        success = self.margin < 0
        return SquareResult(
            x_adv=geo.to_rows(self.x_best),
            success=success,
            queries=self.queries,
            margin=self.margin,
            clean_correct=clean_correct,
            iterations=iterations,
            stopped=stopped,
        )

    # -- proposals (perturbations in units of `scale`, internal layout) -------------------
    def _signs(self, shape: tuple[int, ...]) -> torch.Tensor:
        bits = torch.randint(0, 2, shape, generator=self.gen, device=self.geo.device)
        return bits.to(self.geo.x.dtype) * 2 - 1

    def _init_delta(self, a: int) -> torch.Tensor:
        geo = self.geo
        if self.norm == "linf":
            if geo.is_image:  # vertical stripes: one sign per (channel, column)
                d = self._signs((a, geo.c, 1, geo.w)).expand(a, geo.c, geo.h, geo.w)
            else:
                d = self._signs((a, 1, 1, geo.w))
            return self.eps * d * geo.allowed
        if geo.is_image:
            d = geo.tiled_pattern(a, self.gen) * geo.allowed
        else:
            d = torch.randn((a, 1, 1, geo.w), generator=self.gen, device=geo.device) * geo.allowed
        return self._to_sphere(d.to(geo.x.dtype))

    def _current(self, idx: torch.Tensor) -> torch.Tensor:
        return (self.x_best[idx] - self.geo.x[idx]) / self.geo.scale

    def _step_linf(self, idx: torch.Tensor, p: float) -> torch.Tensor:
        geo, a = self.geo, len(idx)
        window = geo.window(a, p, self.gen, minimum=1).mask
        if geo.is_image:
            values = self.eps * self._signs((a, geo.c, 1, 1))
        else:
            values = self.eps * self._signs((a, 1, 1, geo.w))
        return torch.where(window, values, self._current(idx)) * geo.allowed

    def _step_l2(self, idx: torch.Tensor, p: float) -> torch.Tensor:
        geo, a = self.geo, len(idx)
        delta = self._current(idx) * geo.allowed
        win1 = geo.window(a, p, self.gen, minimum=3)
        w1, w2 = win1.mask, geo.window(a, p, self.gen, minimum=3).mask
        union = w1 | w2
        nu1 = _norm_hw(delta * w1)
        nu_union = _norm_hw(delta * union)
        total = _norm_all(delta)
        pattern = geo.window_pattern(win1, self.gen) * self._signs((a, geo.c, 1, 1))
        fresh = (pattern + delta * w1 / (nu1 + _TINY)) * w1 * geo.allowed
        room = torch.clamp(self.eps**2 - total**2, min=0.0) / geo.c + nu_union**2
        fresh = fresh * torch.sqrt(room) / (_norm_hw(fresh) + _TINY)
        moved = delta * ~union + fresh
        return self._to_sphere(moved)

    def _to_sphere(self, d: torch.Tensor) -> torch.Tensor:
        size = _norm_all(d)
        return torch.where(size > _TINY, d * (self.eps / size.clamp_min(_TINY)), d)


def _norm_hw(d: torch.Tensor) -> torch.Tensor:
    """L2 norm per (sample, channel), shape ``(a, C, 1, 1)``."""
    return d.pow(2).sum(dim=(2, 3), keepdim=True).sqrt()


def _norm_all(d: torch.Tensor) -> torch.Tensor:
    """L2 norm per sample, shape ``(a, 1, 1, 1)``."""
    return d.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
