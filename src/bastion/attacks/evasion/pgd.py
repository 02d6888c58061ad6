"""PGD: projected gradient descent with random restarts and per-sample early stop.

Madry, Makelov, Schmidt, Tsipras and Vladu, "Towards Deep Learning Models Resistant
to Adversarial Attacks", ICLR 2018. Starting from a random point of the
``eps``-ball, repeat ``steps`` times: take a step of size ``step_size`` along the
steepest-ascent direction of the loss (``sign`` of the gradient for L∞, the
normalised gradient for L2), then project back onto the ball and the input bounds.

Beyond the paper:

* **per-sample early stop** -- a row is done at the first iterate the model
  misclassifies, and that iterate is its adversarial example (every iterate lies
  inside the ball, so it is as valid as the last one); done rows leave the batch
  once they make up :data:`COMPACT_SHARE` of it, so the cost falls as the attack
  succeeds;
* **restarts only where needed** -- restart ``r + 1`` attacks only the rows no
  earlier restart broke;
* the default step size ``2.5 * eps / steps`` follows the paper's recommendation.

Shapes: ``x`` ``(n, *shape)`` on the model's device, ``y`` ``(n,)`` int64. Cost per
restart: ``steps`` forward+backward passes and one final forward over the rows still
attacked, each row charged as one query.

Examples
--------
>>> import torch
>>> torch.manual_seed(0) is not None
True
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
>>> x = torch.rand(8, 1, 4, 4)
>>> y = net(x).argmax(1)
>>> r = pgd(net, x, y, eps=0.5, steps=10, seed=0)
>>> bool(r.success.all()), bool((r.x_adv - x).abs().max() <= 0.5 + 1e-6)
(True, True)
>>> bool(r.x_adv.min() >= 0 and r.x_adv.max() <= 1)
True
"""

from __future__ import annotations

import torch

from bastion.attacks.evasion.budget import Domain, check_eps, check_norm, check_positive_int
from bastion.attacks.evasion.losses import LossName, get_loss
from bastion.attacks.evasion.model import ModelLike, as_model, check_labels
from bastion.attacks.evasion.projections import Norm
from bastion.attacks.evasion.result import AttackResult
from bastion.errors import UsageError

__all__ = ["COMPACT_SHARE", "pgd"]

#: Broken rows leave the batch once they are at least this share of it. Dropping
#: them one by one would change the batch shape at almost every step, and every new
#: shape costs the convolution backends a fresh kernel plan; until then they ride
#: along (their first adversarial example is already recorded).
COMPACT_SHARE = 0.125

_WHO = "PGD"


def pgd(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: Norm = "linf",
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    loss: LossName = "ce",
    early_stop: bool = True,
    domain: Domain | None = None,
    seed: int = 0,
) -> AttackResult:
    """Untargeted PGD under an L∞ or L2 budget.

    Parameters
    ----------
    model : TorchTarget, torch.nn.Module or callable
        Returns logits ``(n, K)``; a TorchTarget is charged one query per row.
    x : Tensor
        ``(n, *shape)`` clean inputs inside the domain's bounds.
    y : Tensor
        ``(n,)`` true labels.
    eps : float
        Budget in units of each feature's scale (raw units for inputs in [0, 1]).
    norm : {"linf", "l2"}
    steps : int
        Gradient steps per restart.
    step_size : float or None
        Step length in the same units as ``eps``; default ``2.5 * eps / steps``.
    restarts : int
        Random restarts; each later one only on rows not yet broken.
    random_start : bool
        Start each restart from a random point of the ball (else from ``x``).
    loss : {"ce", "dlr", "margin"}
    early_stop : bool
        Stop attacking a row at its first successful iterate. With False every row
        runs every step (the cost of a plain PGD loop); a row still counts as broken,
        with its first fooling iterate, if any iterate fooled the model.
    domain : Domain or None
        Bounds, scale and mutable features; default ``[0, 1]`` with every feature free.
    seed : int
        Seeds the random starts (a private generator; global RNG untouched).

    Returns
    -------
    AttackResult
        Successful rows hold their first fooling iterate; the others the final
        iterate of the last restart.
    """
    norm = check_norm(norm, _WHO)
    eps = check_eps(eps, _WHO)
    steps = check_positive_int(steps, _WHO, "steps")
    restarts = check_positive_int(restarts, _WHO, "restarts")
    alpha = 2.5 * eps / steps if step_size is None else check_eps(step_size, _WHO, name="step_size")
    if loss not in ("ce", "dlr", "margin"):
        raise UsageError(f"The 'loss' parameter of {_WHO} must be 'ce', 'dlr' or 'margin'.")
    y = check_labels(x, y, _WHO)
    dom = (domain or Domain.unit(x.shape[1:], device=x.device, dtype=x.dtype)).to(x)
    dom.check(x, _WHO)
    f = as_model(model)
    rows0 = f.rows
    loss_fn = get_loss(loss)
    gen = torch.Generator(device=x.device).manual_seed(int(seed))

    x0 = x.detach()
    best = x0.clone()
    success = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
    all_lo, all_hi = dom.ball_box(x0, eps) if norm == "linf" else dom.box(x0)
    with f.frozen():
        for _ in range(restarts):
            idx = (~success).nonzero().squeeze(1)
            if len(idx) == 0:
                break
            xi, yi, lo, hi = x0[idx], y[idx], all_lo[idx], all_hi[idx]
            xa = xi.clone()
            if random_start:
                xa = dom.project(dom.random_start(xi, eps, norm, gen), xi, eps, norm, (lo, hi))
            for t in range(steps + 1):
                last = t == steps
                with torch.set_grad_enabled(not last):
                    xa.requires_grad_(not last)
                    logits = f(xa)
                new = (logits.argmax(dim=1) != yi) & ~success[idx]
                if bool(new.any()):
                    best[idx[new]] = xa.detach()[new]
                    success[idx[new]] = True
                if last:
                    missed = ~success[idx]
                    best[idx[missed]] = xa.detach()[missed]
                    break
                grad = torch.autograd.grad(loss_fn(logits, yi).sum(), xa)[0]
                xa = xa.detach()
                if early_stop:
                    done = success[idx]
                    n_done = int(done.sum())
                    if n_done == len(idx):
                        break
                    if n_done >= COMPACT_SHARE * len(idx):
                        keep = ~done
                        idx, xi, yi, lo, hi, xa, grad = (
                            v[keep] for v in (idx, xi, yi, lo, hi, xa, grad)
                        )
                xa = dom.project(xa + alpha * dom.ascent(grad, norm), xi, eps, norm, (lo, hi))
    return AttackResult(
        x_adv=best,
        success=success,
        norms=dom.norm(best - x0, norm),
        queries=f.rows - rows0,
        attack="pgd",
        norm=norm,
    )
