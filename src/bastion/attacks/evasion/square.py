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

The proposals (initial stripes or tiles, the per-iteration window updates, and the
paper's re-draw of an L∞ proposal that would not change its window) are in
:mod:`bastion.attacks.evasion.square_steps`.

Batched and tensor-native: all still-robust samples share one oracle call per
iteration and tensors stay on ``x``'s device. The still-robust rows are kept
compacted (their inputs, best points, margins, labels and, for L∞, the two values
``clip(x +- eps)`` a window can take): the set is re-indexed only in the iterations
where a row succeeds, so every other iteration is one proposal (a window drawn from
a precomputed table), one oracle call and a few element-wise updates, with no
gathers or scatters and two host syncs (any success? any proposal to re-draw?).
Each sample's queries are counted exactly (one for the clean check, one for the
initial perturbation, one per iteration while it is still robust).
``max_total_queries`` and the target's own budget
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
from bastion.attacks.evasion.square_steps import init_delta, l2_delta, linf_candidate
from bastion.errors import QueryBudgetExceeded, UsageError

__all__ = ["Norm", "SquareResult", "square_attack", "square_fraction"]

Norm = Literal["linf", "l2"]
Projection = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_BREAKS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


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


class _Rows:
    """The still-robust samples, compacted: every field is indexed by active row.

    The set only shrinks when a sample succeeds (at most ``n`` times per run), so the
    iterations in between touch no index at all: one proposal, one oracle call and a
    few fused element-wise updates over the same rows.
    """

    def __init__(self, search: _Search, idx: torch.Tensor, since: int) -> None:
        geo = search.geo
        self.idx, self.since, self.n = idx, since, len(idx)
        self.x0 = geo.x[idx]
        self.best = search.x_best[idx]
        self.margin = search.margin[idx]
        self.labels = search.labels[idx]
        self.up: torch.Tensor | None = None
        self.down: torch.Tensor | None = None
        if search.norm == "linf":
            self.up, self.down = geo.step_targets(self.x0, search.eps)

    def __len__(self) -> int:
        return self.n

    def keep(self, mask: torch.Tensor) -> None:
        """Drop the rows where ``mask`` is False."""
        for name in ("idx", "x0", "best", "margin", "labels", "up", "down"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[mask])
        self.n = len(self.idx)


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
        self.spent = 0  # queries over all samples, kept as a Python int (no tensor sync)
        self.queries = torch.zeros(n, dtype=torch.int64, device=geo.device)
        self.x_best = geo.x.clone()
        self.margin = torch.full((n,), float("inf"), dtype=torch.float64, device=geo.device)

    # -- oracle with accounting ---------------------------------------------------------
    def _ask(self, rows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        """Margins of ``rows`` (internal layout); None when out of budget.

        Charges nothing when it returns None; the caller credits the per-sample counts.
        """
        if self.cap is not None and self.spent + len(rows) > self.cap:
            return None
        try:
            scores = self.predict(self.geo.to_rows(rows))
        except QueryBudgetExceeded:
            return None
        self.spent += len(rows)
        return margins(scores.to(torch.float64), labels, targeted=self.targeted)

    def _projected(self, cand: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        if self.project is None:
            return cand
        geo = self.geo
        return geo.from_rows(self.project(geo.to_rows(cand), geo.to_rows(x0)))

    def _flush(self, live: _Rows, iterations: int) -> None:
        """Write the active rows' state and their iteration queries back (exact counts)."""
        self.queries[live.idx] += iterations - live.since
        live.since = iterations
        self.x_best[live.idx] = live.best
        self.margin[live.idx] = live.margin

    # -- the search ------------------------------------------------------------------------
    def run(self, n_queries: int, p_init: float) -> SquareResult:
        geo = self.geo
        everyone = torch.arange(geo.n, device=geo.device)
        clean = self._ask(geo.x, self.labels)
        if clean is None:
            raise QueryBudgetExceeded(
                f"The Square attack cannot afford even the clean check of {geo.n} samples; "
                "raise the query budget or attack fewer samples."
            )
        self.queries += 1
        self.margin = clean
        clean_correct = clean >= 0
        stopped: Literal["finished", "query_budget"] = "finished"
        iterations = 0
        live = _Rows(self, everyone[clean_correct], 0)
        if len(live):
            init = init_delta(geo, self.gen, self.norm, self.eps, len(live))
            cand = self._projected(geo.apply(live.x0, init), live.x0)
            m = self._ask(cand, live.labels)
            if m is None:
                stopped = "query_budget"
            else:
                self.queries[live.idx] += 1
                live.best, live.margin = cand, m
                self._flush(live, 0)
                live.keep(m >= 0)
        n_iter = n_queries - 2
        while stopped == "finished" and iterations < n_iter and len(live):
            p = square_fraction(p_init, iterations, n_iter)
            cand = self._propose(live, p)
            m = self._ask(cand, live.labels)
            if m is None:
                stopped = "query_budget"
                break
            iterations += 1
            better = m < live.margin
            live.margin = torch.where(better, m, live.margin)
            live.best = torch.where(better.view(-1, 1, 1, 1), cand, live.best)
            if float(m.min()) < 0:  # some rows succeeded: they stop here
                self._flush(live, iterations)
                live.keep(live.margin >= 0)
            if self.progress is not None:
                self.progress(len(live))
        if len(live):
            self._flush(live, iterations)
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

    # -- proposals (see `square_steps`) ---------------------------------------------------
    def _propose(self, live: _Rows, p: float) -> torch.Tensor:
        """The next candidate of every active row (bounds, mask and projection applied)."""
        geo = self.geo
        if live.up is not None and live.down is not None:
            cand = linf_candidate(geo, self.gen, p, live.best, live.up, live.down)
        else:
            cand = geo.apply(live.x0, l2_delta(geo, self.gen, p, self.eps, live.best, live.x0))
        return self._projected(cand, live.x0)
