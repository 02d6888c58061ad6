"""HopSkipJump: decision-based black-box evasion from labels alone (L2 and L∞).

Chen, Jordan and Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based
Attack", IEEE Symposium on Security and Privacy 2020 (arXiv:1904.02144).

The attack sees only predicted labels. It starts from any misclassified point (random
uniform noise inside the bounds, or a given ``x_init``) and repeats three steps per
iteration ``t``:

1. *binary search* along the segment from the clean input (L2) or over the L∞ radius
   until the point sits on the decision boundary, to tolerance
   ``theta = gamma / d^{3/2}`` (L2) or ``gamma / d^2`` (L∞), ``d`` the number of
   mutable features (capped at 1e-3 here, so that low-dimensional tabular rows still
   get a precise boundary);
2. *gradient-direction estimate* at the boundary point from
   ``min(init_evals * sqrt(t), max_evals)`` labels of random perturbations of size
   ``delta`` (Gaussian directions for L2, uniform for L∞), with the paper's baseline
   (mean label) subtracted;
3. *geometric step search*: step ``dist / sqrt(t)`` along the estimate (its sign for
   L∞), halved until the point is adversarial again.

It is a minimum-norm attack: the result is, per sample, the smallest perturbation
found and the queries it took; ``budgets`` additionally records after how many
queries the distance first fell to each budget.

Shapes: ``x`` is ``(n, *row)`` and handled as ``(n, d)``. Batched and tensor-native:
every phase sends all active samples' rows in one oracle call (the gradient estimate
in chunks of at most ``chunk_rows`` rows). Bounds and the mutable ``mask`` are always
respected; integer and one-hot constraints are not (use the constrained attack for
tabular rows). Per-sample query counts are exact, ``max_queries`` per sample is never
exceeded (a sample stops when the next iteration could overshoot it), and
``max_total_queries`` or the target's budget stop the run with a partial result.
Departures, stated: before random noise, an untargeted run first tries the nearest
correctly classified rows of the batch with another label as starting points (their
mutable features pasted onto the sample; a start found in a few queries where uniform
noise may never be misclassified, e.g. on tabular data); the paper's initial binary
search is merged into the first iteration's; and a sample whose geometric search fails
25 halvings keeps its point.

Examples
--------
>>> import torch
>>> labels = lambda x: (x[:, 0] > x[:, 1]).long()          # a linear label-only "model"
>>> x = torch.tensor([[0.8, 0.2], [0.3, 0.9]])
>>> r = hop_skip_jump(labels, x, torch.tensor([1, 0]), norm="l2", lower=0.0, upper=1.0,
...                   max_queries=1000, seed=0)
>>> r.found.tolist(), bool(((r.distance - 0.6 / 2**0.5).abs() < 0.01).all())  # near optimal
([True, True], True)
>>> bool((r.queries <= 1000).all())
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from bastion.attacks.evasion.geometry import SearchGeometry, check_attack_inputs
from bastion.attacks.evasion.queries import LabelFn
from bastion.errors import QueryBudgetExceeded, UsageError

__all__ = ["HopSkipJumpResult", "hop_skip_jump"]

_HALVINGS = 25


class _OutOfBudget(Exception):
    """Internal: the run's query cap would be exceeded."""


@dataclass(frozen=True)
class HopSkipJumpResult:
    """What :func:`hop_skip_jump` found, per sample.

    Attributes
    ----------
    x_adv : Tensor
        ``(n, *row)`` closest adversarial input found; the clean input where none was.
    found : Tensor
        ``(n,)`` bool: an adversarial input was found (always, for samples already
        misclassified when clean).
    distance : Tensor
        ``(n,)`` float64 norm of ``(x_adv - x) / scale``; 0 for samples misclassified
        when clean, ``inf`` where nothing was found.
    queries : Tensor
        ``(n,)`` int64 labels asked for each sample.
    clean_correct : Tensor
        ``(n,)`` bool: the clean input did not already meet the goal.
    queries_to_budget : Tensor
        ``(n, len(budgets))`` int64: queries spent when the distance first fell to
        each budget; ``-1`` if it never did (1, the clean check, where the clean input
        was already adversarial).
    iterations : int
    stopped : {"finished", "query_budget"}
    """

    x_adv: torch.Tensor
    found: torch.Tensor
    distance: torch.Tensor
    queries: torch.Tensor
    clean_correct: torch.Tensor
    queries_to_budget: torch.Tensor
    iterations: int
    stopped: Literal["finished", "query_budget"]

    def success_at(self, eps: float) -> torch.Tensor:
        """``(n,)`` bool: an adversarial input within ``eps`` was found."""
        return self.found & (self.distance <= eps * (1 + 1e-6))


