"""APGD: Auto-PGD with the cross-entropy (APGD-CE) or the DLR loss.

Croce and Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020 (arXiv:2003.01690), Algorithm 1. PGD
without a step size to tune:

* the step size starts at ``2 * eps`` and is **halved at checkpoints**
  ``w_j = ceil(p_j * N)``, ``p_0 = 0``, ``p_1 = 0.22``,
  ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, for every sample where
  (1) the loss increased in fewer than ``rho = 0.75`` of the steps since the last
  checkpoint, or (2) the step size was not reduced at the last checkpoint and the
  best loss has not improved since; such a sample restarts from its best point;
* the update has **momentum** ``alpha = 0.75``:
  ``z = P(x_k + eta * s(grad))``, ``x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)
  (x_k - x_{k-1}))`` (``alpha = 1`` for the first step);
* the targeted version, APGD-T, is in :mod:`.apgd_targeted`; it shares the run
  loop here (:func:`run_copies`).

Details of this implementation: rows stop at their first misclassified iterate
(per-sample early stop, like our PGD, leaving the batch in groups; AutoAttack keeps
iterating them for nothing); a later restart only attacks the rows still robust; a
sample that restarts from its best point restarts without momentum. Random start as
in the reference code: a random corner-biased point of the ball (L∞) or a random
point of its sphere (L2).

Shapes: ``x`` ``(n, *shape)`` on the model's device, ``y`` ``(n,)`` int64. Cost per
run: ``steps`` forward+backward passes and one final forward over the rows still
attacked.

Examples
--------
>>> import torch
>>> torch.manual_seed(0) is not None
True
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
>>> x = torch.rand(6, 1, 4, 4)
>>> y = net(x).argmax(1)
>>> r = apgd(net, x, y, eps=0.5, steps=20, loss="dlr")
>>> bool(r.success.all()), bool((r.x_adv - x).abs().max() <= 0.5 + 1e-6)
(True, True)
>>> checkpoints(100)
[22, 41, 57, 70, 80, 87, 93, 99]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch

from bastion.attacks.evasion.budget import Domain, check_eps, check_norm, check_positive_int
from bastion.attacks.evasion.losses import cross_entropy, dlr
from bastion.attacks.evasion.model import CountedModel, ModelLike, as_model, check_labels
from bastion.attacks.evasion.pgd import COMPACT_SHARE
from bastion.attacks.evasion.projections import Norm
from bastion.attacks.evasion.result import AttackResult
from bastion.errors import UsageError

__all__ = ["COPY_ELEMENTS", "LossFn3", "apgd", "checkpoints", "prepare_inputs", "run_copies"]

#: Largest number of values per state tensor when target classes run in parallel.
COPY_ELEMENTS = 2**25

#: ``(logits, y, target) -> (n,)`` loss to maximise.
LossFn3 = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step size (the paper's ``w_j``)."""
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    marks = {math.ceil(q * steps - 1e-9) for q in p[1:]}
    return sorted(m for m in marks if 0 < m < steps)


@dataclass
class _Rows:
    """Per-row state of one APGD run; every field is indexed by row."""

    idx: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    t: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    cur: torch.Tensor
    prev: torch.Tensor
    grad: torch.Tensor
    loss: torch.Tensor
    best: torch.Tensor
    best_grad: torch.Tensor
    best_loss: torch.Tensor
    ckpt_loss: torch.Tensor
    eta: torch.Tensor
    increases: torch.Tensor
    reduced: torch.Tensor

    def keep(self, mask: torch.Tensor) -> _Rows:
        return replace(self, **{f.name: getattr(self, f.name)[mask] for f in fields(self)})


