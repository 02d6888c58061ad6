"""APGD-T: Auto-PGD with the targeted DLR loss, one run per target class.

Croce and Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020 (arXiv:2003.01690), Section 4 and the
AutoAttack standard version: the APGD run of :mod:`.apgd` (step-size halving at
checkpoints, momentum) maximising the targeted DLR loss
``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` towards each of the classes with
the 2nd, 3rd, ... highest clean logits (9 by default). Success means the row is
*misclassified*, towards the target or not, as in AutoAttack.

Shapes: ``x`` ``(n, *shape)`` on the model's device, ``y`` ``(n,)`` int64. Cost: one
forward of ``x`` to rank the target classes, then per target class and restart
``steps`` forward+backward passes and one final forward over the rows still standing.

Examples
--------
>>> import torch
>>> torch.manual_seed(0) is not None
True
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
>>> x = torch.rand(6, 1, 4, 4)
>>> y = net(x).argmax(1)
>>> r = apgd_targeted(net, x, y, eps=0.5, steps=20, n_target_classes=2)
>>> bool(r.success.all()), r.attack
(True, 'apgd-t')
"""

from __future__ import annotations

import torch

from bastion.attacks.evasion.apgd import COPY_ELEMENTS, prepare_inputs, run_copies
from bastion.attacks.evasion.budget import Domain, check_positive_int
from bastion.attacks.evasion.losses import dlr_targeted
from bastion.attacks.evasion.model import ModelLike
from bastion.attacks.evasion.projections import Norm
from bastion.attacks.evasion.result import AttackResult

__all__ = ["apgd_targeted"]


def apgd_targeted(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: Norm = "linf",
    steps: int = 100,
    n_target_classes: int = 9,
    restarts: int = 1,
    rho: float = 0.75,
    momentum: float = 0.75,
    domain: Domain | None = None,
    seed: int = 0,
    parallel: bool = True,
) -> AttackResult:
    """APGD-T towards each of the top ``n_target_classes`` other classes.

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
        Iterations per run (100 in AutoAttack).
    n_target_classes : int
        Target classes per row (at most ``K - 1``).
    restarts : int
        Runs per target class, each on the rows still robust.
    rho, momentum : float
        The paper's ``rho = 0.75`` and ``alpha = 0.75``.
    domain : Domain or None
        Bounds, scale and mutable features; default ``[0, 1]``, every feature free.
    seed : int
        Seeds the random starts.
    parallel : bool
        Run several target classes in one batch -- every standing row once per
        target, up to :data:`~bastion.attacks.evasion.apgd.COPY_ELEMENTS` values per
        state tensor -- and stop all copies of a row as soon as one of them breaks
        it. Each (row, target) run is the paper's; only the schedule differs: fewer,
        larger batches (much faster for small batches), sometimes a few more
        queries. ``False`` runs the targets one by one, each on the rows the earlier
        ones left standing, as the reference code does.

    Returns
    -------
    AttackResult
        Rows misclassified on the clean input count as broken with ``x_adv = x``.
    """
    who = "APGD-T"
    norm, eps, y, dom, f = prepare_inputs(who, model, x, y, eps, norm, steps, restarts, rho, domain)
    check_positive_int(n_target_classes, who, "n_target_classes")
    rows0 = f.rows
    x0 = x.detach()
    with torch.no_grad():
        clean = f(x0)
    ranked = clean.argsort(dim=1, descending=True)
    out = x0.clone()
    success = clean.argmax(dim=1) != y
    gen = torch.Generator(device=x0.device).manual_seed(int(seed))

    def loss_fn(z: torch.Tensor, yy: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        return dlr_targeted(z, yy, tt)

    ranks = list(range(1, min(n_target_classes, clean.shape[1] - 1) + 1))
    width = max(1, x0[0].numel())
    with f.frozen():
        pos = 0
        while pos < len(ranks):
            idx = (~success).nonzero().squeeze(1)
            if len(idx) == 0:
                break
            size = max(1, COPY_ELEMENTS // (len(idx) * width)) if parallel else 1
            group = ranks[pos : pos + size]
            pos += len(group)
            copies = idx.repeat(len(group))  # block b: every standing row, target group[b]
            targets = torch.cat([ranked[idx, rank] for rank in group])
            for _ in range(restarts):
                live = ~success[copies]
                run_copies(
                    f,
                    dom,
                    x0,
                    y,
                    copies[live],
                    targets[live],
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
    return AttackResult(out, success, dom.norm(out - x0, norm), f.rows - rows0, "apgd-t", norm)
