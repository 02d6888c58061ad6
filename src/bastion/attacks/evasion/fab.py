"""FAB: the fast adaptive boundary attack, untargeted and targeted (FAB-T).

Croce and Hein, "Minimally distorted adversarial examples with a fast adaptive
boundary attack", ICML 2020 (arXiv:1907.02044). A *minimum-norm* attack: it looks
for the smallest perturbation that changes the prediction, not for any
perturbation inside a fixed budget. Each step

1. linearises the model at the current point ``x_k``: for a class ``s``, the
   decision boundary against the true class ``y`` is approximated by the hyperplane
   ``w_s · (z - x_k) + b_s = 0`` with ``b_s = f_s(x_k) - f_y(x_k)`` and
   ``w_s = grad (f_s - f_y)(x_k)``;
2. picks the closest hyperplane, ``s* = argmin_s |b_s| / ||w_s||_q`` (``q`` the dual
   norm; FAB-T uses one given target class instead);
3. projects both ``x_k`` and the original ``x`` onto that hyperplane within the box,
   ``d_k`` and ``d_0``, and moves to a convex combination biased towards the
   original: ``x_{k+1} = clip((1 - a)(x_k + eta d_k) + a (x + eta d_0))`` with
   ``a = min(||d_k|| / (||d_k|| + ||d_0||), alpha_max)``;
4. when ``x_{k+1}`` is adversarial, records it if it is the smallest so far and
   steps back towards ``x``: ``x_{k+1} = x + beta (x_{k+1} - x)``.

Defaults are the paper's and AutoAttack's: ``eta = 1.05``, ``alpha_max = 0.1``,
``beta = 0.9``, 100 steps; FAB-T attacks the 9 classes with the highest clean logits
after the prediction. Restarts after the first start from a random point at radius
``min(best, eps) / 2``. Added here (documented, not in the paper): a final bisection
along the segment from ``x`` to the best adversarial example (``refine_steps``),
which can only shrink the reported norm; FAB-T runs several target classes in one
batch (like :func:`~bastion.attacks.evasion.apgd.apgd_targeted`); and with
``stop_at`` a row stops once it has an adversarial example that small, which is all
an ensemble with a fixed budget needs.

Shapes: ``x`` ``(n, *shape)``, ``y`` ``(n,)`` int64; internally rows are flattened
to ``(n, D)``. Cost: one clean forward; per step one forward with the class gradients
(untargeted: all ``K`` logits' gradients via one batched backward) and one plain
forward to check the new point; ``refine_steps`` forwards at the end.

Examples
--------
>>> import torch
>>> net = torch.nn.Linear(2, 2, bias=False)
>>> with torch.no_grad():
...     _ = net.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
>>> x = torch.tensor([[0.6, 0.4]])            # class 0; the boundary is x0 == x1
>>> r = fab(net, x, torch.tensor([0]), norm="linf", steps=20)
>>> bool(r.success[0]), round(float(r.norms[0]), 2)
(True, 0.1)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bastion.attacks.evasion.apgd import COPY_ELEMENTS
from bastion.attacks.evasion.budget import Domain, check_eps, check_norm, check_positive_int
from bastion.attacks.evasion.model import CountedModel, ModelLike, as_model, check_labels
from bastion.attacks.evasion.pgd import COMPACT_SHARE
from bastion.attacks.evasion.projections import Norm, dual_norm, hyperplane_projection, lp_norm
from bastion.attacks.evasion.result import AttackResult
from bastion.errors import UsageError

__all__ = ["fab"]

_TINY = 1e-12


def _class_gradients(
    f: CountedModel, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits ``(n, K)``, ``b`` and ``w`` of the boundaries against ``y``.

    Targeted (``t`` given): ``b (n,)``, ``w (n, D)`` for class ``t``. Untargeted:
    ``b (n, K)``, ``w (n, K, D)`` for every class (zero for ``y`` itself).
    """
    xa = x.detach().requires_grad_(True)
    logits = f(xa)
    n = len(x)
    picked_y = logits.gather(1, y[:, None])[:, 0]
    if t is not None:
        diff = logits.gather(1, t[:, None])[:, 0] - picked_y
        w = torch.autograd.grad(diff.sum(), xa)[0].reshape(n, -1)
        return logits.detach(), diff.detach(), w
    k = logits.shape[1]
    basis = torch.eye(k, device=x.device, dtype=logits.dtype)[:, None, :].expand(k, n, k)
    try:
        jac = torch.autograd.grad(logits, xa, grad_outputs=basis, is_grads_batched=True)[0]
    except RuntimeError:  # a model whose backward cannot be vmapped: one pass per class
        jac = torch.stack(
            [
                torch.autograd.grad(logits[:, c].sum(), xa, retain_graph=c < k - 1)[0]
                for c in range(k)
            ]
        )
    jac = jac.transpose(0, 1).reshape(n, k, -1)
    w = jac - jac[torch.arange(n, device=x.device), y][:, None, :]
    return logits.detach(), (logits - picked_y[:, None]).detach(), w


