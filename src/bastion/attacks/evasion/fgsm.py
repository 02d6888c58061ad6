"""FGSM: the fast gradient sign method, one step of size ``eps``.

Goodfellow, Shlens and Szegedy, "Explaining and Harnessing Adversarial Examples",
ICLR 2015. For L∞, ``x_adv = clip(x + eps * sign(grad_x L(f(x), y)))``; for L2 the
step follows the normalised gradient (the "fast gradient method" of Kurakin,
Goodfellow and Bengio 2017). ``L`` is the cross-entropy by default.

Shapes: ``x`` ``(n, *shape)`` float on the model's device, ``y`` ``(n,)`` int64;
the result's tensors have the same leading size. Cost: one forward+backward and one
forward to check the result, so ``2 n`` queries.

FGSM is the weakest gradient attack. It is reported next to PGD because a single
step beating an iterative attack is a classic symptom of gradient masking
(Athalye, Carlini and Wagner 2018).

Examples
--------
>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
>>> with torch.no_grad():
...     _ = net[1].weight.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))
...     _ = net[1].bias.zero_()
>>> x = torch.tensor([[0.6, 0.6, 0.5, 0.5]])
>>> r = fgsm(net, x, torch.tensor([0]), eps=0.1)
>>> r.success.tolist(), r.queries, [round(v, 2) for v in r.x_adv[0].tolist()]
([True], 2, [0.5, 0.5, 0.6, 0.6])
"""

from __future__ import annotations

import torch

from bastion.attacks.evasion.budget import Domain, check_eps, check_norm
from bastion.attacks.evasion.losses import LossName, get_loss
from bastion.attacks.evasion.model import ModelLike, as_model, check_labels
from bastion.attacks.evasion.projections import Norm
from bastion.attacks.evasion.result import AttackResult
from bastion.errors import UsageError

__all__ = ["fgsm"]

_WHO = "FGSM"


def fgsm(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: Norm = "linf",
    loss: LossName = "ce",
    domain: Domain | None = None,
) -> AttackResult:
    """One gradient step of size ``eps`` per sample.

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
    loss : {"ce", "dlr", "margin"}
    domain : Domain or None
        Bounds, scale and mutable features; default ``[0, 1]`` with every feature free.

    Returns
    -------
    AttackResult
    """
    norm = check_norm(norm, _WHO)
    eps = check_eps(eps, _WHO)
    if loss not in ("ce", "dlr", "margin"):
        raise UsageError(f"The 'loss' parameter of {_WHO} must be 'ce', 'dlr' or 'margin'.")
    y = check_labels(x, y, _WHO)
    dom = (domain or Domain.unit(x.shape[1:], device=x.device, dtype=x.dtype)).to(x)
    dom.check(x, _WHO)
    f = as_model(model)
    rows0 = f.rows
    loss_fn = get_loss(loss)
    x0 = x.detach()
    xg = x0.clone().requires_grad_(True)
    with f.frozen():
        grad = torch.autograd.grad(loss_fn(f(xg), y).sum(), xg)[0]
        bounds = dom.ball_box(x0, eps) if norm == "linf" else dom.box(x0)
        x_adv = dom.project(x0 + eps * dom.ascent(grad, norm), x0, eps, norm, bounds).detach()
        with torch.no_grad():
            success = f(x_adv).argmax(dim=1) != y
    return AttackResult(
        x_adv=x_adv,
        success=success,
        norms=dom.norm(x_adv - x0, norm),
        queries=f.rows - rows0,
        attack="fgsm",
        norm=norm,
    )