def hop_skip_jump(
    predict_labels: LabelFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: Literal["l2", "linf"] = "l2",
    lower: float | torch.Tensor,
    upper: float | torch.Tensor,
    max_queries: int = 5000,
    max_iterations: int = 64,
    init_evals: int = 100,
    max_evals: int = 10_000,
    init_tries: int = 100,
    gamma: float = 1.0,
    seed: int = 0,
    y_target: torch.Tensor | None = None,
    x_init: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    budgets: Sequence[float] = (),
    max_total_queries: int | None = None,
    chunk_rows: int = 8192,
    progress: Callable[[int], None] | None = None,
) -> HopSkipJumpResult:
    """Run HopSkipJump on a batch.

    Parameters
    ----------
    predict_labels : callable
        ``(m, *row)`` -> ``(m,)`` int64 labels (see
        :func:`bastion.attacks.evasion.queries.label_oracle`).
    x, y : Tensor
        ``(n, *row)`` clean inputs inside the bounds, ``(n,)`` true labels.
    norm : {"l2", "linf"}
    lower, upper : float or Tensor
        Finite bounds (scalars or row-shaped); the random start is drawn inside them.
    max_queries : int
        Most labels asked per sample, the clean check included.
    max_iterations : int
        Most iterations (each: estimate, step, binary search).
    init_evals, max_evals : int
        Gradient-estimate sample size at iteration 1 and its cap.
    init_tries : int
        Random draws per sample to find a first adversarial point.
    gamma : float
        Binary-search tolerance factor (paper: 1.0).
    seed : int
    y_target : Tensor or None
        ``(n,)`` target labels for a targeted attack (give ``x_init`` of those classes).
    x_init : Tensor or None
        ``(n, *row)`` starting points that already meet the goal.
    scale : Tensor or None
        Row-shaped per-feature units in which distances are measured.
    mask : Tensor or None
        Row-shaped bool: features the attack may change.
    budgets : sequence of float
        Distances whose queries-to-success to record.
    max_total_queries : int or None
    chunk_rows : int
        Most rows per oracle call in the gradient estimate.
    progress : callable or None
        Called after each iteration with the number of samples still attacked.

    Returns
    -------
    HopSkipJumpResult
    """
    if norm not in ("l2", "linf"):
        raise UsageError(
            f"The 'norm' parameter of HopSkipJump must be 'l2' or 'linf'; got {norm!r}."
        )
    for name, value, low in (
        ("max_queries", max_queries, 2),
        ("max_iterations", max_iterations, 1),
        ("init_evals", init_evals, 1),
        ("max_evals", max_evals, 1),
        ("init_tries", init_tries, 1),
        ("chunk_rows", chunk_rows, 1),
    ):
        if not isinstance(value, int) or value < low:
            raise UsageError(
                f"The {name!r} parameter of HopSkipJump must be an integer >= {low}; got {value!r}."
            )
    if not (math.isfinite(gamma) and gamma > 0):
        raise UsageError(
            f"The 'gamma' parameter of HopSkipJump must be a float > 0; got {gamma!r}."
        )
    geo = SearchGeometry.build(x, y, lower=lower, upper=upper, scale=scale, mask=mask)
    if not bool(torch.isfinite(geo.lo).all() and torch.isfinite(geo.hi).all()):
        raise UsageError(
            "HopSkipJump needs finite lower and upper bounds for every feature to draw its "
            "random start; declare them in the input spec or pass x_init."
        )
    labels = check_attack_inputs(x, y if y_target is None else y_target, what="y_target")
    run = _HSJ(
        predict_labels,
        geo,
        labels,
        y_target is not None,
        norm,
        gamma,
        seed,
        chunk_rows,
        max_total_queries,
        [float(b) for b in budgets],
    )
    return run.run(x_init, max_queries, max_iterations, init_evals, max_evals, init_tries, progress)


