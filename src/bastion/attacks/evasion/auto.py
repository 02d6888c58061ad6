"""The standard AutoAttack ensemble: APGD-CE, APGD-T, FAB-T and Square.

Croce and Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020, in its *standard* version: the same
members in the same order with the same defaults --

=========  ===============================================================
APGD-CE    100 iterations, 1 restart, cross-entropy loss
APGD-T     100 iterations, 1 restart per target class, 9 target classes, DLR-T
FAB-T      100 iterations, 1 restart per target class, 9 target classes
Square     5,000 queries, 1 restart, ``p_init = 0.8``
=========  ===============================================================

Only rows the model classifies correctly are attacked; each later attack runs only
on the rows every earlier attack left standing, and each row keeps the adversarial
example of the first attack that broke it (per-sample worst case). FAB-T is a
minimum-norm attack: its result counts only where the perturbation fits the budget,
and a row stops as soon as it does. APGD-T and FAB-T run their target classes in
shared batches (see :func:`~bastion.attacks.evasion.apgd_targeted.apgd_targeted`):
the same per-target runs, scheduled for throughput.
At the end every returned example is sent through the model once more and the
robust accuracy is computed from those answers, so bookkeeping can never overstate
success.

Square is the black-box member, :func:`bastion.attacks.evasion.square.square_attack`
(Andriushchenko et al., ECCV 2020). It sees the model only through its logits.

Shapes: ``x`` ``(n, *shape)``, ``y`` ``(n,)`` int64 on the model's device.

Examples
--------
>>> import torch
>>> torch.manual_seed(0) is not None
True
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
>>> x = torch.rand(6, 1, 4, 4)
>>> y = net(x).argmax(1)
>>> r = auto_attack(net, x, y, eps=0.3, steps=10, square_queries=20)
>>> r.robust_accuracy, r.members[0].attack, r.members[0].broken
(0.0, 'apgd-ce', 6)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from bastion.attacks.evasion.apgd import apgd
from bastion.attacks.evasion.apgd_targeted import apgd_targeted
from bastion.attacks.evasion.budget import Domain, check_eps, check_norm, check_positive_int
from bastion.attacks.evasion.fab import fab
from bastion.attacks.evasion.model import (
    CountedModel,
    ModelLike,
    as_model,
    check_labels,
    torch_threads,
)
from bastion.attacks.evasion.projections import Norm
from bastion.errors import UsageError

__all__ = ["STANDARD_MEMBERS", "EnsembleResult", "MemberResult", "auto_attack"]

Member = Literal["apgd-ce", "apgd-t", "fab-t", "square"]
#: The standard version's members, in order.
STANDARD_MEMBERS: tuple[Member, ...] = ("apgd-ce", "apgd-t", "fab-t", "square")
_WHITE_BOX = frozenset({"apgd-ce", "apgd-t", "fab-t"})
_SLACK = 1e-5


@dataclass(frozen=True)
class MemberResult:
    """What one member of the ensemble did.

    Attributes
    ----------
    attack : str
    attacked : int
        Rows it was run on (still robust before it).
    broken : int
        Rows it broke within the budget.
    queries : int
        Model rows it evaluated.
    white_box : bool
    """

    attack: str
    attacked: int
    broken: int
    queries: int
    white_box: bool


@dataclass(frozen=True)
class EnsembleResult:
    """Per-sample worst case over the ensemble.

    Attributes
    ----------
    x_adv : Tensor
        ``(n, *shape)``: the breaking example, or ``x`` where nothing worked.
    clean_correct : Tensor
        ``(n,)`` bool: the clean input is classified correctly.
    robust : Tensor
        ``(n,)`` bool: correct on the clean input and on ``x_adv`` (re-verified).
    broken_by : list of str
        Per row: the member that broke it, ``"clean"`` for rows already wrong, ``""``
        for robust rows.
    members : list of MemberResult
    queries : int
        All model rows evaluated, the clean check and the final verification included.
    eps : float
    norm : {"linf", "l2"}
    """

    x_adv: torch.Tensor
    clean_correct: torch.Tensor
    robust: torch.Tensor
    broken_by: list[str]
    members: list[MemberResult]
    queries: int
    eps: float
    norm: Norm

    @property
    def robust_accuracy(self) -> float:
        """Share of all rows that are correct and survived every member."""
        return float(self.robust.float().mean())

    @property
    def clean_accuracy(self) -> float:
        """Share of rows classified correctly without attack."""
        return float(self.clean_correct.float().mean())


def auto_attack(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: Norm = "linf",
    members: Sequence[str] = STANDARD_MEMBERS,
    steps: int = 100,
    n_target_classes: int = 9,
    square_queries: int = 5000,
    domain: Domain | None = None,
    seed: int = 0,
    progress: Callable[[str, int], None] | None = None,
    threads: int | None = None,
) -> EnsembleResult:
    """Run the standard AutoAttack ensemble (see the module docstring).

    Parameters
    ----------
    model : TorchTarget, torch.nn.Module or callable
        Returns logits ``(n, K)``; a TorchTarget is charged one query per row.
    x, y : Tensor
        ``(n, *shape)`` clean inputs inside the bounds and ``(n,)`` true labels.
    eps : float
        Budget in units of each feature's scale (raw units for inputs in [0, 1]).
    norm : {"linf", "l2"}
    members : sequence of str
        A subset of ``STANDARD_MEMBERS``, run in the standard order.
    steps, n_target_classes, square_queries : int
        The members' budgets (standard: 100, 9, 5000).
    domain : Domain or None
        Bounds, scale and mutable features; default ``[0, 1]``, every feature free.
    seed : int
    progress : callable or None
        ``progress(member, rows_still_robust)`` after each member.
    threads : int or None
        PyTorch intra-op CPU threads while the ensemble runs (restored afterwards;
        see :func:`~bastion.attacks.evasion.model.torch_threads`); None keeps the
        current setting. Small models on a few shared cores usually run fastest with 1.

    Returns
    -------
    EnsembleResult
    """
    who = "AutoAttack"
    norm = check_norm(norm, who)
    eps = check_eps(eps, who)
    for name, value in (("steps", steps), ("n_target_classes", n_target_classes)):
        check_positive_int(value, who, name)
    check_positive_int(square_queries, who, "square_queries", minimum=2)
    if threads is not None:
        check_positive_int(threads, who, "threads")
    unknown = [m for m in members if m not in STANDARD_MEMBERS]
    if unknown or not members:
        raise UsageError(
            f"The 'members' parameter of {who} must be a non-empty subset of "
            f"{list(STANDARD_MEMBERS)}; got {list(members)!r}."
        )
    y = check_labels(x, y, who)
    dom = (domain or Domain.unit(x.shape[1:], device=x.device, dtype=x.dtype)).to(x)
    dom.check(x, who)
    f = as_model(model)
    rows0 = f.rows
    x0 = x.detach()
    with torch.no_grad():
        clean_correct = f(x0).argmax(dim=1) == y
    x_adv = x0.clone()
    standing = clean_correct.clone()
    broken_by = ["" if bool(c) else "clean" for c in clean_correct.tolist()]
    done: list[MemberResult] = []
    with torch_threads(threads), f.frozen():
        for member in (m for m in STANDARD_MEMBERS if m in members):
            idx = standing.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            before = f.rows
            cand, hit = _run_member(
                member,
                f,
                x0[idx],
                y[idx],
                eps,
                norm,
                steps,
                n_target_classes,
                square_queries,
                dom,
                seed,
            )
            x_adv[idx[hit]] = cand[hit]
            standing[idx[hit]] = False
            for i in idx[hit].tolist():
                broken_by[i] = member
            done.append(
                MemberResult(
                    member, len(idx), int(hit.sum()), f.rows - before, member in _WHITE_BOX
                )
            )
            if progress is not None:
                progress(member, int(standing.sum()))
    with torch.no_grad():
        still_right = f(x_adv).argmax(dim=1) == y
    size = dom.norm(x_adv - x0, norm)
    robust = clean_correct & (still_right | (size > eps * (1 + _SLACK) + _SLACK))
    # Only a randomised model answers differently the second time; trust the last answer.
    for i in (clean_correct & ~robust & standing).nonzero().squeeze(1).tolist():
        broken_by[i] = "verification"
    for i in (robust & ~standing).nonzero().squeeze(1).tolist():
        broken_by[i] = ""
    return EnsembleResult(x_adv, clean_correct, robust, broken_by, done, f.rows - rows0, eps, norm)


def _run_member(
    member: str,
    f: CountedModel,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: Norm,
    steps: int,
    n_targets: int,
    square_queries: int,
    dom: Domain,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(candidates, broken)`` for the rows ``x`` still standing."""
    if member == "apgd-ce":
        r = apgd(f, x, y, eps=eps, norm=norm, steps=steps, loss="ce", domain=dom, seed=seed)
        return r.x_adv, r.success
    if member == "apgd-t":
        r = apgd_targeted(
            f,
            x,
            y,
            eps=eps,
            norm=norm,
            steps=steps,
            n_target_classes=n_targets,
            domain=dom,
            seed=seed,
        )
        return r.x_adv, r.success
    if member == "fab-t":
        r = fab(
            f,
            x,
            y,
            norm=norm,
            steps=steps,
            targeted=True,
            n_target_classes=n_targets,
            eps=eps,
            stop_at=eps,
            domain=dom,
            seed=seed,
        )
        return r.x_adv, r.success & (r.norms <= eps)
    from bastion.attacks.evasion.square import square_attack

    def scores(rows: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():  # query only: no autograd bookkeeping at all
            return f(rows)

    sq = square_attack(
        scores,
        x,
        y,
        norm=norm,
        eps=eps,
        n_queries=square_queries,
        lower=dom.lower,
        upper=dom.upper,
        seed=seed,
        scale=None if dom.simple else dom.scale,
        mask=dom.mutable,
    )
    return sq.x_adv, sq.success