def _start(
    dom: Domain, x: torch.Tensor, eps: float, norm: Norm, gen: torch.Generator
) -> torch.Tensor:
    if norm == "linf":
        t = 2 * torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) - 1
        t = t / t.reshape(len(t), -1).abs().amax(dim=1).clamp_min(1e-12).view(
            -1, *[1] * (x.ndim - 1)
        )
    else:
        t = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        t = torch.where(dom.mutable, t, 0.0)
        t = t / t.reshape(len(t), -1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
    return x + eps * (t if dom.simple else t * dom.scale)


def _evaluate(
    f: CountedModel, rows: _Rows, loss_fn: LossFn3, need_grad: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    xa = rows.cur.detach().requires_grad_(need_grad)
    with torch.set_grad_enabled(need_grad):
        logits = f(xa)
        loss = loss_fn(logits, rows.y, rows.t)
    grad = torch.autograd.grad(loss.sum(), xa)[0] if need_grad else None
    return logits.detach(), loss.detach(), grad


def _run(
    f: CountedModel,
    dom: Domain,
    rows: _Rows,
    loss_fn: LossFn3,
    *,
    eps: float,
    norm: Norm,
    steps: int,
    rho: float,
    momentum: float,
    out: torch.Tensor,
    success: torch.Tensor,
) -> None:
    """One APGD run on ``rows``; writes successes and best points into ``out``."""
    marks = set(checkpoints(steps))
    last_mark = 0
    shape = (-1,) + (1,) * (rows.x.ndim - 1)

    def record(r: _Rows, logits: torch.Tensor) -> _Rows | None:
        new = (logits.argmax(dim=1) != r.y) & ~success[r.idx]
        if bool(new.any()):
            out[r.idx[new]] = r.cur[new]
            success[r.idx[new]] = True
        done = success[r.idx]  # every copy of a broken row is done
        n_done = int(done.sum())
        if n_done == len(done):
            return None
        if n_done >= COMPACT_SHARE * len(done):
            return r.keep(~done)
        return r

    logits, rows.loss, grad = _evaluate(f, rows, loss_fn, need_grad=True)
    assert grad is not None
    rows.grad, rows.best_grad = grad, grad
    rows.best_loss, rows.ckpt_loss = rows.loss.clone(), rows.loss.clone()
    live = record(rows, logits)
    for k in range(steps):
        if live is None:
            return
        r = live
        a = 1.0 if k == 0 else momentum
        bounds = (r.lo, r.hi)
        z = dom.project(
            r.cur + r.eta.view(shape) * dom.ascent(r.grad, norm), r.x, eps, norm, bounds
        )
        nxt = dom.project(
            r.cur + a * (z - r.cur) + (1 - a) * (r.cur - r.prev), r.x, eps, norm, bounds
        )
        r.prev, r.cur = r.cur, nxt
        logits, loss, grad = _evaluate(f, r, loss_fn, need_grad=k < steps - 1)
        r.increases = r.increases + (loss > r.loss).to(r.increases.dtype)
        r.loss = loss
        better = loss > r.best_loss
        r.best_loss = torch.where(better, loss, r.best_loss)
        r.best = torch.where(better.view(shape), r.cur, r.best)
        if grad is not None:
            r.grad = grad
            r.best_grad = torch.where(better.view(shape), grad, r.best_grad)
        if k + 1 in marks:
            window = k + 1 - last_mark
            halve = (r.increases < rho * window) | (~r.reduced & (r.best_loss <= r.ckpt_loss))
            r.eta = torch.where(halve, r.eta / 2, r.eta)
            r.cur = torch.where(halve.view(shape), r.best, r.cur)
            r.prev = torch.where(halve.view(shape), r.best, r.prev)
            r.grad = torch.where(halve.view(shape), r.best_grad, r.grad)
            r.reduced, r.ckpt_loss = halve, r.best_loss.clone()
            r.increases = torch.zeros_like(r.increases)
            last_mark = k + 1
        live = record(r, logits)
        if live is not None and k == steps - 1:
            failed = ~success[live.idx]
            out[live.idx[failed]] = live.best[failed]
    return


def prepare_inputs(
    who: str,
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: Norm,
    steps: int,
    restarts: int,
    rho: float,
    domain: Domain | None,
) -> tuple[Norm, float, torch.Tensor, Domain, CountedModel]:
    norm = check_norm(norm, who)
    eps = check_eps(eps, who)
    check_positive_int(steps, who, "steps")
    check_positive_int(restarts, who, "restarts")
    if not (isinstance(rho, float) and 0 < rho < 1):
        raise UsageError(f"The 'rho' parameter of {who} must be a float in (0, 1); got {rho!r}.")
    y = check_labels(x, y, who)
    dom = (domain or Domain.unit(x.shape[1:], device=x.device, dtype=x.dtype)).to(x)
    dom.check(x, who)
    return norm, eps, y, dom, as_model(model)


def run_copies(
    f: CountedModel,
    dom: Domain,
    x0: torch.Tensor,
    y: torch.Tensor,
    idx: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn3,
    eps: float,
    norm: Norm,
    steps: int,
    rho: float,
    momentum: float,
    gen: torch.Generator,
    out: torch.Tensor,
    success: torch.Tensor,
) -> None:
    """One APGD run on the copies ``idx`` (row numbers, repeats allowed) of ``x0``."""
    if len(idx) == 0:
        return
    all_lo, all_hi = dom.ball_box(x0, eps) if norm == "linf" else dom.box(x0)
    xi, lo, hi = x0[idx], all_lo[idx], all_hi[idx]
    cur = dom.project(_start(dom, xi, eps, norm, gen), xi, eps, norm, (lo, hi))
    n = len(idx)
    zeros = xi.new_zeros(n)
    rows = _Rows(
        idx=idx,
        x=xi,
        y=y[idx],
        t=targets,
        lo=lo,
        hi=hi,
        cur=cur,
        prev=cur,
        grad=torch.zeros_like(xi),
        loss=zeros,
        best=cur,
        best_grad=torch.zeros_like(xi),
        best_loss=zeros,
        ckpt_loss=zeros,
        eta=torch.full((n,), 2 * eps, device=xi.device, dtype=xi.dtype),
        increases=zeros,
        reduced=torch.zeros(n, dtype=torch.bool, device=xi.device),
    )
    _run(
        f,
        dom,
        rows,
        loss_fn,
        eps=eps,
        norm=norm,
        steps=steps,
        rho=rho,
        momentum=momentum,
        out=out,
        success=success,
    )


def apgd(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: Norm = "linf",
    steps: int = 100,
    restarts: int = 1,
    loss: str = "ce",
    rho: float = 0.75,
    momentum: float = 0.75,
    domain: Domain | None = None,
    seed: int = 0,
) -> AttackResult:
    """Untargeted APGD (APGD-CE with ``loss="ce"``, APGD-DLR with ``loss="dlr"``).

    Parameters
    ----------
    model : TorchTarget, torch.nn.Module or callable
        Returns logits ``(n, K)``; a TorchTarget is charged one query per row.
    x, y : Tensor
        ``(n, *shape)`` clean inputs inside the bounds and ``(n,)`` true labels.
    eps : float
        Budget in units of each feature's scale (raw units for inputs in [0, 1]).
    norm : {"linf", "l2"}
    steps : int
        Iterations ``N`` per restart (100 in AutoAttack).
    restarts : int
        Runs from fresh random starts, each on the rows still robust.
    loss : {"ce", "dlr"}
    rho, momentum : float
        The paper's ``rho = 0.75`` and ``alpha = 0.75``.
    domain : Domain or None
        Bounds, scale and mutable features; default ``[0, 1]``, every feature free.
    seed : int
        Seeds the random starts.

    Returns
    -------
    AttackResult
        Broken rows hold their first misclassified iterate, the others their
        highest-loss point.
    """
    who = f"APGD-{loss.upper()}"
    if loss not in ("ce", "dlr"):
        raise UsageError(f"The 'loss' parameter of APGD must be 'ce' or 'dlr'; got {loss!r}.")
    norm, eps, y, dom, f = prepare_inputs(who, model, x, y, eps, norm, steps, restarts, rho, domain)
    rows0 = f.rows
    base = cross_entropy if loss == "ce" else dlr

    def loss_fn(z: torch.Tensor, yy: torch.Tensor, _t: torch.Tensor) -> torch.Tensor:
        return base(z, yy)

    x0 = x.detach()
    out, success = x0.clone(), torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
    gen = torch.Generator(device=x0.device).manual_seed(int(seed))
    with f.frozen():
        for _ in range(restarts):
            idx = (~success).nonzero().squeeze(1)
            run_copies(
                f,
                dom,
                x0,
                y,
                idx,
                y[idx],
                loss_fn,
                eps,
                norm,
                steps,
                rho,
                momentum,
                gen,
                out,
                success,
            )
    return AttackResult(
        out, success, dom.norm(out - x0, norm), f.rows - rows0, f"apgd-{loss}", norm
    )