class _HSJ:
    """State of one run, flattened to ``(n, d)``."""

    def __init__(
        self,
        predict: LabelFn,
        geo: SearchGeometry,
        labels: torch.Tensor,
        targeted: bool,
        norm: Literal["l2", "linf"],
        gamma: float,
        seed: int,
        chunk: int,
        cap: int | None,
        budgets: list[float],
    ) -> None:
        n = geo.n
        self.predict, self.geo, self.labels, self.targeted = predict, geo, labels, targeted
        self.norm, self.chunk, self.cap, self.budgets = norm, chunk, cap, budgets
        self.x0 = geo.x.reshape(n, -1)
        self.lo, self.hi = geo.lo.reshape(1, -1), geo.hi.reshape(1, -1)
        self.scale = geo.scale.reshape(1, -1)
        self.free = geo.allowed.reshape(1, -1)
        d = int(self.free.sum())
        self.theta = min(gamma / (d * math.sqrt(d)) if norm == "l2" else gamma / d**2, 1e-3)
        self.d = d
        reach = max(float(((geo.hi - geo.lo) / geo.scale).amax()), 1.0) if norm == "linf" else 1.0
        self.bs_steps = math.ceil(math.log2(reach / self.theta)) + 1
        self.gen = torch.Generator(device=geo.device).manual_seed(int(seed))
        self.queries = torch.zeros(n, dtype=torch.int64, device=geo.device)
        self.best = self.x0.clone()
        self.dist = torch.full((n,), math.inf, dtype=torch.float64, device=geo.device)
        self.hit = torch.full((n, len(budgets)), -1, dtype=torch.int64, device=geo.device)

    # -- helpers ---------------------------------------------------------------------------
    def _distance(self, xa: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        diff = ((xa - self.x0[idx]) / self.scale).to(torch.float64)
        return diff.abs().amax(dim=1) if self.norm == "linf" else diff.norm(dim=1)

    def _clip(self, z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        z = torch.clamp(z, self.lo, self.hi)
        return torch.where(self.free.bool(), z, self.x0[idx])

    def _adv(self, rows: torch.Tensor, idx: torch.Tensor, per: int = 1) -> torch.Tensor:
        """Goal met for ``rows``; ``per`` consecutive rows belong to each sample of ``idx``."""
        if self.cap is not None and int(self.queries.sum()) + len(rows) > self.cap:
            raise _OutOfBudget
        try:
            pred = self.predict(self.geo.to_rows(self.geo.from_rows(rows)))
        except QueryBudgetExceeded:
            raise _OutOfBudget from None
        self.queries[idx] += per
        want = self.labels[idx].repeat_interleave(per)
        return pred == want if self.targeted else pred != want

    def _record(self, idx: torch.Tensor, xa: torch.Tensor) -> None:
        dist = self._distance(xa, idx)
        better = dist < self.dist[idx]
        self.dist[idx] = torch.where(better, dist, self.dist[idx])
        self.best[idx] = torch.where(better[:, None], xa, self.best[idx])
        for k, b in enumerate(self.budgets):
            now = (self.dist[idx] <= b * (1 + 1e-6)) & (self.hit[idx, k] < 0)
            self.hit[idx, k] = torch.where(now, self.queries[idx], self.hit[idx, k])

    # -- phases ----------------------------------------------------------------------------
    def _initial(
        self, idx: torch.Tensor, x_init: torch.Tensor | None, tries: int, donors: torch.Tensor
    ) -> torch.Tensor:
        """A first adversarial point per sample (rows of samples with none stay clean).

        ``x_init`` if given; else, untargeted, the nearest correctly classified rows of the
        batch with another label (their mutable features pasted in, up to 5 tries), then
        uniform noise inside the bounds.
        """
        start = self.x0[idx].clone()
        if x_init is not None:
            cand = self._clip(x_init.reshape(len(x_init), -1)[idx].to(start), idx)
            ok = self._adv(cand, idx)
            start[ok] = cand[ok]
            return start
        todo = torch.ones(len(idx), dtype=torch.bool, device=start.device)
        spent = 0
        if not self.targeted and len(donors):
            unit = self.free / self.scale
            gap = torch.cdist(self.x0[idx] * unit, self.x0[donors] * unit)
            same = self.labels[idx][:, None] == self.labels[donors][None, :]
            order = gap.masked_fill(same, math.inf).argsort(dim=1)
            usable = (~same).sum(dim=1)
            for k in range(min(5, tries, len(donors))):
                rows = (todo & (usable > k)).nonzero()[:, 0]
                if len(rows) == 0:
                    break
                donor = donors[order[rows, k]]
                cand = self._clip(self.x0[donor], idx[rows])
                ok = self._adv(cand, idx[rows])
                start[rows[ok]] = cand[ok]
                todo[rows[ok]] = False
                spent += 1
        for _ in range(tries - spent):
            if not bool(todo.any()):
                break
            sub = idx[todo]
            noise = torch.rand(start[todo].shape, generator=self.gen, device=start.device)
            cand = self._clip(self.lo + noise.to(start) * (self.hi - self.lo), sub)
            ok = self._adv(cand, sub)
            rows = todo.nonzero()[:, 0][ok]
            start[rows] = cand[ok]
            todo[rows] = False
        return start

    def _binary_search(self, idx: torch.Tensor, xa: torch.Tensor) -> torch.Tensor:
        """Move each adversarial ``xa`` onto the boundary between it and the clean input."""
        if self.norm == "l2":
            low = torch.zeros(len(idx), dtype=xa.dtype, device=xa.device)
            high = torch.ones_like(low)
            tol = torch.full_like(low, self.theta)
        else:
            high = self._distance(xa, idx).to(xa.dtype)
            low = torch.zeros_like(high)
            tol = torch.clamp(high * self.theta, max=self.theta)

        def point(t: torch.Tensor, sub: torch.Tensor) -> torch.Tensor:
            base, adv = self.x0[idx[sub]], xa[sub]
            if self.norm == "l2":
                return self._clip((1 - t[:, None]) * base + t[:, None] * adv, idx[sub])
            r = t[:, None] * self.scale
            return self._clip(torch.maximum(torch.minimum(adv, base + r), base - r), idx[sub])

        for _ in range(self.bs_steps):  # enough halvings to reach every tolerance
            open_ = (high - low) > tol
            if not bool(open_.any()):
                break
            sub = open_.nonzero()[:, 0]
            mid = (low[sub] + high[sub]) / 2
            ok = self._adv(point(mid, sub), idx[sub])
            high[sub] = torch.where(ok, mid, high[sub])
            low[sub] = torch.where(ok, low[sub], mid)
        return point(high, torch.arange(len(idx), device=xa.device))

    def _direction(
        self, idx: torch.Tensor, xb: torch.Tensor, n_evals: int, delta: torch.Tensor
    ) -> torch.Tensor:
        """Estimated gradient direction of the "adversarial" indicator at boundary points."""
        a, dim = xb.shape
        out = torch.zeros_like(xb)
        per_call = max(1, self.chunk // n_evals)
        for start in range(0, a, per_call):
            s = slice(start, start + per_call)
            m = len(xb[s])
            shape = (m, n_evals, dim)
            if self.norm == "l2":
                u = torch.randn(shape, generator=self.gen, device=xb.device, dtype=xb.dtype)
            else:
                u = torch.rand(shape, generator=self.gen, device=xb.device, dtype=xb.dtype) * 2 - 1
            u = u * self.free
            u = u / u.norm(dim=2, keepdim=True).clamp_min(1e-12)
            step = (delta[s, None, None] * self.scale).to(xb.dtype)
            rows_idx = idx[s].repeat_interleave(n_evals)
            probe = self._clip((xb[s, None, :] + step * u).reshape(m * n_evals, dim), rows_idx)
            u = (probe.reshape(shape) - xb[s, None, :]) / step  # the move actually made
            phi = self._adv(probe, idx[s], per=n_evals).reshape(m, n_evals).to(xb.dtype) * 2 - 1
            mean = phi.mean(dim=1, keepdim=True)
            centred = torch.where(mean.abs() == 1, phi, phi - mean)
            grad = (centred[:, :, None] * u).mean(dim=1)
            out[s] = (
                grad.sign()
                if self.norm == "linf"
                else grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
            )
        return out

    def _step(
        self, idx: torch.Tensor, xb: torch.Tensor, v: torch.Tensor, size: torch.Tensor
    ) -> torch.Tensor:
        """Geometric step-size search: the largest ``size / 2^k`` that stays adversarial."""
        eps = size.clone().to(xb.dtype)
        new = xb.clone()
        todo = torch.ones(len(idx), dtype=torch.bool, device=xb.device)
        for _ in range(_HALVINGS):
            if not bool(todo.any()):
                break
            sub = todo.nonzero()[:, 0]
            cand = self._clip(xb[sub] + eps[sub, None] * v[sub] * self.scale, idx[sub])
            ok = self._adv(cand, idx[sub])
            new[sub[ok]] = cand[ok]
            todo[sub[ok]] = False
            eps[sub[~ok]] /= 2
        return new

    # -- the run ---------------------------------------------------------------------------
    def run(
        self,
        x_init: torch.Tensor | None,
        max_queries: int,
        max_iterations: int,
        init_evals: int,
        max_evals: int,
        init_tries: int,
        progress: Callable[[int], None] | None,
    ) -> HopSkipJumpResult:
        n, dev = self.geo.n, self.geo.device
        everyone = torch.arange(n, device=dev)
        stopped: Literal["finished", "query_budget"] = "finished"
        iterations = 0
        try:
            clean_adv = self._adv(self.x0, everyone)
        except _OutOfBudget:
            raise QueryBudgetExceeded(
                f"HopSkipJump cannot afford even the clean check of {n} samples; raise the "
                "query budget or attack fewer samples."
            ) from None
        clean_correct = ~clean_adv
        self._record(everyone[clean_adv], self.x0[clean_adv])
        xa = self.x0.clone()
        try:
            idx = everyone[clean_correct]
            if len(idx):
                tries = min(init_tries, max_queries - 1)
                xa[idx] = self._initial(idx, x_init, tries, everyone[clean_correct])
            alive = clean_correct & (xa != self.x0).any(dim=1)
            self._record(everyone[alive], xa[alive])
            while iterations < max_iterations:
                t = iterations + 1
                n_evals = min(int(init_evals * math.sqrt(t)), max_evals)
                need = 2 * self.bs_steps + n_evals + _HALVINGS
                alive &= (max_queries - self.queries) >= need
                idx = everyone[alive]
                if len(idx) == 0:
                    break
                if t == 1:
                    xa[idx] = self._binary_search(idx, xa[idx])
                    self._record(idx, xa[idx])
                dist = self._distance(xa[idx], idx)
                if t == 1:
                    delta = torch.full_like(
                        dist, 0.1 * float(((self.hi - self.lo) / self.scale).amax())
                    )
                else:
                    delta = dist * (math.sqrt(self.d) if self.norm == "l2" else self.d) * self.theta
                v = self._direction(idx, xa[idx], n_evals, delta.clamp_min(1e-12))
                stepped = self._step(idx, xa[idx], v, dist / math.sqrt(t))
                xa[idx] = self._binary_search(idx, stepped)
                self._record(idx, xa[idx])
                iterations += 1
                if progress is not None:
                    progress(int(alive.sum()))
        except _OutOfBudget:
            stopped = "query_budget"
        found = torch.isfinite(self.dist)
        return HopSkipJumpResult(
            x_adv=self.geo.to_rows(self.geo.from_rows(self.best)),
            found=found,
            distance=self.dist,
            queries=self.queries,
            clean_correct=clean_correct,
            queries_to_budget=self.hit,
            iterations=iterations,
            stopped=stopped,
        )