def _steps(
    f: CountedModel,
    dom: Domain,
    x0: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor | None,
    owner: torch.Tensor,
    start: torch.Tensor,
    cfg: _Config,
    best: torch.Tensor,
    best_norm: torch.Tensor,
) -> None:
    """One FAB run over copies ``x0 (C, D)`` of rows ``owner``; improves ``best`` in place."""
    s = dom.scale.reshape(1, -1)
    free = dom.mutable.reshape(1, -1)
    shape = dom.row_shape
    ids = torch.arange(len(x0), device=x0.device)
    lo, hi = (v.reshape(len(x0), -1) for v in dom.box(x0.reshape(len(x0), *shape)))
    cur = start
    for _ in range(cfg.steps):
        n = len(ids)
        rows = torch.arange(n, device=x0.device)
        _, b, w = _class_gradients(f, cur.reshape(n, *shape), y, t)
        # Gradients in units of the scale; frozen features cannot help.
        if w.ndim == 2:
            w = torch.where(free, w * s, 0.0)
        else:
            w = torch.where(free[:, None, :], w * s[:, None, :], 0.0)
            dist = b.abs() / (
                dual_norm(w.reshape(-1, w.shape[2]), cfg.norm).reshape(b.shape) + _TINY
            )
            dist[rows, y] = float("inf")
            pick = dist.argmin(dim=1)
            w, b = w[rows, pick], b[rows, pick]
        d_cur = hyperplane_projection(w, -b, (lo - cur) / s, (hi - cur) / s, cfg.norm)
        c_orig = -b - (w * (x0 - cur) / s).sum(dim=1)
        d_orig = hyperplane_projection(w, c_orig, (lo - x0) / s, (hi - x0) / s, cfg.norm)
        n_cur, n_orig = lp_norm(d_cur, cfg.norm), lp_norm(d_orig, cfg.norm)
        a = (n_cur / (n_cur + n_orig + _TINY)).clamp(0.0, cfg.alpha_max)[:, None]
        cur = (1 - a) * (cur + cfg.eta * d_cur * s) + a * (x0 + cfg.eta * d_orig * s)
        cur = torch.clamp(cur, lo, hi)
        with torch.no_grad():
            adv = f(cur.reshape(n, *shape)).argmax(dim=1) != y
        if not bool(adv.any()):
            continue
        size = lp_norm((cur - x0) / s, cfg.norm)
        better = adv & (size < best_norm[ids])
        best[ids[better]] = cur[better]
        best_norm[ids[better]] = size[better]
        cur = torch.where(adv[:, None], x0 + cfg.beta * (cur - x0), cur)
        if cfg.stop_at is None:
            continue
        row_best = torch.full(
            (int(owner.max()) + 1,), float("inf"), device=x0.device, dtype=best_norm.dtype
        ).scatter_reduce(0, owner, best_norm, "amin")
        keep = row_best[owner[ids]] > cfg.stop_at
        n_done = len(keep) - int(keep.sum())
        if n_done == len(keep):
            return
        if n_done >= COMPACT_SHARE * len(keep):
            ids, x0, y, cur, lo, hi = (v[keep] for v in (ids, x0, y, cur, lo, hi))
            t = None if t is None else t[keep]


def _refine(
    f: CountedModel,
    dom: Domain,
    x0: torch.Tensor,
    y: torch.Tensor,
    best: torch.Tensor,
    best_norm: torch.Tensor,
    norm: Norm,
    refine_steps: int,
) -> None:
    """Bisect along ``x0 -> best`` for the closest adversarial point (in place)."""
    found = torch.isfinite(best_norm).nonzero().squeeze(1)
    if len(found) == 0 or refine_steps == 0:
        return
    xo, xb, yy = x0[found], best[found], y[found]
    lo_t = torch.zeros(len(found), 1, device=x0.device, dtype=x0.dtype)
    hi_t = torch.ones_like(lo_t)
    for _ in range(refine_steps):
        mid = (lo_t + hi_t) / 2
        with torch.no_grad():
            adv = f((xo + mid * (xb - xo)).reshape(len(found), *dom.row_shape)).argmax(1) != yy
        hi_t = torch.where(adv[:, None], mid, hi_t)
        lo_t = torch.where(adv[:, None], lo_t, mid)
    closer = xo + hi_t * (xb - xo)
    best[found] = closer
    best_norm[found] = lp_norm((closer - xo) / dom.scale.reshape(1, -1), norm)


@dataclass(frozen=True)
class _Config:
    norm: Norm
    steps: int
    eta: float
    alpha_max: float
    beta: float
    stop_at: float | None


def _random_start(
    dom: Domain, x0: torch.Tensor, radius: torch.Tensor, norm: Norm, gen: torch.Generator
) -> torch.Tensor:
    """A random point at ``radius / 2`` (per row) around ``x0 (m, D)``, inside the box."""
    noise = 2 * torch.rand(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype) - 1
    if norm == "l2":
        noise = noise / noise.norm(dim=1, keepdim=True).clamp_min(_TINY)
    else:
        noise = noise / noise.abs().amax(dim=1, keepdim=True).clamp_min(_TINY)
    lo, hi = (v.reshape(len(x0), -1) for v in dom.box(x0.reshape(len(x0), *dom.row_shape)))
    moved = x0 + noise * (radius[:, None] / 2) * dom.scale.reshape(1, -1)
    return torch.clamp(moved, lo, hi)


def fab(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: Norm = "linf",
    steps: int = 100,
    restarts: int = 1,
    targeted: bool = False,
    n_target_classes: int = 9,
    eps: float | None = None,
    stop_at: float | None = None,
    eta: float = 1.05,
    alpha_max: float = 0.1,
    beta: float = 0.9,
    refine_steps: int = 10,
    domain: Domain | None = None,
    seed: int = 0,
) -> AttackResult:
    """Smallest adversarial perturbation per sample (FAB, or FAB-T with ``targeted``).

    Parameters
    ----------
    model : TorchTarget, torch.nn.Module or callable
        Returns logits ``(n, K)``; a TorchTarget is charged one query per row.
    x, y : Tensor
        ``(n, *shape)`` clean inputs inside the bounds and ``(n,)`` true labels.
    norm : {"linf", "l2"}
    steps : int
        Iterations per run (per target class for FAB-T).
    restarts : int
        Runs per sample (per target class); later ones start at a random point.
    targeted : bool
        FAB-T: one run per target class, the top ``n_target_classes`` after the
        clean prediction (several target classes share a batch).
    eps : float or None
        Only sets the radius of random restarts (``min(best, eps) / 2``); results
        are not limited to it.
    stop_at : float or None
        Stop a row once it has an adversarial example of at most this size (its
        norm is then an upper bound, not the minimum FAB would reach).
    eta, alpha_max, beta : float
        Overshoot, bias towards the original, backward-step factor.
    refine_steps : int
        Bisection steps on the final segment (0 to skip).
    domain : Domain or None
        Bounds, scale and mutable features; default ``[0, 1]``, every feature free.
    seed : int

    Returns
    -------
    AttackResult
        ``norms`` is the smallest perturbation found (0 where the clean input is
        already misclassified, ``inf`` where none was found; then ``x_adv = x``).
    """
    who = "FAB-T" if targeted else "FAB"
    norm = check_norm(norm, who)
    for name, value in (("steps", steps), ("restarts", restarts)):
        check_positive_int(value, who, name)
    check_positive_int(n_target_classes, who, "n_target_classes")
    check_positive_int(refine_steps, who, "refine_steps", minimum=0)
    radius = None if eps is None else check_eps(eps, who)
    limit = None if stop_at is None else check_eps(stop_at, who, name="stop_at")
    for label, factor, top in (
        ("eta", eta, 2.0),
        ("alpha_max", alpha_max, 1.0),
        ("beta", beta, 1.0),
    ):
        if not (isinstance(factor, float) and 0 < factor <= top):
            raise UsageError(
                f"The {label!r} parameter of {who} must be in (0, {top:g}]; got {factor!r}."
            )
    y = check_labels(x, y, who)
    dom = (domain or Domain.unit(x.shape[1:], device=x.device, dtype=x.dtype)).to(x)
    dom.check(x, who)
    cfg = _Config(norm, steps, eta, alpha_max, beta, limit)
    f = as_model(model)
    rows0 = f.rows
    n = len(x)
    flat = x.detach().reshape(n, -1)
    best = flat.clone()
    best_norm = torch.full((n,), float("inf"), device=x.device, dtype=x.dtype)
    with torch.no_grad():
        clean = f(x.detach())
    best_norm[clean.argmax(dim=1) != y] = 0.0
    todo = torch.isinf(best_norm)
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    ranked = clean.argsort(dim=1, descending=True)
    ranks: list[int | None] = (
        list(range(1, min(n_target_classes, clean.shape[1] - 1) + 1)) if targeted else [None]
    )
    with f.frozen():
        if bool(todo.any()) and dom.any_mutable:
            for r in range(restarts):
                pos = 0
                while pos < len(ranks):
                    live = todo & (best_norm > (limit if limit is not None else -1.0))
                    idx = live.nonzero().squeeze(1)
                    if len(idx) == 0:
                        break
                    width = max(1, COPY_ELEMENTS // (len(idx) * flat.shape[1]))
                    group = ranks[pos : pos + width]
                    pos += len(group)
                    owner = idx.repeat(len(group))
                    t = None if group[0] is None else torch.cat([ranked[idx, k] for k in group])
                    x0 = flat[owner]
                    start = x0
                    if r > 0:
                        size = torch.where(torch.isfinite(best_norm), best_norm, radius or 0.0)
                        if radius is not None:
                            size = size.clamp(max=radius)
                        start = _random_start(dom, x0, size[owner], norm, gen)
                    c_best, c_norm = x0.clone(), torch.full_like(best_norm[owner], float("inf"))
                    _steps(f, dom, x0, y[owner], t, owner, start, cfg, c_best, c_norm)
                    for block in range(len(group)):  # keep each row's smallest over its copies
                        part = slice(block * len(idx), (block + 1) * len(idx))
                        better = c_norm[part] < best_norm[idx]
                        best[idx[better]] = c_best[part][better]
                        best_norm[idx[better]] = c_norm[part][better]
            rows = todo.nonzero().squeeze(1)
            sub_best, sub_norm = best[rows], best_norm[rows]
            _refine(f, dom, flat[rows], y[rows], sub_best, sub_norm, norm, refine_steps)
            best[rows], best_norm[rows] = sub_best, sub_norm
    return AttackResult(
        x_adv=best.reshape(x.shape),
        success=torch.isfinite(best_norm),
        norms=best_norm,
        queries=f.rows - rows0,
        attack="fab-t" if targeted else "fab",
        norm=norm,
    )
